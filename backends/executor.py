"""The cost-model executor: simulated time for a Step from a cost model (roofline or profile).

It implements the engine's `Executor` contract (`seqsched.sim.executor`); the live executor
(backends/live/) implements the same two methods with a real model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.backends.cost_model import CostModel
from seqsched.sim.step import Step, StepResult
from seqsched.sim.sequence import Seq


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
        decoding = context[~is_prefill]
        if getattr(cost, "wants_decode_spread", False) and rows:
            # the longest and shortest context (skew correction); all grow by one per
            # iteration, so iteration 1's are the rows' after iteration 0
            spread = ({"decode_max": int(decoding.max()), "decode_min": int(decoding.min())}
                      if decoding.size else {})
            first = cost.prefill_time(chunks[is_prefill], prefilled[is_prefill],
                                      int(decoding.size), int(decoding.sum()), **spread)
            later = cost.decode_times(rows, int(after.sum()), iterations - 1,
                                      context_max=int(after.max()),
                                      context_min=int(after.min()))
            return np.concatenate(([first], later))
        first = cost.prefill_time(chunks[is_prefill], prefilled[is_prefill],
                                  int(decoding.size), int(decoding.sum()))
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
                          first_iteration_s=float(ends[0]),
                          last_iteration_s=float(ends[n - 2]) if n > 1 else 0.0)

    def dp_timing(self, step: Step | None, alone_s: float | None = None):
        """(padded tokens, gathered tokens, largest rank's tokens) -> seconds of the step's
        one iteration in a DP lockstep group (`alone_s`: its time alone, if known), or of the dummy pass (`step`
        None); None when the cost model does not take DP token counts (`wants_dp_tokens`)."""
        cost = self.cost
        if not getattr(cost, "wants_dp_tokens", False):
            return None
        if step is None:
            return cost.dummy_time
        alone = float(iteration_times(cost, step, 1)[0]) if alone_s is None else float(alone_s)
        rows = len(step.seqs)
        tokens = sum(step.prefill_tokens) + sum(1 for c in step.prefill_tokens if c == 0)

        def timing(padded: int, gathered: int, largest: int | None = None) -> float:
            return cost.padded_time(alone, tokens, rows, padded, gathered, largest)
        return timing

    def release(self, seq: Seq) -> None:
        pass
