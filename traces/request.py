"""`Request` and `Trace`: the unit of work and the columnar table that holds many of them.

A Trace is columnar (a pandas DataFrame) so that million-row production traces load and
transform vectorised; `Request` objects are materialised only when the engine needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("id", "arrival_s", "prompt_tokens", "output_tokens")
# No model has a context of a billion tokens; a larger count is a mis-mapped column (a
# timestamp or an id), and past 2**63 it would wrap around when cast to int64.
MAX_TOKENS = 1_000_000_000

logger = logging.getLogger("seqsched.traces")


from seqsched.common.errors import UserError


class TraceError(UserError):
    """A trace that cannot be used; the message names the problem and the fix."""


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


def normalise_frame(df: pd.DataFrame, name: str = "trace", *,
                    locate: Callable[[int], str] | None = None,
                    columns: dict[str, str] | None = None,
                    skip_invalid: bool = False, ids_unique: bool = False) -> pd.DataFrame:
    """Validate the required columns and types, sort by arrival (stable), reset the index.

    `name` starts every error message (readers pass the file path); `locate(row)` turns a row
    position of `df` into words such as "line 17" (default "row 17"); `columns` maps a
    required column to the name the user's file gives it (e.g. output_tokens ->
    GeneratedTokens) so messages speak the file's language. With `skip_invalid`, rows with a
    missing, non-numeric, negative, infinite or zero token count (or a bad arrival time) are
    dropped and counted in a warning instead of raising. `ids_unique` skips the duplicate-id
    check for ids the caller generated. Rows out of arrival order are sorted
    (stable) and counted in a warning on the ``seqsched.traces`` logger.
    """
    locate = locate or (lambda row: f"row {row}")
    columns = columns or {}

    def label(col: str) -> str:
        src = columns.get(col)
        return f"{src} ({col})" if src and src != col else col

    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TraceError(f"{name}: missing column(s) {', '.join(missing)}; a trace needs "
                         f"{', '.join(REQUIRED_COLUMNS)}")
    if len(df) == 0:
        raise TraceError(f"{name}: the trace is empty; give a file with at least one request")
    df = df.copy()
    values: dict[str, np.ndarray] = {}
    invalid = np.zeros(len(df), dtype=bool)
    for col, low in (("arrival_s", 0), ("prompt_tokens", 1), ("output_tokens", 1)):
        raw = df[col]
        v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        problems = (
            (~np.isfinite(v), lambda r: _not_a_number(raw.iloc[r])),
            ((v != np.floor(v)) if col != "arrival_s" else np.zeros(len(v), bool),
             lambda r: f"is {_fmt(v[r])}, not a whole number of tokens"),
            (v < low, lambda r: (f"is {_fmt(v[r])}; zero-length prompts cannot be scheduled"
                                 if col == "prompt_tokens" and v[r] == 0 else
                                 f"is {_fmt(v[r])}, must be >= {low}")),
            ((v > MAX_TOKENS) if col != "arrival_s" else np.zeros(len(v), bool),
             lambda r: (f"is {_fmt(v[r])}, more than {MAX_TOKENS:,} tokens: not a plausible "
                        "token count (is the column mapping right?)")),
        )
        for mask, why in problems:
            mask = mask & ~invalid if skip_invalid else mask
            if mask.any():
                if skip_invalid:
                    invalid |= mask
                    continue
                row = int(np.flatnonzero(mask)[0])
                more = int(mask.sum()) - 1
                raise TraceError(
                    f"{name}: {locate(row)}: {label(col)} {why(row)}"
                    + (f" ({more} more such row{'s' if more != 1 else ''})" if more else "")
                    + "; fix or drop the row (or pass --skip-invalid-rows)")
        values[col] = v
    if invalid.any():
        n_bad = int(invalid.sum())
        if n_bad == len(df):
            raise TraceError(f"{name}: every row has an invalid arrival time or token count; "
                             "check the column mapping or --format")
        logger.warning("%s: skipped %d invalid row(s) (missing, non-numeric, negative, zero "
                       "or implausibly large token counts / bad arrival times); first at %s",
                       name, n_bad, locate(int(np.flatnonzero(invalid)[0])))
        keep = ~invalid
        df = df.loc[keep]
        values = {k: v[keep] for k, v in values.items()}
        positions = np.flatnonzero(keep)
    else:
        positions = None
    df["arrival_s"] = values["arrival_s"]
    df["prompt_tokens"] = values["prompt_tokens"].astype(np.int64)
    df["output_tokens"] = values["output_tokens"].astype(np.int64)
    if not (pd.api.types.is_string_dtype(df["id"]) and not df["id"].isna().any()):
        df["id"] = df["id"].astype(str)
    dup = np.zeros(len(df), bool) if ids_unique else df["id"].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        src = int(positions[row]) if positions is not None else row
        raise TraceError(f"{name}: {locate(src)}: duplicate request id {df['id'].iloc[row]!r}; "
                         "ids must be unique")
    arrival = values["arrival_s"]
    if len(arrival) > 1 and (np.diff(arrival) < 0).any():
        out_of_order = int((arrival < np.maximum.accumulate(arrival)).sum())
        logger.warning("%s: %d row(s) had timestamps out of order; sorted the trace by "
                       "arrival time (stable)", name, out_of_order)
        df = df.iloc[np.argsort(arrival, kind="stable")]
    return df.reset_index(drop=True)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _not_a_number(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or (
            isinstance(value, str) and not value.strip()) or value is pd.NA:
        return "is empty (NaN); every row needs a value"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"is {float(value)}, not a finite number"
    return f"is {value!r}, not a number"
