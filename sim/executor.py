"""The Executor contract: what the engine asks of whatever runs a Step.

The engine calls `run(step, iterations, stop_after_s)` once per SimPy event. The cost-model
executor (`seqsched.backends.executor`) answers in simulated time; the live executor
(`seqsched.backends.live`) runs a real model. A policy cannot tell the two apart.
"""

from __future__ import annotations

from typing import Protocol

from seqsched.sim.sequence import Seq
from seqsched.sim.step import Step, StepResult


class Executor(Protocol):
    name: str

    def run(self, step: Step, iterations: int, stop_after_s: float | None) -> StepResult:
        """Run `iterations` iterations of `step` (fewer if `stop_after_s` is reached: stop at the
        end of the first iteration that ends at or after it; always at least one)."""

    def release(self, seq: Seq) -> None:
        """`seq` left the running set (finished, failed or preempted): free what it holds."""

    # Optional: `predictor` - a predictor the executor runs and times itself in "predict"
    # steps (the live executor); when it is set the replica hands every predict step to the
    # executor, a side model's included, instead of timing the predictor's modelled cost.
    # Optional: `dp_timing(step, alone_s)` - for a data-parallel lockstep group
    # (sim/lockstep.py), a function (padded tokens, gathered tokens) -> seconds of the step's
    # one iteration (`alone_s` on its own) when this rank runs `padded` tokens (vLLM's DP
    # padding) and its MoE layers see `gathered` tokens of the whole group; `dp_timing(None)`
    # times vLLM's dummy pass of an idle rank.
    # None when the executor cannot tell: the group then uses the step's own duration.
    # Optional: `resumes_preempted = True` declares that a row resumed after a recompute
    # preemption can be run as a prefill of its prompt plus its kept output (`seq.recomputed`
    # tokens of it); without it the replica restarts preempted requests from scratch.
