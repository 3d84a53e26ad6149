"""One simulation run: a trace, a policy, a predictor and a backend -> records and a summary.

    result = simulate(trace, RunConfig(policy="binned", backend="paper-a100"))
    result.summary["throughput_rps"]
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seqsched.analysis.economics import cost_energy, load_prices
from seqsched.analysis.metrics import summarize
from seqsched.analysis.saturation import saturation_summary
from seqsched.analysis.slo import slo_summary
from seqsched.app.cost_setup import (build_cost_model, cost_profile_name,  # noqa: F401
                                     describe_backend, ep_group)
from seqsched.app.engine_choice import build_fast_engine, choose_fast
from seqsched.app.pipeline_setup import check_pipeline, pipeline_parts
from seqsched.app.run_seqs import attach_length_knowledge, make_seqs
from seqsched.app.serving_setup import (check_disagg, dp_padding, decode_side,
                                        disaggregation, graph_padded, make_kv,
                                        prefix_setup)
from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.presets import get_preset
from seqsched.backends.links import get_link, host_link
from seqsched.backends.pipeline import pp_kv_capacity_tokens
from seqsched.backends.spec_files import resolve_gpu, resolve_model, respelled
from seqsched.backends.specs import kv_bytes_per_gpu, kv_capacity_tokens
from seqsched.backends.vllm_engine import batch_defaults, kv_cache_tokens
from seqsched.common.defaults import DEFAULT_GPU, DEFAULT_MODEL, is_default
from seqsched.common.params import init_params, is_whole
from seqsched.policies import POLICIES, STATIC_POLICIES, make_policy
from seqsched.predictors import make_predictor
from seqsched.sim.engine import ROUTERS, Engine
from seqsched.common.errors import UserError, did_you_mean
from seqsched.sim.lockstep import attach_groups
from seqsched.sim.swap import host_swap
from seqsched.traces.request import Trace


KV_SIZING = ("vllm", "weights")
# RunConfig fields of the serving features: a sweep that turns no feature on leaves them out
# of its rows and point ids, so its files stay as they were before the features existed
FEATURE_FIELDS = ("swap_space", "host_link", "prefix_caching", "prefill_replicas", "dp_lockstep",
                  "decode_replicas", "decode_gpu", "kv_link", "decode_tp", "decode_profile",
                  "max_concurrency", "pp", "cudagraph_padding", "compilation_config",
                  "expert_parallel")


@dataclass
class RunConfig:
    policy: str = "fcfs"
    policy_params: dict = field(default_factory=dict)
    predictor: str = "oracle"
    predictor_params: dict = field(default_factory=dict)
    backend: str | None = None          # a preset (backends/presets.py): GPU, model, overheads
    gpu: str = DEFAULT_GPU              # a preset replaces these only when not typed
    model: str = DEFAULT_MODEL
    profile: str | None = None          # a profile JSON or built-in name ("roofline": none)
    tp: int = 1                         # tensor-parallel GPUs per replica
    pp: int = 1                         # pipeline stages per replica (app/pipeline_setup.py)
    iteration_overhead_s: float | None = None
    token_overhead_s: float | None = None
    kv_append_copy: bool | None = None
    replicas: int = 1
    dp_lockstep: int = 0                # replicas step in lockstep groups of this size (DP MoE)
    expert_parallel: bool = False       # vLLM's --enable-expert-parallel: an MoE's experts
                                        # split over the DP group x TP GPUs (ep_group)
    router: str = "round-robin"
    seed: int = 0
    max_new_tokens: int | None = None   # clip every response to this many tokens
    memory_fraction: float = 0.9        # vLLM's gpu_memory_utilization
    block_size: int = 16
    swap_space: float = 4.0             # GiB of host memory per replica for preemption=swap
                                        # (vLLM's --swap-space, default 4)
    host_link: str | None = None        # swap link: pcie4, pcie5, ... or GB/s (default: GPU's)
    kv_blocks: int | None = None        # pin the KV cache to this many blocks (vLLM's log)
    max_model_len: int | None = None    # vLLM's max_model_len (default: the model's context)
    kv_sizing: str = "vllm"             # continuous policies: "vllm" reserves the activation
                                        # peak; "weights": memory x fraction - weights only
    prefix_caching: bool = False        # vLLM's automatic prefix caching (sim/prefix_cache.py)
    enforce_eager: bool = False         # vLLM's --enforce-eager: no CUDA graphs, no DP padding
    cudagraph_padding: bool = False     # vLLM's CUDA-graph padding on one GPU (validate
                                        # --measured: on; backends/cuda_graphs.py)
    compilation_config: dict | None = None  # a recorded run's capture sizes / cudagraph_mode
    prefill_replicas: int = 0           # disaggregation (sim/disagg.py): prefill replicas ...
    decode_replicas: int = 0            # ... and decode replicas (both > 0; replaces replicas)
    decode_gpu: str | None = None       # the decode side's GPU (default: gpu)
    decode_tp: int | None = None        # the decode side's TP degree (default: tp)
    decode_profile: str | None = None   # the decode side's cost profile (default: the built-in
                                        # match for its GPU x model x TP; --profile only when
                                        # the decode side runs the same GPU and TP)
    kv_link: str | None = None          # prefill -> decode link (default: the GPU's NVLink)
    max_concurrency: int | None = None  # vLLM bench's client cap, closed loop (sim/client.py)
    progress: bool = False
    engine: str = "auto"                # auto, fast (array engine) or baseline (engine_choice)

    def resolved(self) -> "RunConfig":
        """The preset's GPU/model/overheads filled in; explicit values win over the preset. A
        GPU or model typed another way than a name it accepts (case, a Hugging Face id with
        release tags) becomes its built-in name, so profiles and prices match it."""
        changes = {key: name for key, kind in (("gpu", "gpu"), ("decode_gpu", "gpu"),
                                               ("model", "model"))
                   if (name := respelled(getattr(self, key), kind))}
        self = dataclasses.replace(self, **changes) if changes else self
        if self.backend is None:
            return self
        p = get_preset(self.backend)
        changes = {}
        for key, value in (("gpu", p.gpu), ("model", p.model)):
            if is_default(getattr(self, key)):
                changes[key] = value
        for key in ("iteration_overhead_s", "token_overhead_s", "kv_append_copy"):
            if getattr(self, key) is None:
                changes[key] = getattr(p, key)
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        if self.tp < 1:
            raise UserError(f"tp must be >= 1, got {self.tp}")
        if self.replicas < 1:
            raise UserError(f"replicas must be >= 1, got {self.replicas}")
        if self.router not in ROUTERS:
            raise UserError(f"unknown router {self.router!r}{did_you_mean(self.router, ROUTERS)}; "
                            f"choose one of {', '.join(ROUTERS)}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UserError(f"max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 < self.memory_fraction <= 1:
            raise UserError(f"memory-fraction must be in (0, 1], got {self.memory_fraction}")
        if self.block_size < 1:
            raise UserError(f"block-size must be >= 1, got {self.block_size}")
        if not self.swap_space >= 0:
            raise UserError(f"swap-space must be >= 0 GiB, got {self.swap_space}")
        for link in (self.host_link, self.kv_link):
            if link is not None:
                get_link(link)
        if self.prefill_replicas < 0 or self.decode_replicas < 0 or (
                (self.prefill_replicas > 0) != (self.decode_replicas > 0)):
            raise UserError("disaggregation needs both --prefill-replicas and "
                            f"--decode-replicas >= 1, got {self.prefill_replicas} and "
                            f"{self.decode_replicas}")
        if self.decode_gpu is not None:
            resolve_gpu(self.decode_gpu)
        if self.decode_tp is not None and self.decode_tp < 1:
            raise UserError(f"decode-tp must be >= 1, got {self.decode_tp}")
        split = (self.decode_gpu, self.decode_tp, self.decode_profile)
        if any(v is not None for v in split) and not self.prefill_replicas:
            raise UserError("--decode-gpu/--decode-tp/--decode-profile describe the decode side "
                            "of disaggregated serving; add --prefill-replicas P "
                            "--decode-replicas D")
        if self.kv_sizing not in KV_SIZING:
            raise UserError(f"unknown kv-sizing {self.kv_sizing!r}; use {' or '.join(KV_SIZING)}")
        for key in ("kv_blocks", "max_model_len", "max_concurrency"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise UserError(f"{key.replace('_', '-')} must be >= 1, got "
                                f"{getattr(self, key)}")

    def features(self) -> tuple[str, ...]:
        """The serving features this run turns on (an engine that does not model them, such
        as a fast array engine, must fall back to the replica engine when any is on)."""
        on = {"swap": self.policy_params.get("preemption") == "swap",
              "prefix": self.prefix_caching, "disagg": self.prefill_replicas > 0,
              "lockstep": self.dp_lockstep > 1,
              "max-concurrency": self.max_concurrency is not None, "pipeline": self.pp > 1}
        return tuple(name for name, is_on in on.items() if is_on)


@dataclass
class RunResult:
    config: RunConfig
    records: pd.DataFrame
    steps: pd.DataFrame
    summary: dict
    wall_s: float
    kv_capacity_tokens: int


def policy_params(config: RunConfig) -> dict:
    """The policy's parameters: the user's, then for continuous (vLLM-like) policies the
    defaults `vllm serve` picks on this GPU (backends/vllm_engine.py): chunked prefill on,
    max_num_batched_tokens and max_num_seqs by GPU; without chunked prefill the token budget
    is max_model_len, as in vLLM."""
    params = dict(config.policy_params)
    if config.policy in STATIC_POLICIES:
        if config.max_new_tokens is not None:
            params.setdefault("max_new_tokens", config.max_new_tokens)
        return params
    known = init_params(POLICIES[config.policy]) if config.policy in POLICIES else set()
    if {"chunked_prefill", "max_batched_tokens", "max_num_seqs"} <= known:
        tokens, seqs = batch_defaults(resolve_gpu(config.gpu))
        params.setdefault("chunked_prefill", True)
        if params["chunked_prefill"] is False:
            tokens = config.max_model_len or resolve_model(config.model).max_position
        params.setdefault("max_batched_tokens", tokens)
        if is_whole(params["max_batched_tokens"]) and params["max_batched_tokens"] > 0:
            seqs = min(seqs, params["max_batched_tokens"])
        params.setdefault("max_num_seqs", seqs)
    return params


def kv_tokens(config: RunConfig, params: dict) -> int:
    """KV capacity of one replica in whole blocks: pinned by `kv_blocks`; for a continuous
    policy vLLM's sizing (memory x utilization - weights - activation peak); for a static
    policy (HF generate, no memory profiling) or kv_sizing="weights", memory x fraction -
    weights."""
    gpu, model = resolve_gpu(config.gpu), resolve_model(config.model)
    vllm = config.kv_sizing == "vllm" and "max_batched_tokens" in params
    if config.kv_blocks is None and vllm:
        return kv_cache_tokens(gpu, model, config.memory_fraction,
                               int(params["max_batched_tokens"]), int(params["max_num_seqs"]),
                               config.block_size, tp=config.tp, pp=config.pp,
                               ep=ep_group(config))
    if config.kv_blocks is not None:
        return config.kv_blocks * config.block_size
    if config.pp > 1:
        return pp_kv_capacity_tokens(gpu, model, config.memory_fraction, 0.0, config.tp,
                                     config.pp, config.block_size)
    capacity = kv_capacity_tokens(gpu, model, config.memory_fraction, tp=config.tp,
                                  ep=ep_group(config))
    return capacity - capacity % config.block_size


@dataclass
class PreparedRun:
    """A validated run, ready to execute: everything bad input can break has been built."""

    config: RunConfig
    engine: Engine
    capacity: int


def prepare(trace: Trace, config: RunConfig, predictor=None, executor=None) -> PreparedRun:
    """Validate `config` against `trace` and build the engine; raises UserError on bad input.
    `predictor` / `executor` objects override the config's (the live executor plugs in here)."""
    config = config.resolved()
    config.validate()
    check_pipeline(config)
    disagg = config.prefill_replicas > 0
    if disagg:
        config = check_disagg(config, executor)
    given = executor
    if predictor is None:
        predictor = make_predictor(config.predictor, **config.predictor_params)
    predicted = np.asarray(predictor.predict(trace), dtype=np.int64)
    if len(predicted) != len(trace):
        raise UserError(f"predictor {predictor.name} returned {len(predicted)} predictions for "
                        f"{len(trace)} requests")
    cost = predictor.cost(trace).on_served(resolve_gpu(config.gpu))   # a side model on the GPU
    if executor is None:
        executor = CostModelExecutor(build_cost_model(config))
    params = policy_params(config)
    executor = graph_padded(config, params, executor)       # vLLM's CUDA graphs, when asked
    probe = make_policy(config.policy, **params)
    capacity = kv_tokens(config, params)
    out = trace.output_tokens
    target = np.minimum(out, config.max_new_tokens) if config.max_new_tokens is not None else out
    need = trace.prompt_tokens + target
    decode = (decode_side(config, need, trace.ids, given, kv_tokens, params,
                          lambda c: graph_padded(c, params, build_cost_model(c)))
              if disagg else None)
    if disagg:                          # the prefill side holds a prompt and one token
        need = trace.prompt_tokens + 1
    if config.max_model_len is not None and need.max() > config.max_model_len:
        i = int(need.argmax())
        raise UserError(f"request {trace.ids[i]} needs {need[i]} tokens (prompt + output), "
                        f"above max-model-len {config.max_model_len}; raise --max-model-len or "
                        "cap outputs with --max-new-tokens")
    if need.max() > capacity:
        i = int(need.argmax())
        raise UserError(f"request {trace.ids[i]} needs {need[i]} tokens of KV cache but a "
                        f"replica of {config.model} on {config.gpu} holds {capacity}; drop it, "
                        "cap outputs with --max-new-tokens, or pick a bigger GPU")
    check = getattr(probe, "check_prompts", None)
    if check is not None:
        check(trace.prompt_tokens, trace.ids)
    features, source = prefix_setup(trace, config, config.features())
    if "swap" in features and config.swap_space <= 0:
        raise UserError("preemption=swap needs host swap space but --swap-space is 0 GiB; "
                        "give --swap-space GiB > 0 (vLLM's default is 4) or use "
                        "preemption=recompute")
    if choose_fast(config, probe, executor, cost):
        policies = [probe, *(make_policy(config.policy, **params)
                             for _ in range(config.replicas - 1))]
        engine = build_fast_engine(trace, config, predicted, target, policies, executor,
                                   capacity)
        return PreparedRun(config, engine, capacity)
    seqs = make_seqs(trace, predicted, config.max_new_tokens)
    repredictor = attach_length_knowledge(probe, config, predictor, trace, predicted, seqs)
    executor, replica = pipeline_parts(config, executor, probe, cost, repredictor)
    engine = Engine(seqs, router=config.router, seed=config.seed,
                    max_new_tokens=config.max_new_tokens or int(need.max()),
                    progress=config.progress, features=features,
                    disagg=disaggregation(config) if disagg else None,
                    max_concurrency=config.max_concurrency)
    kv_token_bytes = kv_bytes_per_gpu(resolve_model(config.model), config.tp)
    link = host_link(config.gpu, config.host_link)
    for r in range(config.replicas):
        policy = probe if r == 0 else make_policy(config.policy, **params)
        swap = (host_swap(config.swap_space, kv_token_bytes, link.bandwidth)
                if "swap" in features else None)
        on_decode = disagg and r >= config.prefill_replicas
        kv = make_kv(decode[0] if on_decode else capacity, config.block_size, source)
        engine.replicas.append(replica(engine, r, policy, decode[1] if on_decode else executor,
                                       kv, cost, swap, repredictor=repredictor))
    attach_groups(engine.replicas, config.dp_lockstep, disagg, dp_padding(config, params))
    return PreparedRun(config, engine, capacity)


def execute(run: PreparedRun, slos: tuple = (), prices: str | None = None) -> RunResult:
    """Run it; the summary ends with saturation, cost/energy (`prices`: a price table file,
    default the shipped one) and, given `slos`, SLO attainment and goodput."""
    engine = run.engine
    t0 = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - t0
    if engine.unfinished:
        raise RuntimeError(f"{engine.unfinished} requests never finished (engine bug)")
    records, steps = engine.records(), engine.steps()
    # wall-clock time is not in the summary: output files must be byte-identical run to run
    summary = summarize(records, steps, run.capacity, run.config.replicas)
    summary.update(saturation_summary(records, steps))
    summary.update(cost_energy(records, steps, run.config.gpu, run.config.replicas,
                               run.config.tp * run.config.pp, load_prices(prices)))
    summary.update(slo_summary(records, slos))
    return RunResult(run.config, records, steps, summary, wall, run.capacity)


def simulate(trace: Trace, config: RunConfig, predictor=None, executor=None,
             slos: tuple = (), prices: str | None = None) -> RunResult:
    """Run `trace` under `config`. `predictor` / `executor` objects override the config's;
    `slos` (analysis.slo.SLO) add attainment and goodput to the summary."""
    return execute(prepare(trace, config, predictor, executor), slos, prices)
