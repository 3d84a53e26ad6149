"""The Mooncake traces (kvcache-ai/Mooncake, JSONL): timestamp (ms), input_length, output_length;
hash_ids and other fields are kept as extra columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _extras, _ids
from seqsched.traces.request import TraceError


def _mooncake(df, cmap, src, locate, options, rownums):
    ts = pd.to_numeric(df[cmap["timestamp"]], errors="coerce")
    out = pd.DataFrame({
        "id": _ids(rownums),
        "arrival_s": ts.to_numpy(dtype=float) / 1000.0,
        "prompt_tokens": df[cmap["input_length"]].to_numpy(),
        "output_tokens": df[cmap["output_length"]].to_numpy(),
    })
    bad = ts.isna().to_numpy() & ~df[cmap["timestamp"]].isna().to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise TraceError(f"{src.path}: {locate(r)}: timestamp is "
                         f"{df[cmap['timestamp']].iloc[r]!r}, not a number of milliseconds")
    out = out.assign(**_extras(df, cmap.values()))
    names = {"arrival_s": cmap["timestamp"] + " (ms)", "prompt_tokens": cmap["input_length"],
             "output_tokens": cmap["output_length"]}
    out.attrs["generated_ids"] = True
    return out, names, None


FORMAT = Format("mooncake", "Mooncake JSONL: timestamp (ms), input_length, output_length, "
                "hash_ids (kept)", ("timestamp", "input_length", "output_length"))

CONVERTER = _Converter(_mooncake)
