"""The shared Alpaca/Vicuna length JSONL (offline; ../shared/data/alpaca_vicuna_lengths_*.jsonl):
id, instruction, input, prompt_tokens, vicuna7b_output_tokens{T: n},
reference_output_tokens; the prompt text is rebuilt with the Vicuna template."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter
from seqsched.traces.request import TraceError


ALPACA_TEMPLATE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:")
ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:")
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's "
                 "questions. USER: {prompt} ASSISTANT:")


def _alpaca_vicuna(df, cmap, src, locate, options, rownums):
    need = [c for c in ("id", "instruction", "prompt_tokens") if c not in df.columns]
    if need:
        raise TraceError(f"{src.path}: missing field(s) {', '.join(need)}; the Alpaca/Vicuna "
                         "file needs id, instruction, prompt_tokens, vicuna7b_output_tokens")
    lengths = df[cmap["vicuna7b_output_tokens"]].tolist()
    temps: dict[str, float] = {}
    for i, d in enumerate(lengths):
        if not isinstance(d, dict) or "0.0" not in d:
            raise TraceError(f"{src.path}: {locate(i)}: vicuna7b_output_tokens must be an "
                             "object with a \"0.0\" entry, e.g. {\"0.0\": 115, \"0.3\": 142}")
        for key in d:
            if key not in temps:
                temps[key] = _temperature(key, src, locate, i)
    temps = dict(sorted(temps.items(), key=lambda kv: kv[1]))
    for col in ("instruction", "input"):
        if col in df:
            bad = df[col].map(lambda v: v is not None and not isinstance(v, str)
                              and not (isinstance(v, float) and np.isnan(v)))
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise TraceError(f"{src.path}: {locate(r)}: {col} is {df[col].iloc[r]!r}, not "
                                 "text; give it as a string")
    inputs = df["input"].fillna("").tolist() if "input" in df else [""] * len(df)
    prompts = [VICUNA_SYSTEM.format(prompt=(ALPACA_TEMPLATE_INPUT if inp else ALPACA_TEMPLATE)
                                    .format(instruction=ins, input=inp))
               for ins, inp in zip(df["instruction"].tolist(), inputs)]
    out = pd.DataFrame({"id": df["id"].astype(str), "arrival_s": np.zeros(len(df)),
                        "prompt_tokens": df["prompt_tokens"],
                        "output_tokens": [d.get("0.0") for d in lengths],
                        "prompt": prompts})
    if "reference_output_tokens" in df:
        out["reference_output_tokens"] = df["reference_output_tokens"].to_numpy()
    for t in temps:
        out[f"len_t{t}"] = [d.get(t) for d in lengths]
    # the validation layer (traces/validate.py) refuses non-numeric lengths with their row;
    # the max here must not fail on them first
    best = pd.DataFrame({t: pd.to_numeric(
        out[f"len_t{t}"].map(lambda v: v if isinstance(v, numbers.Real) else None),
        errors="coerce") for t in temps}).max(axis=1)
    finite = np.isfinite(best.to_numpy(dtype=float))
    out["max_of_samples"] = best.astype(np.int64) if finite.all() else best
    return out, {"output_tokens": "vicuna7b_output_tokens[0.0]"}, None


def _temperature(key: str, src, locate, row: int) -> float:
    """A sampling-temperature key ("0.0", "0.7") as a number; anything else is an error."""
    try:
        t = float(key)
    except ValueError:
        t = float("nan")
    if not (np.isfinite(t) and t >= 0):
        raise TraceError(f"{src.path}: {locate(row)}: vicuna7b_output_tokens has the key "
                         f"{key!r}, not a sampling temperature; keys are temperatures such as "
                         "\"0.0\", \"0.3\" with token counts as values")
    return t


FORMAT = Format("alpaca-vicuna", "shared Alpaca/Vicuna JSONL: id, instruction, input, "
                "prompt_tokens, vicuna7b_output_tokens{T: n}, reference_output_tokens (offline)",
                ("vicuna7b_output_tokens",))

CONVERTER = _Converter(_alpaca_vicuna)
