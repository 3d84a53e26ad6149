"""`Request` and `Trace`: the unit of work and the columnar table that holds many of them.

A Trace is columnar (a pandas DataFrame) so that million-row production traces load and
transform vectorised; `Request` objects are materialised only when the engine needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd

from seqsched.traces.errors import TraceError
from seqsched.traces.validate import MAX_TOKENS, REQUIRED_COLUMNS, normalise_frame

__all__ = ["MAX_TOKENS", "REQUIRED_COLUMNS", "Request", "Trace", "TraceError",
           "normalise_frame"]


@dataclass(frozen=True, slots=True)
class Request:
    """One request. `output_tokens` is the true response length, counting every generated
    token including the one the prefill iteration produces (as vLLM and Vidur count it)."""

    id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prompt: str | None = None
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Trace:
    """A table of requests sorted by arrival time.

    Columns: id (str), arrival_s (float), prompt_tokens (int), output_tokens (int); optional
    `prompt` (str) and any extra columns (kept, e.g. per-temperature lengths or predictions).
    """

    df: pd.DataFrame
    name: str = "trace"

    def __post_init__(self) -> None:
        self.df = normalise_frame(self.df, self.name)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_requests(cls, requests: list[Request], name: str = "trace") -> "Trace":
        rows = []
        for r in requests:
            row = {"id": r.id, "arrival_s": r.arrival_s, "prompt_tokens": r.prompt_tokens,
                   "output_tokens": r.output_tokens}
            if r.prompt is not None:
                row["prompt"] = r.prompt
            row.update(r.extras)
            rows.append(row)
        return cls(pd.DataFrame(rows), name=name)

    # -- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.df)

    @property
    def ids(self) -> np.ndarray:
        return self.df["id"].to_numpy()

    @property
    def arrival_s(self) -> np.ndarray:
        return self.df["arrival_s"].to_numpy(dtype=float)

    @property
    def prompt_tokens(self) -> np.ndarray:
        return self.df["prompt_tokens"].to_numpy(dtype=np.int64)

    @property
    def output_tokens(self) -> np.ndarray:
        return self.df["output_tokens"].to_numpy(dtype=np.int64)

    @property
    def extra_columns(self) -> list[str]:
        return [c for c in self.df.columns if c not in REQUIRED_COLUMNS and c != "prompt"]

    def requests(self) -> list[Request]:
        cols = self.df
        prompts = cols["prompt"].tolist() if "prompt" in cols else [None] * len(cols)
        extra_cols = self.extra_columns
        extras = cols[extra_cols].to_dict("records") if extra_cols else [{}] * len(cols)
        return [
            Request(i, float(a), int(p), int(o), pr, e)
            for i, a, p, o, pr, e in zip(cols["id"].tolist(), cols["arrival_s"].tolist(),
                                         cols["prompt_tokens"].tolist(),
                                         cols["output_tokens"].tolist(), prompts, extras)
        ]

    def __iter__(self) -> Iterator[Request]:
        return iter(self.requests())

    @classmethod
    def _trusted(cls, df: pd.DataFrame, name: str) -> "Trace":
        """Wrap a frame that is already normalised (sorted, typed, valid) without re-checking;
        for transforms that keep those invariants by construction."""
        t = object.__new__(cls)
        t.df = df.reset_index(drop=True)
        t.name = name
        return t

    def with_columns(self, **columns: Any) -> "Trace":
        df = self.df.copy()
        for k, v in columns.items():
            df[k] = v
        return Trace(df, name=self.name)
