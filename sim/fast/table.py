"""Per-request state of the array engine: one column per `Seq` field, indexed by trace
position - numpy arrays for what is read over many rows at once, Python lists for what the
edges (admission, preemption, completion) read and write one request at a time (a list item
costs a fraction of a numpy scalar). Records are built from the columns at the end, with the
same columns, dtypes and values as `Engine.records()`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqsched.sim.engine import RECORD_COLUMNS


@dataclass
class RequestTable:
    ids: list                    # trace ids, as `Seq.id` holds them
    arrival_s: np.ndarray        # float64
    prompt: np.ndarray           # int64
    output: np.ndarray           # true length (int64)
    predicted: np.ndarray        # int64
    target: np.ndarray           # true length clipped to the run's cap (int64)

    def __post_init__(self) -> None:
        n = len(self.ids)
        zeros = lambda: [0] * n                               # noqa: E731
        nans = lambda: [float("nan")] * n                     # noqa: E731
        self.truncated = self.target < self.output
        self.prompt_l, self.target_l = self.prompt.tolist(), self.target.tolist()
        self.generated, self.recomputed = zeros(), zeros()
        self.attempts, self.preemptions = zeros(), zeros()
        self.wasted, self.recomputed_tokens = zeros(), zeros()
        self.slot_tokens, self.slot_tokens_all = zeros(), zeros()
        self.replica = np.zeros(n, dtype=np.int64)
        self.first_scheduled_s, self.first_token_s, self.finish_s = nans(), nans(), nans()

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> pd.DataFrame:
        """One record per request in trace order (what `Engine.records()` returns)."""
        i64 = lambda xs: np.array(xs, dtype=np.int64)         # noqa: E731
        f64 = lambda xs: np.array(xs, dtype=np.float64)       # noqa: E731
        df = pd.DataFrame({
            "id": self.ids, "replica": self.replica, "arrival_s": self.arrival_s,
            "prompt_tokens": self.prompt, "output_tokens": self.output,
            "predicted": self.predicted, "generated_tokens": i64(self.generated),
            "first_scheduled_s": f64(self.first_scheduled_s),
            "first_token_s": f64(self.first_token_s), "finish_s": f64(self.finish_s),
            "attempts": i64(self.attempts), "preemptions": i64(self.preemptions),
            "wasted_tokens": i64(self.wasted), "recomputed_tokens": i64(self.recomputed_tokens),
            "slot_tokens": i64(self.slot_tokens), "slot_tokens_all": i64(self.slot_tokens_all),
            "truncated": self.truncated})
        df["failed_attempts"] = df["attempts"] - 1 - df["preemptions"]
        return df[RECORD_COLUMNS]
