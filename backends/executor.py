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
        first = cost.prefill_time(chunks[is_prefill], prefilled[is_prefill],
                                  int((~is_prefill).sum()), int(context[~is_prefill].sum()))
        # after iteration 0 each row attends to its context plus the token just produced
        later = cost.decode_times(rows, int((context + chunks).sum()) + rows, iterations - 1)
    return np.concatenate(([first], later))


@dataclass
class CostModelExecutor:
    cost: CostModel
    name: str = "cost-model"

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
