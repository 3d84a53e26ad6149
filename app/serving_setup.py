"""Building the serving features of a run (prefix caching, disaggregation) into the replica
engine; `app/run.py` calls these from `prepare`."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.links import peer_link
from seqsched.backends.spec_files import resolve_model
from seqsched.backends.specs import kv_bytes_per_gpu
from seqsched.backends.cuda_graphs import GraphPadding, graph_padding, pad_cost
from seqsched.common.params import is_whole
from seqsched.common.errors import UserError
from seqsched.policies import STATIC_POLICIES
from seqsched.sim.disagg import Disaggregation
from seqsched.sim.kv import KVCache
from seqsched.sim.lockstep import DPPadding
from seqsched.sim.prefix_cache import PrefixCache
from seqsched.sim.sequence import Seq
from seqsched.traces.prefix import PrefixSource, prefix_source

_NOTED: set[str] = set()


def note_once(message: str) -> None:
    """A warning said once per process (compare prepares every run of the same trace)."""
    if message not in _NOTED:
        _NOTED.add(message)
        logging.getLogger("seqsched.traces").warning(message)


def prefix_setup(trace, config, features: tuple) -> tuple[tuple, PrefixSource | None]:
    """The trace's prefix information when caching is asked for; without it (or for a
    static policy) say so once and run uncached."""
    if "prefix" not in features:
        return features, None
    source = prefix_source(trace)
    why = ("it has no prefix information (token ids, Mooncake hash_ids, session_id or "
           "prefix_group)" if source is None else
           None if config.policy not in STATIC_POLICIES else
           f"static policy {config.policy} pads whole batches (no paged KV)")
    if why is None:
        return features, source
    note_once(f"{trace.name}: prefix caching asked for but {why}; running without prefix "
              "caching")
    return tuple(f for f in features if f != "prefix"), None


def make_kv(capacity: int, block_size: int, source: PrefixSource | None) -> KVCache:
    kv = KVCache(capacity, block_size)
    if source is not None:
        def hashes(s: Seq) -> list[int]:
            return source.block_hashes(s.idx, s.prompt_tokens + s.target_tokens, block_size)
        kv.prefix = PrefixCache(kv.num_blocks, block_size, hashes)
    return kv


def check_disagg(config, executor):
    """A disaggregated run's config with replicas = P + D (continuous policies on a
    cost-model executor only)."""
    if config.policy in STATIC_POLICIES or not isinstance(
            executor or CostModelExecutor(None), CostModelExecutor):
        raise UserError("disaggregation runs continuous policies on the cost model; pick "
                        f"fcfs, sjf, srpt or ltr (got {config.policy})")
    return dataclasses.replace(config, replicas=config.prefill_replicas
                               + config.decode_replicas)


def decode_config(config):
    """The decode replicas' own config: their GPU and TP, and their cost profile. A --profile
    measured for the prefill side's GPU/TP is not reused on another GPU or TP (the built-in
    match for the decode side's GPU x model x TP, else its roofline, is); "roofline" is."""
    gpu = config.decode_gpu or config.gpu
    tp = config.decode_tp or config.tp
    profile = config.decode_profile
    if profile is None and (config.profile == "roofline" or (gpu, tp) == (config.gpu, config.tp)):
        profile = config.profile
    return dataclasses.replace(config, gpu=gpu, tp=tp, profile=profile)


def decode_side(config, need: np.ndarray, ids, executor, kv_tokens, params, build_cost_model):
    """KV capacity and executor of the decode replicas (a given executor serves both sides);
    every request's whole KV must fit there."""
    side = decode_config(config)
    capacity = kv_tokens(side, params)
    if need.max() > capacity:
        i = int(need.argmax())
        raise UserError(f"the decode side ({config.model} on {side.gpu}) holds {capacity} KV "
                        f"tokens but request {ids[i]} needs {need[i]}; pick a bigger "
                        "--decode-gpu, raise --memory-fraction or cap --max-new-tokens")
    return capacity, executor or CostModelExecutor(build_cost_model(side))


def disaggregation(config) -> Disaggregation:
    return Disaggregation(list(range(config.prefill_replicas)),
                          list(range(config.prefill_replicas, config.replicas)),
                          kv_bytes_per_gpu(resolve_model(config.model), config.tp),
                          peer_link(config.gpu, config.kv_link).bandwidth)


def _graphs(config, params: dict) -> GraphPadding:
    """The CUDA graphs of a vLLM server with the policy's max_num_seqs / max_batched_tokens:
    a recorded run's own capture sizes and mode where its metadata has them, else vLLM's
    defaults (backends/cuda_graphs.py); none without those parameters (a static policy) and
    none with --enforce-eager."""
    seqs, tokens = params.get("max_num_seqs"), params.get("max_batched_tokens")
    if not (is_whole(seqs) and is_whole(tokens)):
        return GraphPadding()
    return graph_padding(int(seqs), int(tokens), config.enforce_eager, config.compilation_config)


def dp_padding(config, params: dict) -> DPPadding:
    """A DP lockstep group pads its ranks over the CUDA-graph sizes (`_graphs`)."""
    if config.dp_lockstep <= 1:
        return DPPadding()
    graphs = _graphs(config, params)
    return DPPadding(graphs.sizes if graphs.active else ())


def graph_padded(config, params: dict, target):
    """`target` (a cost-model executor or a cost model) with its steps padded as vLLM's CUDA
    graphs pad them on one GPU, when the run asks for it (`cudagraph_padding`); anything else
    (the live executor, a static policy) as it is."""
    if not config.cudagraph_padding:
        return target
    padding = _graphs(config, params)
    if type(target) is CostModelExecutor:
        cost = pad_cost(target.cost, padding)
        return target if cost is target.cost else CostModelExecutor(cost, target.name)
    return target if isinstance(target, CostModelExecutor) else pad_cost(target, padding)
