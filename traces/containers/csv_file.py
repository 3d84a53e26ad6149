"""CSV traces (also tab/semicolon/pipe separated, gzip-compressed): read vectorised with
pyarrow; ``rows=`` and, for time-ordered formats, ``window=`` are pushed down into a streaming
read so a day can be cut out of a 27M-row Azure file in bounded memory."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd

from seqsched.traces.convert import _finish
from seqsched.traces.formats.base import _key, _resolve
from seqsched.traces.formats.registry import _CONVERTERS, FORMATS, _mismatch, detect_format
from seqsched.traces.request import Trace, TraceError
from seqsched.traces.source import _Source


def _read_csv(src: _Source, fmt: str | None, *, rows, window, skip_invalid, options) -> Trace:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header_line = next((ln for ln in src.head.splitlines() if ln.strip()), "")
    src.delimiter = _delimiter(header_line)
    try:
        header = next(csv.reader([header_line], delimiter=src.delimiter))
    except csv.Error:
        header = header_line.split(src.delimiter)
    raw_header = list(header)
    header = [h.strip() for h in header]
    if header and all(_is_number(h) for h in header if h):
        raise TraceError(f"{src.path}: line 1: no header row (found {header_line[:60]!r}); "
                         "the first line must name the columns, e.g. "
                         "TIMESTAMP,ContextTokens,GeneratedTokens or "
                         "arrival_s,prompt_tokens,output_tokens")
    name = fmt or detect_format(header, str(src.path))
    conv = _CONVERTERS[name]
    cmap = _resolve(header, FORMATS[name].required)
    if len(cmap) < len(FORMATS[name].required):
        raise TraceError(f"{src.path}: {_mismatch(header, name)}")
    string_cols = {raw_header[i] for i, h in enumerate(header) if _key(h) in conv.string_keys}
    column_types = {c: pa.string() for c in string_cols}
    bad_rows: list = []

    def on_invalid(row) -> str:
        bad_rows.append(row)
        return "skip"

    read_opts = pacsv.ReadOptions(block_size=1 << 22)
    conv_opts = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=False)

    def open_stream():
        return src.arrow_input()

    def read(newlines_in_values: bool):
        parse_opts = pacsv.ParseOptions(delimiter=src.delimiter,
                                        invalid_row_handler=on_invalid,
                                        newlines_in_values=newlines_in_values)
        bad_rows.clear()
        if rows is None and (window is None or not conv.streams_window):
            return pacsv.read_csv(open_stream(), read_options=read_opts,
                                  parse_options=parse_opts, convert_options=conv_opts), None, {}
        return _stream_csv(open_stream(), read_opts, parse_opts, conv_opts, rows,
                           window if conv.streams_window else None, conv, cmap)

    # A quoted field may hold newlines (prompts in native CSV); pyarrow's parallel chunker
    # must then track quotes, which is slower, so only when the file quotes anything. Quotes
    # first seen past the sniffed head make pyarrow report "out of sync" or rows with too
    # few fields: read again, tracking quotes (the error path pays, not every read).
    quoted = '"' in src.head
    try:
        try:
            table, src_rows, state = read(quoted)
            retry = not quoted and bool(bad_rows)
        except pa.ArrowInvalid as e:
            if quoted or "out of sync with chunker" not in str(e):
                raise
            retry = True
        if retry:
            table, src_rows, state = read(True)
    except pa.ArrowInvalid as e:
        raise TraceError(_arrow_csv_message(src, str(e))) from None
    if "t0_ns" in state:
        options["_t0_ns"] = state["t0_ns"]
    line = src.unterminated_quote_line()
    if line is not None:
        raise TraceError(f"{src.path}: line {line}: a quoted field opens here and the file "
                         "ends before it closes; the last line looks truncated: re-download "
                         "the file or delete that line")
    if bad_rows:
        _raise_bad_row(src, bad_rows, len(header))
    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise TraceError(src.find_bad_utf8())
    if table.num_rows == 0:
        if src_rows is not None:
            sel = " and ".join(x for x in (window and f"the window {_span(window)} s",
                                           rows and f"rows {_span(rows)}") if x)
            raise TraceError(f"{src.path}: no request arrives in {sel}; widen the selection")
        raise TraceError(f"{src.path}: the file has a header but no requests")
    df = table.to_pandas()
    df.columns = [c.strip() for c in df.columns]
    for col in df.columns:  # native CSV round trip: JSON-encoded list/dict cells
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            sample = df[col].dropna().head(20)
            if len(sample) and sample.map(lambda v: isinstance(v, str) and v[:1] in "[{"
                                          and v[-1:] in "]}").all():
                try:
                    df[col] = df[col].map(lambda v: json.loads(v) if isinstance(v, str) else v)
                except ValueError:
                    pass
    locate = src.locate_lines(skip_header=True, rows=src_rows)
    rownums = np.arange(len(df)) if src_rows is None else src_rows
    trace = _finish(src, df, name, locate, skip_invalid, options, rownums)
    if window is not None:  # exact filter + shift to the window start (after any push-down)
        from seqsched.traces import arrivals
        trace = arrivals.window(trace, *window)
    return trace


def _stream_csv(stream, read_opts, parse_opts, conv_opts, rows, window, conv, cmap):
    """Stream a CSV in record batches, keeping rows [a, b) and (for time-ordered formats) the
    arrival window; stops reading once past the end. Returns (table, file row numbers)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    a, b = rows if rows is not None else (None, None)
    a = a or 0
    reader = pacsv.open_csv(stream, read_options=read_opts, parse_options=parse_opts,
                            convert_options=conv_opts)
    kept, kept_rows = [], []
    offset = 0
    t0_state: dict = {}
    for batch in reader:
        n = batch.num_rows
        lo, hi = offset, offset + n
        offset = hi
        if b is not None and lo >= b:
            break
        if hi <= a:
            continue
        s, e = max(a - lo, 0), n if b is None else min(b - lo, n)
        batch = batch.slice(s, e - s)
        idx = np.arange(lo + s, lo + e)
        if window is not None:
            t = conv.arrival_of(batch.to_pandas(), cmap, t0_state)
            start, end = window
            mask = np.ones(len(t), bool)
            if start is not None:
                mask &= t >= start
            if end is not None:
                mask &= t < end
            if mask.any():
                kept.append(batch.filter(pa.array(mask)))
                kept_rows.append(idx[mask])
            if end is not None and np.isfinite(t).any() and np.nanmin(t) >= end:
                break
        else:
            kept.append(batch)
            kept_rows.append(idx)
    schema = reader.schema
    table = pa.Table.from_batches(kept, schema=schema) if kept else schema.empty_table()
    src_rows = np.concatenate(kept_rows) if kept_rows else np.zeros(0, np.int64)
    return table, src_rows, t0_state


def _delimiter(header_line: str) -> str:
    """Comma, unless the header has none and is split by tabs, semicolons or pipes."""
    if "," in header_line:
        return ","
    counts = {d: header_line.count(d) for d in ("\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _span(pair) -> str:
    return ":".join("" if v is None else f"{v:g}" for v in pair)


def _arrow_csv_message(src: _Source, msg: str) -> str:
    if "UTF8" in msg or "utf8" in msg.lower():
        return src.find_bad_utf8()
    if "Empty CSV file" in msg:
        return f"{src.path}: the file is empty; give a file with a header and requests"
    first = msg.splitlines()[0]
    return (f"{src.path}: cannot parse the CSV ({first}); check the delimiter (comma) and "
            "quoting, or pass --format")


def _raise_bad_row(src: _Source, bad_rows: list, ncols: int) -> None:
    row = bad_rows[0]
    line = row.number
    if line is None:  # find the text in the file (error path only)
        target = row.text.strip()
        with src.open_binary() as f:
            for lineno, raw in enumerate(f, 1):
                if raw.decode("utf-8", "replace").strip() == target:
                    line = lineno
                    break
    with src.open_binary() as f:
        total = sum(1 for _ in f)
    last = line is not None and line >= total
    more = len(bad_rows) - 1
    where = f"line {line}" if line else "a row"
    raise TraceError(
        f"{src.path}: {where}: has {row.actual_columns} field(s), expected {ncols} "
        f"({row.text[:60]!r})" + (f" ({more} more such rows)" if more else "")
        + ("; the last line looks truncated: re-download the file or delete that line"
           if last else "; fix or delete that line"))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
