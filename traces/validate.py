"""The one validation layer for trace values: every reader (and `Trace(...)` itself) ends in
`normalise_frame`, which checks the native columns and the length extras before anything is
simulated, so a value no reader anticipated is refused with one line instead of a traceback
or a silent wrong answer.

What is refused (the message names the row, the column as the file calls it, and the fix):
- token counts that are not whole numbers >= 1 (prompt) / >= 1 (output), booleans (`true` is
  1 to Python, not a count to a user), lists or objects, text in a typed file (JSON/Parquet:
  `"12"` in quotes is a string), empty cells, more than `MAX_TOKENS`;
- arrival times that are negative, not finite, or so large that float64 cannot resolve a
  latency at them (`MAX_ARRIVAL_S`: epoch milliseconds or nanoseconds), never rebased
  silently because their unit is unknown;
- per-sample lengths (`len_t<T>`), `max_of_samples`, `reference_output_tokens` that are not
  whole numbers >= 0, and a `prompt` that is not text.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import pandas as pd

from seqsched.traces.errors import TraceError

REQUIRED_COLUMNS = ("id", "arrival_s", "prompt_tokens", "output_tokens")
# No model has a context of a billion tokens; a larger count is a mis-mapped column (a
# timestamp or an id), and past 2**63 it would wrap around when cast to int64.
MAX_TOKENS = 1_000_000_000
# float64 resolves 1 microsecond only below 2**52 us (~143 years): past it latencies round
# away (epoch nanoseconds make every latency 0). Epoch seconds (~1.7e9) are still exact.
MAX_ARRIVAL_S = 2.0 ** 52 * 1e-6
# extra columns that hold lengths the predictors read (max-of-samples, references)
LENGTH_EXTRAS = ("max_of_samples", "reference_output_tokens")
SAMPLE_PREFIX = "len_t"

logger = logging.getLogger("seqsched.traces")


def normalise_frame(df: pd.DataFrame, name: str = "trace", *,
                    locate: Callable[[int], str] | None = None,
                    columns: dict[str, str] | None = None,
                    skip_invalid: bool = False, ids_unique: bool = False,
                    typed: bool = False) -> pd.DataFrame:
    """Validate the required columns and types, sort by arrival (stable), reset the index.

    `name` starts every error message (readers pass the file path); `locate(row)` turns a row
    position of `df` into words such as "line 17" (default "row 17"); `columns` maps a
    required column to the name the user's file gives it (e.g. output_tokens ->
    GeneratedTokens) so messages speak the file's language. `typed`: the values come from a
    typed container (JSON, Parquet), where text in a number column is an error rather than
    text to parse (CSV). With `skip_invalid`, rows with a missing, non-numeric, negative,
    infinite or zero token count (or a bad arrival time) are dropped and counted in a warning
    instead of raising. `ids_unique` skips the duplicate-id check for ids the caller
    generated. Rows out of arrival order are sorted (stable) and counted in a warning on the
    ``seqsched.traces`` logger.
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
        v, wrong = _numbers(raw, typed)
        for mask, why in _problems(col, raw, v, wrong, low, typed):
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
    where = locate if positions is None else (lambda r: locate(int(positions[r])))
    _check_extras(df, name, where, typed)
    df["arrival_s"] = values["arrival_s"]
    df["prompt_tokens"] = values["prompt_tokens"].astype(np.int64)
    df["output_tokens"] = values["output_tokens"].astype(np.int64)
    if not (pd.api.types.is_string_dtype(df["id"]) and not df["id"].isna().any()):
        df["id"] = df["id"].astype(str)
    # is_unique (a hash set) is ~2.5x cheaper than duplicated(); the latter only to name the row
    unique = ids_unique or df["id"].is_unique
    dup = np.zeros(len(df), bool) if unique else df["id"].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise TraceError(f"{name}: {where(row)}: duplicate request id {df['id'].iloc[row]!r}; "
                         "ids must be unique")
    arrival = values["arrival_s"]
    if len(arrival) > 1 and (np.diff(arrival) < 0).any():
        out_of_order = int((arrival < np.maximum.accumulate(arrival)).sum())
        logger.warning("%s: %d row(s) had timestamps out of order; sorted the trace by "
                       "arrival time (stable)", name, out_of_order)
        df = df.iloc[np.argsort(arrival, kind="stable")]
    return df.reset_index(drop=True)


def check_arrivals(arrival: np.ndarray, name: str, what: str = "arrival_s") -> None:
    """Arrival times an arrival process or a transform produced: finite, >= 0 and within
    float64's microsecond resolution (e.g. `--rate 1e-300` or `--speedup 1e-300`)."""
    a = np.asarray(arrival, dtype=float)
    bad = ~np.isfinite(a) | (a < 0) | (a > MAX_ARRIVAL_S)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise TraceError(f"{name}: the arrival process puts request {r} at {a[r]:.4g} s, "
                         f"outside [0, {MAX_ARRIVAL_S:.3g}] s where float64 resolves a "
                         "microsecond; use a larger --rate or --speedup")


# -- value kinds ------------------------------------------------------------------------
def _kind(value: Any, typed: bool) -> str | None:
    """What is wrong with the type of one cell of a number column, or None."""
    if isinstance(value, (bool, np.bool_)):
        return "true/false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "a list"
    if typed and isinstance(value, str) and value.strip():
        return "text"
    return None


def _numbers(raw: pd.Series, typed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(float values, NaN where not a number; mask of cells of a wrong type)."""
    n = len(raw)
    if pd.api.types.is_bool_dtype(raw):
        return np.full(n, np.nan), np.ones(n, bool)
    wrong = np.zeros(n, bool)
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        wrong = raw.map(lambda x: _kind(x, typed) is not None).to_numpy(dtype=bool)
        if wrong.any():
            raw = raw.where(~wrong, None)
    v = np.array(pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan))
    v[wrong] = np.nan
    return v, wrong


def _problems(col: str, raw: pd.Series, v: np.ndarray, wrong: np.ndarray, low: int,
              typed: bool):
    """(mask, why(row)) pairs in the order they are reported."""
    tokens = col != "arrival_s"
    none = np.zeros(len(v), bool)
    with np.errstate(invalid="ignore"):
        yield wrong, lambda r: _wrong_kind(raw.iloc[r], typed)
        yield ~np.isfinite(v) & ~wrong, lambda r: _not_a_number(raw.iloc[r])
        yield ((v != np.floor(v)) if tokens else none,
               lambda r: f"is {_fmt(v[r])}, not a whole number of tokens")
        yield v < low, lambda r: (f"is {_fmt(v[r])}; zero-length prompts cannot be scheduled"
                                  if col == "prompt_tokens" and v[r] == 0 else
                                  f"is {_fmt(v[r])}, must be >= {low}")
        if tokens:
            yield v > MAX_TOKENS, lambda r: (
                f"is {_fmt(v[r])}, more than {MAX_TOKENS:,} tokens: not a plausible token "
                "count (is the column mapping right?)")
        else:
            yield v > MAX_ARRIVAL_S, lambda r: (
                f"is {v[r]:.4g} s, too large for float64 to resolve a latency (it looks like "
                "a Unix timestamp in ms or ns); give seconds since the trace start (subtract "
                "the first timestamp and divide ms by 1e3, ns by 1e9)")


def _wrong_kind(value: Any, typed: bool) -> str:
    kind = _kind(value, typed)
    if kind == "text":
        return (f"is the text {value!r}, not a number (the file quotes it); write the number "
                "without quotes")
    shown = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"is {shown} ({kind}), not a number"


def _check_extras(df: pd.DataFrame, name: str, locate: Callable[[int], str],
                  typed: bool) -> None:
    """Length extras the predictors read, and the prompt text."""
    for col in df.columns:
        col_s = str(col)
        if col_s in LENGTH_EXTRAS or col_s.startswith(SAMPLE_PREFIX):
            raw = df[col]
            v, wrong = _numbers(raw, typed)
            missing = pd.isna(raw).to_numpy() & ~wrong
            with np.errstate(invalid="ignore"):
                bad = wrong | (~missing & (~np.isfinite(v) | (v != np.floor(v)) | (v < 0)
                                           | (v > MAX_TOKENS)))
            if col_s == "max_of_samples":
                bad |= missing
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                why = (_wrong_kind(raw.iloc[r], typed) if wrong[r] else
                       _not_a_number(raw.iloc[r]) if not np.isfinite(v[r]) else
                       f"is {_fmt(v[r])}")
                raise TraceError(f"{name}: {locate(r)}: {col_s} {why}; a length must be a "
                                 f"whole number of tokens from 0 to {MAX_TOKENS:,}")
    if "prompt" in df.columns and df["prompt"].dtype == object:
        bad = df["prompt"].map(lambda x: not (x is None or isinstance(x, str) or (
            isinstance(x, float) and np.isnan(x)))).to_numpy(dtype=bool)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise TraceError(f"{name}: {locate(r)}: prompt is {df['prompt'].iloc[r]!r}, not "
                             "text; give the prompt as a string")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _not_a_number(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or (
            isinstance(value, str) and not value.strip()) or value is pd.NA:
        return "is empty (NaN); every row needs a value"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"is {float(value)}, not a finite number"
    return f"is {value!r}, not a number"
