"""The Azure LLM inference traces (Azure/AzurePublicDataset: 2023 code and conversation, 2024
week-long): TIMESTAMP (date-time), ContextTokens, GeneratedTokens; arrival_s is seconds since
the earliest row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _ids
from seqsched.traces.request import TraceError
from seqsched.traces.source import Locate, _Source


def _timestamps(series: pd.Series, src: _Source, locate: Locate, col: str,
                lenient: bool = False) -> np.ndarray:
    """Date-time strings -> int64 nanoseconds since the epoch (UTC if an offset is given).
    lenient: unparseable stamps become NaN (float array) instead of raising."""
    import pyarrow as pa
    if pd.api.types.is_datetime64_any_dtype(series) and not series.isna().any():
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    if pd.api.types.is_string_dtype(series):
        arr = pa.array(series, type=pa.string(), from_pandas=True)
    else:
        obj = series.astype(object).where(series.notna(), None)
        arr = pa.array(obj.map(lambda v: v if v is None else str(v)).to_numpy(dtype=object),
                       type=pa.string())
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            ts = arr.cast(typ)
            if ts.null_count == arr.null_count:
                if arr.null_count == 0:
                    return ts.cast(pa.int64()).to_numpy()
                break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any() and lenient:
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
        ns[bad] = np.nan
        return ns
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        v = series.iloc[r]
        what = "is empty" if v is None or (isinstance(v, float) and math.isnan(v)) or \
            (isinstance(v, str) and not v.strip()) else f"is {v!r}, not a date-time"
        raise TraceError(f"{src.path}: {locate(r)}: {col} {what}; expected e.g. "
                         "2023-11-16 18:15:46.6805900 or 2024-05-12 00:00:00.001163+00:00")
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _azure(df, cmap, src, locate, options, rownums):
    ns = _timestamps(df[cmap["TIMESTAMP"]], src, locate, cmap["TIMESTAMP"],
                     lenient=bool(options.get("_skip_invalid")))
    t0 = options.get("_t0_ns", np.nanmin(ns))  # a streamed window keeps the file's origin
    arrival = (ns - t0) / 1e9
    out = pd.DataFrame({
        "id": _ids(rownums),
        "arrival_s": arrival,
        "prompt_tokens": df[cmap["ContextTokens"]],
        "output_tokens": df[cmap["GeneratedTokens"]],
    })
    names = {"arrival_s": cmap["TIMESTAMP"], "prompt_tokens": cmap["ContextTokens"],
             "output_tokens": cmap["GeneratedTokens"]}
    used = set(cmap.values())
    for c in df.columns:
        if c not in used:
            out[c] = df[c].to_numpy()
    out.attrs["generated_ids"] = True
    return out, names, None


def _azure_arrival(batch: pd.DataFrame, cmap, state: dict) -> np.ndarray:
    """Seconds since the first row read, for one streamed batch (NaN where unparseable; the
    exact converter reports those rows)."""
    import pyarrow as pa
    arr = pa.array(batch[cmap["TIMESTAMP"]].to_numpy(dtype=object, na_value=None),
                   type=pa.string())
    ns = None
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            ns = arr.cast(typ).cast(pa.int64()).to_numpy(zero_copy_only=False)
            valid = ~np.asarray(arr.is_null())
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    if ns is None:
        parsed = pd.to_datetime(batch[cmap["TIMESTAMP"]], format="ISO8601", errors="coerce",
                                utc=True)
        valid = ~parsed.isna().to_numpy()
        ns = np.where(valid, parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64), 0)
    ns = np.asarray(ns, dtype=np.int64)
    if "t0_ns" not in state and valid.any():
        state["t0_ns"] = int(ns[valid][0])
    out = (ns - state.get("t0_ns", 0)) / 1e9
    out[~valid] = np.nan
    return out


FORMAT = Format("azure", "Azure LLM inference trace 2023/2024: TIMESTAMP (date-time), "
                "ContextTokens, GeneratedTokens; arrival_s relative to the earliest row",
                ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))

CONVERTER = _Converter(_azure, frozenset({"timestamp"}), True, _azure_arrival)
