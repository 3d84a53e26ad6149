"""Which engine runs a simulation: the array engine (`seqsched.sim.fast`) for the
configurations it reproduces exactly, the object engine (`sim/replica.py`) for everything else.

`--engine auto` (the default) picks the array engine when `fast_unsupported` finds nothing it
does not cover; `fast` insists (bad input if it cannot); `baseline` always runs the object
engine (the benchmark's reference). Both give the same records and step log.

Covered: the continuous policies fcfs, sjf, srpt and ltr exactly as `policies/continuous.py`
defines them (greedy or predicted admission, chunked prefill, recompute or restart
preemption, reserve_full_isl, vLLM's async scheduling (`sim/fast/lag.py`); not swap), vLLM
bench's `--max-concurrency` client (`sim/client.py`), the cost-model executor (roofline or
fitted profile), free predictions (or any predictor under a policy that never reads them:
fcfs with greedy admission gets no prediction step), the round-robin, least-loaded and random
routers. A run option or policy parameter the array engine does not know must be at its
default (so a feature added later falls back rather than being ignored).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.roofline_steps import decode_times_for
from seqsched.common.errors import UserError
from seqsched.policies.array_keys import leading_keys, priority_order
from seqsched.policies.continuous import ContinuousPolicy, LTRPolicy, SJFPolicy, SRPTPolicy
from seqsched.sim.fast.engine import FAST_ROUTERS, FastEngine
from seqsched.sim.fast.replica import ArrayReplica
from seqsched.sim.fast.table import RequestTable
from seqsched.sim.kv import KVCache

ENGINES = ("auto", "fast", "baseline")
FAST_POLICIES = (ContinuousPolicy, SJFPolicy, SRPTPolicy, LTRPolicy)
POLICY_FIELDS = {"max_num_seqs", "max_batched_tokens", "chunked_prefill", "max_iterations",
                 "preemption", "admission", "name", "aging", "reserve_full_isl",
                 "async_scheduling"}
CONFIG_FIELDS = {"policy", "policy_params", "predictor", "predictor_params", "backend", "gpu",
                 "model", "profile", "iteration_overhead_s", "token_overhead_s",
                 "kv_append_copy", "replicas", "router", "seed", "max_new_tokens",
                 "memory_fraction", "block_size", "swap_space", "host_link", "progress",
                 "engine", "tp", "kv_blocks", "max_model_len", "kv_sizing", "max_concurrency",
                 "cudagraph_padding", "compilation_config", "enforce_eager"}
# serving features the array engine runs (vLLM bench's closed-loop client, sim/client.py)
FAST_FEATURES = ("max-concurrency",)
# tp, kv_blocks, max_model_len, kv_sizing, cudagraph_padding, compilation_config,
# enforce_eager: only the cost model (its CUDA-graph padding; DP lockstep falls back anyway),
# KV capacity and the request checks, all built or done in prepare() before the engine
PREEMPTIONS = ("recompute", "restart")


def _unknown_changed(obj, known: set) -> str | None:
    for f in dataclasses.fields(obj):
        if f.name in known or f.default is dataclasses.MISSING:
            continue
        if getattr(obj, f.name) != f.default:
            return f.name
    return None


def fast_unsupported(config, policy, executor, cost) -> str | None:
    """Why the array engine cannot run this configuration, or None when it can."""
    if type(policy) not in FAST_POLICIES:
        return f"policy {policy.name} is not one of fcfs, sjf, srpt, ltr"
    if policy.preemption not in PREEMPTIONS:
        return f"preemption={policy.preemption}"
    features = [f for f in config.features() if f not in FAST_FEATURES]
    if features:
        return f"serving features {', '.join(features)}"
    if type(executor) is not CostModelExecutor or getattr(executor.cost, "pads_to_longest",
                                                          False):
        return f"executor {getattr(executor, 'name', '?')} is not the cost-model executor"
    if cost is not None and not cost.is_free and getattr(policy, "reads_predictions", True):
        return f"predictor {config.predictor} charges its queries to the timeline"
    if config.router not in FAST_ROUTERS:
        return f"router {config.router}"
    changed = _unknown_changed(policy, POLICY_FIELDS) or _unknown_changed(config, CONFIG_FIELDS)
    if changed is not None:
        return f"option {changed.replace('_', '-')} is not covered"
    return None


def choose_fast(config, policy, executor, cost) -> bool:
    """True when the array engine runs this configuration (UserError if --engine fast cannot)."""
    if config.engine not in ENGINES:
        raise UserError(f"unknown engine {config.engine!r}; use {', '.join(ENGINES)}")
    if config.engine == "baseline":
        return False
    reason = fast_unsupported(config, policy, executor, cost)
    if reason is not None and config.engine == "fast":
        raise UserError(f"--engine fast does not cover this run ({reason}); use --engine auto "
                        "or baseline")
    return reason is None


def build_fast_engine(trace, config, predicted: np.ndarray, target: np.ndarray, policies,
                      executor, capacity: int) -> FastEngine:
    """The array engine with one replica per policy object in `policies`."""
    table = RequestTable(trace.ids.tolist(), trace.arrival_s, trace.prompt_tokens,
                         trace.output_tokens, np.asarray(predicted, dtype=np.int64),
                         np.asarray(target, dtype=np.int64))
    engine = FastEngine(table, router=config.router, seed=config.seed, progress=config.progress,
                        max_concurrency=config.max_concurrency)
    for r, policy in enumerate(policies):
        leading = leading_keys(policy)
        engine.replicas.append(ArrayReplica(engine, r, policy, executor.cost,
                                            KVCache(capacity, config.block_size),
                                            decode_times_for(executor.cost),
                                            priority_order(policy),
                                            leading(table) if leading else None))
    return engine
