"""The Splitwise / Vidur processed CSV traces: arrived_at (s), num_prefill_tokens,
num_decode_tokens."""

from __future__ import annotations

import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _ids


def _splitwise(df, cmap, src, locate, options, rownums):
    out = pd.DataFrame({
        "id": _ids(rownums),
        "arrival_s": df[cmap["arrived_at"]],
        "prompt_tokens": df[cmap["num_prefill_tokens"]],
        "output_tokens": df[cmap["num_decode_tokens"]],
    })
    used = set(cmap.values())
    for c in df.columns:
        if c not in used:
            out[c] = df[c].to_numpy()
    names = {"arrival_s": cmap["arrived_at"], "prompt_tokens": cmap["num_prefill_tokens"],
             "output_tokens": cmap["num_decode_tokens"]}
    out.attrs["generated_ids"] = True
    return out, names, None


FORMAT = Format("splitwise", "Splitwise/Vidur processed CSV: arrived_at (s), num_prefill_tokens, "
                "num_decode_tokens", ("arrived_at", "num_prefill_tokens", "num_decode_tokens"))

CONVERTER = _Converter(_splitwise, streams_window=True,
                       arrival_of=lambda b, cmap, st: pd.to_numeric(
                           b[cmap["arrived_at"]], errors="coerce").to_numpy(float))
