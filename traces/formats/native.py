"""The seqsched native schema (JSONL/CSV/Parquet): id (optional), arrival_s, prompt_tokens,
output_tokens; extra columns are kept. What `save_trace` writes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _ids, _resolve
from seqsched.traces.request import TraceError


def _native(df, cmap, src, locate, options, rownums):
    used = set(cmap.values())
    idcol = _resolve(df.columns, ["id"]).get("id")
    out = pd.DataFrame({
        "id": df[idcol] if idcol else _ids(rownums),
        "arrival_s": df[cmap["arrival_s"]],
        "prompt_tokens": df[cmap["prompt_tokens"]],
        "output_tokens": df[cmap["output_tokens"]],
    })
    if idcol:
        used.add(idcol)
        empty = (out["id"].isna() | (out["id"].astype(str).str.strip() == "")).to_numpy()
        if empty.any():
            r = int(np.flatnonzero(empty)[0])
            raise TraceError(f"{src.path}: {locate(r)}: id is empty; give every request an id "
                             "(or drop the id column to number rows automatically)")
    for c in df.columns:
        if c not in used and c not in out:
            out[c] = df[c].to_numpy()
    return out, {k: v for k, v in cmap.items()}, None


FORMAT = Format("native", "seqsched native JSONL/CSV/Parquet: id (optional), arrival_s, "
                "prompt_tokens, output_tokens, extra columns kept",
                ("arrival_s", "prompt_tokens", "output_tokens"))

CONVERTER = _Converter(_native, frozenset({"id"}))
