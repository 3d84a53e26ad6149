"""The native trace format (JSONL: id, arrival_s, prompt_tokens, output_tokens, extras) and the
reader for the shared Alpaca/Vicuna length file (../shared/data/alpaca_vicuna_lengths_train.jsonl).

Both are thin wrappers over `traces.io` (which reads every format); kept for the names other
packages import."""

from __future__ import annotations

from pathlib import Path

from seqsched.traces.request import Trace, TraceError


def read_jsonl(path: str | Path) -> Trace:
    """Read a JSON Lines trace: native rows, or the shared Alpaca/Vicuna file (detected by its
    `vicuna7b_output_tokens` field; per-temperature lengths become `len_t<T>` columns, the
    Vicuna prompt text the `prompt` column, the max over temperatures `max_of_samples`)."""
    from seqsched.traces.io import _Source, load_trace
    src = _Source.open(Path(path))
    if src.container not in ("jsonl", "json"):
        raise TraceError(f"{path}: not a JSON Lines file; use traces.io.load_trace for "
                         "CSV/Parquet traces")
    return load_trace(path)


def write_jsonl(trace: Trace, path: str | Path) -> None:
    from seqsched.traces.io import save_trace
    save_trace(trace, Path(path) if str(path).endswith(".jsonl") else Path(str(path)))


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
