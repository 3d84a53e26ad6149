"""Pipeline parallelism in a run (`--pipeline-parallel-size N`): which engine parts model it,
and what it cannot be combined with. `app/run.py` calls `pipeline_parts` from `prepare`.

vLLM 0.19.0 runs PP two ways (backends/pipeline.py and sim/pipeline.py cite the source):
- without async scheduling, a batch queue of PP micro-batches keeps the stages busy:
  `sim/pipeline.PipelineReplica` (object engine);
- with async scheduling (vLLM's default) every micro-batch waits for the previous one's
  sampled tokens, so they pass the stages one after another: the ordinary replica on
  `backends/pipeline.SerialPipelineCost`, its async lag N - 1 steps deep (a batch queue of N:
  the plan of step n+1 is made when step n+2-N began; `sim/async_lag.py`).
"""

from __future__ import annotations

import functools

from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.pipeline import SerialPipelineCost, pipeline_timing, stage_layers
from seqsched.backends.spec_files import resolve_gpu, resolve_model
from seqsched.common.errors import UserError
from seqsched.policies import STATIC_POLICIES
from seqsched.sim.async_lag import AsyncLag
from seqsched.sim.pipeline import PipelineReplica
from seqsched.sim.replica import Replica

_ALONE = {"swap": "preemption=swap", "disagg": "disaggregation",
          "lockstep": "--dp-lockstep"}


def check_pipeline(config) -> None:
    """Bad input for a PP run: one error line naming what to change."""
    if config.pp < 1:
        raise UserError(f"pipeline-parallel-size must be >= 1, got {config.pp}")
    if config.pp == 1:
        return
    stage_layers(resolve_model(config.model).n_layers, config.pp)
    if config.policy in STATIC_POLICIES:
        raise UserError(f"--pipeline-parallel-size {config.pp} models vLLM's engine: use a "
                        f"continuous policy (fcfs, sjf, srpt, ...), not {config.policy}")
    for feature in config.features():
        if feature in _ALONE:
            raise UserError(f"--pipeline-parallel-size {config.pp} is not modelled with "
                            f"{_ALONE[feature]}; drop one of them")


def _serial_replica(*args, depth: int, **kwargs) -> Replica:
    """The ordinary replica whose async lag is `depth` steps deep."""
    rep = Replica(*args, **kwargs)
    rep.lag = AsyncLag(rep.env, depth)
    return rep


def pipeline_parts(config, executor, policy, prediction_cost, repredictor):
    """(executor, replica factory) of a run: unchanged at PP 1; the serial cost model under
    async scheduling; else the batch-queue replica with the stage timing."""
    if config.pp == 1:
        return executor, Replica
    if type(executor) is not CostModelExecutor:
        raise UserError(f"--pipeline-parallel-size {config.pp} runs on a cost model, not the "
                        f"{getattr(executor, 'name', '?')} executor")
    timing = pipeline_timing(resolve_gpu(config.gpu), resolve_model(config.model), config.pp,
                             config.tp)
    if getattr(policy, "async_scheduling", False):
        return (CostModelExecutor(SerialPipelineCost(executor.cost, timing)),
                functools.partial(_serial_replica, depth=config.pp - 1))
    charged = (prediction_cost is not None and not prediction_cost.is_free
               and getattr(policy, "reads_predictions", True))
    if charged or repredictor is not None or getattr(policy, "preemption", "") == "swap":
        raise UserError(f"--pipeline-parallel-size {config.pp} without async scheduling does "
                        "not model predictor queries on the GPU, re-prediction or swap; use a "
                        "free predictor (on=free) or --async-scheduling")
    return executor, functools.partial(PipelineReplica, timing=timing)
