"""BurstGPT (HPMLL/BurstGPT, Azure OpenAI GPT usage logs): Timestamp (s), Model, Request tokens,
Response tokens, Total tokens, Log Type; rows with zero response tokens are failed requests
(skipped, counted in a warning). Options ``model=`` and ``log_type=`` filter rows."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _ids, _resolve
from seqsched.traces.request import TraceError

logger = logging.getLogger("seqsched.traces")


def _as_list(v) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return [str(s) for s in v]


def _burstgpt(df, cmap, src, locate, options, rownums):
    full = _resolve(df.columns, ["Model", "Log Type", "Total tokens"])
    keep = np.ones(len(df), bool)
    for opt, col in (("model", "Model"), ("log_type", "Log Type")):
        wanted = _as_list(options.get(opt))
        if wanted:
            if col not in full:
                raise TraceError(f"{src.path}: cannot filter on {col}: the file has no "
                                 f"{col!r} column")
            values = df[full[col]].astype(str).str.strip().str.lower()
            ok = values.isin([w.lower() for w in wanted]).to_numpy()
            if not ok.any():
                present = sorted(df[full[col]].dropna().astype(str).unique())[:10]
                raise TraceError(f"{src.path}: no rows with {col} in {wanted}; the file has "
                                 f"{', '.join(map(repr, present))}")
            keep &= ok
    resp = pd.to_numeric(df[cmap["Response tokens"]], errors="coerce").to_numpy(dtype=float)
    failed = (resp == 0) & keep
    if failed.any():
        logger.warning("%s: skipped %d failed request(s) (Response tokens = 0, BurstGPT's "
                       "marker for a failed request)", src.path, int(failed.sum()))
    keep &= ~failed
    if not keep.any():
        raise TraceError(f"{src.path}: no requests left after dropping failed rows and "
                         "filters; check --trace-option model=/log_type=")
    sel = df.loc[keep]
    ids = _ids(rownums)[keep]
    out = pd.DataFrame({
        "id": ids.to_numpy(),
        "arrival_s": sel[cmap["Timestamp"]].to_numpy(),
        "prompt_tokens": sel[cmap["Request tokens"]].to_numpy(),
        "output_tokens": sel[cmap["Response tokens"]].to_numpy(),
    })
    if "Model" in full:
        out["model"] = sel[full["Model"]].to_numpy()
    if "Log Type" in full:
        out["log_type"] = sel[full["Log Type"]].to_numpy()
    names = {"arrival_s": cmap["Timestamp"], "prompt_tokens": cmap["Request tokens"],
             "output_tokens": cmap["Response tokens"]}
    out.attrs["generated_ids"] = True
    return out, names, (keep if not keep.all() else None)


FORMAT = Format("burstgpt", "BurstGPT: Timestamp (s), Model, Request tokens, Response tokens, "
                "Total tokens, Log Type; zero-response rows are failed requests (skipped)",
                ("Timestamp", "Model", "Request tokens", "Response tokens"))

CONVERTER = _Converter(_burstgpt, frozenset({"model", "log type"}), True,
                       lambda b, cmap, st: pd.to_numeric(
                           b[cmap["Timestamp"]], errors="coerce").to_numpy(float),
                       options=("model", "log_type"))
