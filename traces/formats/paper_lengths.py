"""The Sequence Scheduling paper's length JSON (offline): id, L_gt, L_t0.0, L_t0.3, L_t0.5,
L_t0.7; the true output length is L_t0.0. The file has no prompt lengths: ``prompt_tokens=``
sets the assumed one (default 100)."""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _ids, _resolve
from seqsched.traces.request import TraceError
from seqsched.traces.source import _Source

logger = logging.getLogger("seqsched.traces")


def _temperature_columns(df: pd.DataFrame, prefix: str, src: _Source) -> list[str]:
    """The L_t<T> columns, by temperature; a column named L_t<not a number> is an error."""
    temps = {}
    for c in df.columns:
        if str(c).startswith(prefix):
            try:
                t = float(str(c)[len(prefix):])
            except ValueError:
                t = float("nan")
            if not (np.isfinite(t) and t >= 0):
                raise TraceError(f"{src.path}: key {c!r} is not a length at a sampling "
                                 "temperature; the paper's file has L_gt, L_t0.0, L_t0.3, "
                                 "L_t0.5, L_t0.7 (rename or drop that key)")
            temps[c] = t
    return sorted(temps, key=temps.get)


def _assumed_prompt_tokens(options: dict, src: _Source) -> int:
    value = options.get("prompt_tokens", 100)
    try:
        n = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        n = float("nan")
    if not (np.isfinite(n) and n >= 1 and n == int(n)):
        raise TraceError(f"{src.path}: --trace-option prompt_tokens={value} must be a whole "
                         "number of tokens >= 1 (the prompt length assumed for every request)")
    return int(n)


def _paper_lengths(df, cmap, src, locate, options, rownums):
    temps = _temperature_columns(df, "L_t", src)
    idcol = _resolve(df.columns, ["id"]).get("id")
    prompt_col = _resolve(df.columns, ["prompt_tokens"]).get("prompt_tokens")
    assumed = None if prompt_col else _assumed_prompt_tokens(options, src)
    out = pd.DataFrame({"id": df[idcol] if idcol else _ids(rownums),
                        "arrival_s": np.zeros(len(df)),
                        "prompt_tokens": df[prompt_col] if prompt_col else assumed,
                        "output_tokens": df[cmap["L_t0.0"]]})
    if assumed is not None:
        out["prompt_tokens_assumed"] = True
        logger.warning("%s: the paper's length file has no prompt lengths; assuming %d prompt "
                       "tokens per request (set with --trace-option prompt_tokens=N, or use "
                       "the shared alpaca_vicuna JSONL which has them)", src.path, assumed)
    for c in temps:
        out[f"len_t{c[3:]}"] = df[c].to_numpy()
    if "L_gt" in df.columns:
        out["reference_output_tokens"] = df["L_gt"].to_numpy()
    if temps:
        best = pd.DataFrame({c: pd.to_numeric(df[c].map(
            lambda v: v if isinstance(v, numbers.Real) else None), errors="coerce")
            for c in temps}).max(axis=1)     # bad values: traces/validate.py names the row
        out["max_of_samples"] = (best.astype(np.int64) if np.isfinite(best.to_numpy(float)).all()
                                 else best).to_numpy()
    names = {"output_tokens": cmap["L_t0.0"]}
    return out, names, None


FORMAT = Format("paper-lengths", "Sequence Scheduling paper length JSON: id, L_gt, L_t0.0, "
                "L_t0.3, L_t0.5, L_t0.7 (offline; true length = L_t0.0)", ("L_t0.0",))

CONVERTER = _Converter(_paper_lengths, options=("prompt_tokens",))
