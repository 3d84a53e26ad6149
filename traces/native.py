"""The native trace format (JSONL: id, arrival_s, prompt_tokens, output_tokens, extras) and the
reader for the shared Alpaca/Vicuna length file (../shared/data/alpaca_vicuna_lengths_train.jsonl).

Both are thin wrappers over `traces.io` (which reads every format); kept for the names other
packages import."""

from __future__ import annotations

from pathlib import Path

from seqsched.traces.formats.alpaca_vicuna import (  # noqa: F401 - re-exported
    ALPACA_TEMPLATE, ALPACA_TEMPLATE_INPUT, VICUNA_SYSTEM)
from seqsched.traces.request import Trace, TraceError

__all__ = ["ALPACA_TEMPLATE", "ALPACA_TEMPLATE_INPUT", "VICUNA_SYSTEM", "read_jsonl", "write_jsonl"]


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
