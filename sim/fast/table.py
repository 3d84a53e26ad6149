"""Per-request state of the array engine: one numpy column per `Seq` field, indexed by trace
position. Rows are written only at the edges (admission, preemption, completion); records are
built from the columns at the end, with the same columns, dtypes and values as
`Engine.records()`."""

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
        zeros = lambda: np.zeros(n, dtype=np.int64)          # noqa: E731
        nans = lambda: np.full(n, np.nan)                     # noqa: E731
        self.truncated = self.target < self.output
        self.generated, self.recomputed = zeros(), zeros()
        self.attempts, self.preemptions = zeros(), zeros()
        self.wasted, self.recomputed_tokens = zeros(), zeros()
        self.slot_tokens, self.slot_tokens_all = zeros(), zeros()
        self.replica = zeros()
        self.first_scheduled_s, self.first_token_s, self.finish_s = nans(), nans(), nans()

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> pd.DataFrame:
        """One record per request in trace order (what `Engine.records()` returns)."""
        df = pd.DataFrame({
            "id": self.ids, "replica": self.replica, "arrival_s": self.arrival_s,
            "prompt_tokens": self.prompt, "output_tokens": self.output,
            "predicted": self.predicted, "generated_tokens": self.generated,
            "first_scheduled_s": self.first_scheduled_s, "first_token_s": self.first_token_s,
            "finish_s": self.finish_s, "attempts": self.attempts,
            "preemptions": self.preemptions, "wasted_tokens": self.wasted,
            "recomputed_tokens": self.recomputed_tokens, "slot_tokens": self.slot_tokens,
            "slot_tokens_all": self.slot_tokens_all, "truncated": self.truncated})
        df["failed_attempts"] = df["attempts"] - 1 - df["preemptions"]
        return df[RECORD_COLUMNS]
