"""The Executor contract and the cost-model executor (simulated time).

The engine calls `run(step, iterations, stop_after_s)` once per SimPy event; the live executor
(backends/live/) implements the same two methods with a real model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from backends.cost_model import CostModel
from policies.step import Step, StepResult
from sim.sequence import Seq


class Executor(Protocol):
    name: str

    def run(self, step: Step, iterations: int, stop_after_s: float | None) -> StepResult:
        """Run `iterations` iterations of `step` (fewer if `stop_after_s` is reached: stop at the
        end of the first iteration that ends at or after it; always at least one)."""

    def release(self, seq: Seq) -> None:
        """`seq` left the running set (finished, failed or preempted): free what it holds."""

    # Optional: `resumes_preempted = True` declares that a row resumed after a recompute
    # preemption can be run as a prefill of its prompt plus its kept output (`seq.recomputed`
    # tokens of it); without it the replica restarts preempted requests from scratch.


def iteration_times(cost: CostModel, step: Step, iterations: int) -> np.ndarray:
    """Seconds of each of the step's `iterations` iterations under `cost`."""
    rows = len(step.seqs)
    if step.padded:
        # Static batch: every row padded to the longest prompt (the length query in a
        # "predict" step carries its prompt lengths in prefill_tokens).
        if step.kind == "predict":
            width = max(step.prefill_tokens)
        else:
            width = max(s.prompt_tokens for s in step.seqs)
        first = cost.prefill_time(np.full(rows, width), np.zeros(rows))
        later = cost.decode_times(rows, rows * (width + 1), iterations - 1)
    else:
        chunks = np.asarray(step.prefill_tokens, dtype=np.int64)
        prefilled = np.fromiter((s.prefilled for s in step.seqs), np.int64, rows)
        context = np.fromiter((s.context_tokens for s in step.seqs), np.int64, rows)
        is_prefill = chunks > 0
        after = context + chunks + 1     # after iteration 0: context plus the token produced
        if getattr(cost, "pads_to_longest", False) and rows:
            # a padded batch (the live executor's): every row is as long as the longest, in
            # cached tokens and in new tokens
            past = np.where(is_prefill, prefilled, context - 1).max()
            width = max(int(chunks.max()), 1)
            if is_prefill.any():
                first = cost.prefill_time(np.full(rows, width), np.full(rows, past))
            else:
                first = cost.prefill_time(np.zeros(0), np.zeros(0), rows, rows * (past + 1))
            later = cost.decode_times(rows, rows * int(after.max()), iterations - 1)
            return np.concatenate(([first], later))
        first = cost.prefill_time(chunks[is_prefill], prefilled[is_prefill],
                                  int((~is_prefill).sum()), int(context[~is_prefill].sum()))
        later = cost.decode_times(rows, int(after.sum()), iterations - 1)
    return np.concatenate(([first], later))


@dataclass
class CostModelExecutor:
    cost: CostModel
    name: str = "cost-model"
    resumes_preempted = True   # a recompute-preempted row resumes by prefilling prompt + output

    def run(self, step: Step, iterations: int, stop_after_s: float | None) -> StepResult:
        times = iteration_times(self.cost, step, iterations)
        ends = np.cumsum(times)
        n = iterations
        if stop_after_s is not None and iterations > 1:
            n = min(int(np.searchsorted(ends, stop_after_s, side="left")) + 1, iterations)
        return StepResult(duration_s=float(ends[n - 1]), iterations=n,
                          first_iteration_s=float(ends[0]))

    def release(self, seq: Seq) -> None:
        pass
