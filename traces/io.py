"""Load and save traces in every public LLM-serving trace format.

    load_trace(path, format=None, *, rows=None, window=None, skip_invalid=False, **options)
    save_trace(trace, path)          # by extension: .jsonl, .csv, .parquet

A file is read in two layers:

* the *container* is sniffed from the bytes: Parquet (``PAR1`` magic), a JSON array
  (``[``), JSON Lines (``{``) or CSV (anything else); gzip-compressed files are opened
  transparently;
* the *format* (schema) is detected from the column names or record keys and converted to
  the native columns ``id, arrival_s, prompt_tokens, output_tokens`` (+ extras). ``format``
  overrides detection; the names are the keys of `FORMATS`.

Large CSV files are read vectorised with pyarrow; ``rows=(a, b)`` and ``window=(start_s,
end_s)`` are pushed down into a streaming read for CSV, so a day can be cut out of a
27M-row Azure file in bounded memory (see traces/README.md).

Every problem with the input raises `TraceError` (a `sim.errors.UserError`) with one line
naming the file, the line or row, the problem and the fix. Recoverable oddities (rows out of
time order, failed BurstGPT requests, skipped ShareGPT conversations) are logged as warnings
with counts on the ``seqsched.traces`` logger.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from seqsched.traces.containers.csv_file import _read_csv
from seqsched.traces.containers.json_file import _read_json, _read_jsonl
from seqsched.traces.containers.parquet_file import _read_parquet
from seqsched.traces.formats.base import Format
from seqsched.traces.formats.registry import FORMATS, detect_format
from seqsched.traces.request import Trace, TraceError
from seqsched.traces.source import _Source  # noqa: F401 - traces.native imports it from here

__all__ = ["FORMATS", "Format", "TraceError", "detect_format", "load_trace", "save_trace"]

logger = logging.getLogger("seqsched.traces")

_CONTAINERS = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_jsonl,
               "json": _read_json}


def load_trace(path: str | Path, format: str | None = None, *,
               rows: tuple[int | None, int | None] | None = None,
               window: tuple[float | None, float | None] | None = None,
               skip_invalid: bool = False, **options: Any) -> Trace:
    """Read any supported trace file into a `Trace`.

    format: a key of `FORMATS` to override detection.
    rows: (a, b) keep file rows a <= i < b (file order, before any sorting).
    window: (start_s, end_s) keep requests arriving in [start_s, end_s) and shift them so the
        window starts at 0 (times as the reader produces them, e.g. seconds since the first
        Azure row).
    skip_invalid: drop rows with missing/non-numeric/negative/zero token counts (counted in a
        warning) instead of failing.
    options: format-specific: burstgpt ``model=``, ``log_type=`` (str or list);
        sharegpt ``tokenizer=`` (local HF tokenizer dir or tokenizer.json), ``keep_text=``;
        paper-lengths ``prompt_tokens=`` (assumed prompt length, default 100).
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        close = difflib.get_close_matches(format, list(FORMATS), n=1)
        raise TraceError(f"unknown trace format {format!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else "")
                         + f"; known formats: {', '.join(FORMATS)}")
    src = _Source.open(path)
    reader = _CONTAINERS[src.container]
    trace = reader(src, format, rows=rows, window=window, skip_invalid=skip_invalid,
                   options=dict(options))
    return trace


def output_suffix(path: Path) -> str:
    """The container an output file's extension asks for; TraceError for any other."""
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix not in (".jsonl", ".csv", ".parquet", ".jsonl.gz", ".csv.gz"):
        raise TraceError(f"{path}: cannot tell the output format from the extension "
                         f"{path.suffix!r}; use .jsonl, .csv or .parquet")
    return suffix


def save_trace(trace: Trace, path: str | Path) -> Path:
    """Write a trace in the native schema; the container follows the extension. The file is
    written beside its final name and renamed when complete, so an interrupted write never
    leaves a file that looks whole."""
    path = Path(path)
    suffix = output_suffix(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(trace.df, tmp, suffix)
        os.replace(tmp, path)
    except OSError as e:
        raise TraceError(f"{path}: cannot write the file ({e.strerror or e}); pick a "
                         "writable location") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write(df, path: Path, suffix: str) -> None:
    if suffix.startswith(".parquet"):
        df.to_parquet(path, index=False)
        return
    if suffix.endswith(".gz"):    # no name or time in the gzip header: same bytes each run
        with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                   mtime=0) as gz, \
                io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
            _write_text(df, text, suffix)
    else:
        with path.open("w", encoding="utf-8", newline="") as text:
            _write_text(df, text, suffix)


def _write_text(df, handle, suffix: str) -> None:
    if suffix.startswith(".csv"):
        df = df.copy()
        for col in df.columns:
            if df[col].dtype == object and df[col].map(
                    lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
                df[col] = df[col].map(_json_cell)
        # quote every text field: a bare \r inside a prompt would otherwise end the row
        df.to_csv(handle, index=False, quoting=csv.QUOTE_NONNUMERIC)
    else:
        df.to_json(handle, orient="records", lines=True, force_ascii=False,
                   double_precision=15)


def _json_cell(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, separators=(",", ":"))
    return v
