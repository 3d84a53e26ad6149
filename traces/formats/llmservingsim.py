"""LLMServingSim's workload files (casys-kaist/LLMServingSim `workloads/*.jsonl`, the
`workload.jsonl` of its bench folders; JSONL): input_toks, output_toks, arrival_time_ns (from
the start of the run); input_tok_ids and output_tok_ids, when present, are kept as columns
(the prompt's token ids key the prefix cache). A whole bench folder with what vLLM measured
replays with `seqsched validate --measured` (traces/recorded.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _extras, _ids
from seqsched.traces.request import TraceError


def _llmservingsim(df, cmap, src, locate, options, rownums):
    ns = pd.to_numeric(df[cmap["arrival_time_ns"]], errors="coerce")
    bad = ns.isna().to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise TraceError(f"{src.path}: {locate(r)}: arrival_time_ns is "
                         f"{df[cmap['arrival_time_ns']].iloc[r]!r}, not a number of "
                         "nanoseconds")
    out = pd.DataFrame({
        "id": _ids(rownums),
        "arrival_s": ns.to_numpy(dtype=float) / 1e9,
        "prompt_tokens": df[cmap["input_toks"]].to_numpy(),
        "output_tokens": df[cmap["output_toks"]].to_numpy(),
    })
    out = out.assign(**_extras(df, cmap.values()))
    names = {"arrival_s": cmap["arrival_time_ns"] + " (ns)", "prompt_tokens": cmap["input_toks"],
             "output_tokens": cmap["output_toks"]}
    out.attrs["generated_ids"] = True
    return out, names, None


FORMAT = Format("llmservingsim", "LLMServingSim workload JSONL: input_toks, output_toks, "
                "arrival_time_ns; input_tok_ids kept (prefix-cache keys)",
                ("input_toks", "output_toks", "arrival_time_ns"))

CONVERTER = _Converter(_llmservingsim)
