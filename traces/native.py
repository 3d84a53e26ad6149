"""The native trace format (JSONL: id, arrival_s, prompt_tokens, output_tokens, extras) and the
reader for the shared Alpaca/Vicuna length file (../shared/data/alpaca_vicuna_lengths_train.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from traces.request import Trace, TraceError


def read_jsonl(path: str | Path) -> Trace:
    path = Path(path)
    rows = []
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise TraceError(f"{path}:{lineno}: not valid JSON ({e.msg}); "
                                         "each line must be one JSON object") from None
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file; give the path of a trace file") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not UTF-8 text ({e.reason}); re-encode it as UTF-8") from None
    if not rows:
        raise TraceError(f"{path}: the file holds no requests")
    if "vicuna7b_output_tokens" in rows[0]:
        return _alpaca_vicuna(rows, path)
    return Trace(pd.DataFrame(rows), name=path.name)


def write_jsonl(trace: Trace, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    trace.df.to_json(path, orient="records", lines=True, force_ascii=False)


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


def _alpaca_vicuna(rows: list[dict], path: Path) -> Trace:
    """Shared-data rows -> offline trace. True length = greedy ("0.0"); per-temperature
    lengths are kept as `len_t<T>` columns so the max-of-samples GT can use them."""
    out = []
    for i, r in enumerate(rows):
        try:
            lengths = r["vicuna7b_output_tokens"]
            template = ALPACA_TEMPLATE_INPUT if r.get("input") else ALPACA_TEMPLATE
            prompt = VICUNA_SYSTEM.format(prompt=template.format(
                instruction=r["instruction"], input=r.get("input", "")))
            row = {"id": str(r["id"]), "arrival_s": 0.0, "prompt_tokens": r["prompt_tokens"],
                   "output_tokens": lengths["0.0"], "prompt": prompt,
                   "reference_output_tokens": r.get("reference_output_tokens")}
        except (KeyError, TypeError) as e:
            raise TraceError(f"{path}: row {i}: missing field {e}; expected id, instruction, "
                             "prompt_tokens, vicuna7b_output_tokens{{0.0,...}}") from None
        for temp, n in lengths.items():
            row[f"len_t{temp}"] = n
        out.append(row)
    return Trace(pd.DataFrame(out), name=path.name)
