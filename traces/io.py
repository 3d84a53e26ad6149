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

import codecs
import csv
import difflib
import gzip
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from seqsched.traces.request import REQUIRED_COLUMNS, Trace, TraceError, normalise_frame

logger = logging.getLogger("seqsched.traces")

SNIFF_BYTES = 1 << 16
Locate = Callable[[int], str]


# ---------------------------------------------------------------------------------------
# format registry
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    name: str
    description: str
    required: tuple[str, ...]        # source columns / keys that identify the format
    case_insensitive: bool = True


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("native", "seqsched native JSONL/CSV/Parquet: id (optional), arrival_s, "
           "prompt_tokens, output_tokens, extra columns kept",
           ("arrival_s", "prompt_tokens", "output_tokens")),
    Format("azure", "Azure LLM inference trace 2023/2024: TIMESTAMP (date-time), "
           "ContextTokens, GeneratedTokens; arrival_s relative to the earliest row",
           ("TIMESTAMP", "ContextTokens", "GeneratedTokens")),
    Format("splitwise", "Splitwise/Vidur processed CSV: arrived_at (s), num_prefill_tokens, "
           "num_decode_tokens", ("arrived_at", "num_prefill_tokens", "num_decode_tokens")),
    Format("burstgpt", "BurstGPT: Timestamp (s), Model, Request tokens, Response tokens, "
           "Total tokens, Log Type; zero-response rows are failed requests (skipped)",
           ("Timestamp", "Model", "Request tokens", "Response tokens")),
    Format("mooncake", "Mooncake JSONL: timestamp (ms), input_length, output_length, "
           "hash_ids (kept)", ("timestamp", "input_length", "output_length")),
    Format("sharegpt", "ShareGPT JSON: [{id, conversations: [{from, value}, ...]}]; first "
           "human turn -> prompt, next gpt turn -> output; tokens via --tokenizer or chars/4",
           ("conversations",)),
    Format("paper-lengths", "Sequence Scheduling paper length JSON: id, L_gt, L_t0.0, "
           "L_t0.3, L_t0.5, L_t0.7 (offline; true length = L_t0.0)", ("L_t0.0",)),
    Format("alpaca-vicuna", "shared Alpaca/Vicuna JSONL: id, instruction, input, "
           "prompt_tokens, vicuna7b_output_tokens{T: n}, reference_output_tokens (offline)",
           ("vicuna7b_output_tokens",)),
)}

# most specific first: detection takes the first format whose required columns are present
_DETECT_ORDER = ("alpaca-vicuna", "paper-lengths", "sharegpt", "mooncake", "azure",
                 "splitwise", "burstgpt", "native")


def _key(col: str) -> str:
    return str(col).strip().lower()


def _resolve(columns: Iterable[str], wanted: Iterable[str]) -> dict[str, str]:
    """Map each wanted column to the file's actual column name (case/space-insensitive)."""
    by_key = {}
    for c in columns:
        by_key.setdefault(_key(c), c)
    return {w: by_key[_key(w)] for w in wanted if _key(w) in by_key}


def detect_format(columns: list[str], path: str = "trace") -> str:
    """Name of the format whose identifying columns are all present, else a TraceError
    naming the closest format, its expected columns and likely misspellings."""
    for name in _DETECT_ORDER:
        if len(_resolve(columns, FORMATS[name].required)) == len(FORMATS[name].required):
            return name
    raise TraceError(f"{path}: {_mismatch(columns, None)}")


def _mismatch(columns: list[str], fmt: str | None) -> str:
    cols = [str(c) for c in columns]
    shown = ", ".join(repr(c) for c in cols[:8]) + (", ..." if len(cols) > 8 else "")

    def score(name: str) -> float:
        req = FORMATS[name].required
        found = _resolve(cols, req)
        fuzzy = sum(max((difflib.SequenceMatcher(None, _key(r), _key(c)).ratio()
                         for c in cols), default=0) for r in req if r not in found)
        return (len(found) + 0.5 * fuzzy) / len(req)

    name = fmt or max(_DETECT_ORDER, key=score)
    req = FORMATS[name].required
    found = _resolve(cols, req)
    missing = [r for r in req if r not in found]
    hints = []
    unused = [c for c in cols if c not in found.values()]  # a matched column is no candidate
    for m in missing:
        close = difflib.get_close_matches(_key(m), [_key(c) for c in unused], n=1, cutoff=0.7)
        if close:
            orig = next(c for c in unused if _key(c) == close[0])
            unused.remove(orig)
            hints.append(f"did you mean {orig!r} for {m!r}?")
    what = (f"the {name} format needs columns {', '.join(req)}" if fmt else
            f"no known trace format matches the columns ({shown}); the closest, {name}, "
            f"needs {', '.join(req)}")
    msg = f"{what}; missing {', '.join(missing)}"
    if hints:
        msg += " (" + "; ".join(hints) + ")"
    msg += ("; rename the column(s)" + ("" if fmt else " or pass --format "
            + "|".join(FORMATS)))
    return msg


# ---------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------
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


def save_trace(trace: Trace, path: str | Path) -> Path:
    """Write a trace in the native schema; the container follows the extension."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix not in (".jsonl", ".csv", ".parquet", ".jsonl.gz", ".csv.gz"):
        raise TraceError(f"{path}: cannot tell the output format from the extension "
                         f"{path.suffix!r}; use .jsonl, .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    df = trace.df
    if suffix.startswith(".parquet"):
        df.to_parquet(path, index=False)
    elif suffix.startswith(".csv"):
        df = df.copy()
        for col in df.columns:
            if df[col].dtype == object and df[col].map(
                    lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
                df[col] = df[col].map(_json_cell)
        # quote every text field: a bare \r inside a prompt would otherwise end the row
        df.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    else:
        df.to_json(path, orient="records", lines=True, force_ascii=False, double_precision=15)
    return path


def _json_cell(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, separators=(",", ":"))
    return v


# ---------------------------------------------------------------------------------------
# the raw file: sniffing, encodings, line numbers
# ---------------------------------------------------------------------------------------
@dataclass
class _Source:
    path: Path
    container: str           # parquet | json | jsonl | csv
    compression: str | None  # None | "gzip"
    head: str                # decoded first bytes (not for parquet)
    delimiter: str = ","     # CSV: set by the reader from the header line

    @classmethod
    def open(cls, path: Path) -> "_Source":
        try:
            with path.open("rb") as f:
                raw = f.read(SNIFF_BYTES)
        except FileNotFoundError:
            raise TraceError(f"{path}: no such file; give the path of a trace file "
                             "(or synth:NAME for a synthetic workload)") from None
        except IsADirectoryError:
            raise TraceError(f"{path}: is a directory; give the path of a trace file") from None
        except OSError as e:
            raise TraceError(f"{path}: cannot read the file ({e.strerror})") from None
        if raw.startswith(b"PAR1"):
            return cls(path, "parquet", None, "")
        compression = None
        if raw[:2] == b"\x1f\x8b":
            compression = "gzip"
            try:
                with gzip.open(path, "rb") as f:
                    raw = f.read(SNIFF_BYTES)
            except (OSError, EOFError) as e:
                raise TraceError(f"{path}: gzip data is corrupt or truncated ({e}); "
                                 "re-download or re-compress the file") from None
        if not raw.strip():
            raise TraceError(f"{path}: the file is empty; give a file with a header and at "
                             "least one request")
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
                           codecs.BOM_UTF32_BE)) or (len(raw) > 3 and raw[1:4:2] == b"\0\0"):
            raise TraceError(f"{path}: the file is UTF-16/32 encoded; re-encode it as UTF-8 "
                             f"(e.g. iconv -f UTF-16 -t UTF-8 {path.name} > out.csv)")
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        dec = codecs.getincrementaldecoder("utf-8")()
        try:
            head = dec.decode(raw, final=False)
        except UnicodeDecodeError as e:
            line = raw[:e.start].count(b"\n") + 1
            raise TraceError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} "
                             "at offset {e.start}); re-encode the file as UTF-8 (e.g. iconv -f "
                             "latin1 -t UTF-8)".replace("{e.start}", str(e.start))) from None
        first = head.lstrip()[:1]
        container = {"[": "json", "{": "jsonl"}.get(first, "csv")
        return cls(path, container, compression, head)

    def open_binary(self):
        return gzip.open(self.path, "rb") if self.compression else self.path.open("rb")

    def line_of(self, nth: int, skip_header: bool) -> int:
        """1-based line number where the nth (0-based) data record starts; blank lines are
        skipped, as the readers skip them. CSV records are counted with the csv module, so a
        quoted field spanning several lines (a prompt with newlines) counts as one record.
        Error path only."""
        if skip_header:
            try:
                return self._csv_line_of(nth)
            except (csv.Error, UnicodeDecodeError):
                pass  # fall back to physical lines
        seen = -1 if skip_header else 0
        lineno = 0
        with self.open_binary() as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    if seen == nth:
                        return lineno
                    seen += 1
        return lineno + 1

    def _csv_line_of(self, nth: int) -> int:
        limit = csv.field_size_limit(1 << 30)  # long prompts exceed the 128 KiB default
        try:
            with self.open_binary() as raw, io.TextIOWrapper(raw, encoding="utf-8-sig",
                                                              newline="") as text:
                reader = csv.reader(text, delimiter=self.delimiter)
                seen, end = -1, 0      # seen = -1: the next non-blank record is the header
                for record in reader:
                    start, end = end + 1, reader.line_num
                    if not record or not any(f.strip() for f in record):
                        continue
                    if seen == nth:
                        return start
                    seen += 1
            return end + 1
        finally:
            csv.field_size_limit(limit)

    def tail(self) -> tuple[int, bool]:
        """(number of lines, whether the file ends with a newline); error path only."""
        lines, last = 0, b"\n"
        with self.open_binary() as f:
            while chunk := f.read(1 << 24):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        ends_with_newline = last in (b"\n", b"\r")
        return lines + (0 if ends_with_newline else 1), ends_with_newline

    def locate_lines(self, skip_header: bool, rows: np.ndarray | None = None) -> Locate:
        def locate(r: int) -> str:
            n = int(rows[r]) if rows is not None else r
            line = self.line_of(n, skip_header)
            total, ends_with_newline = self.tail()
            if line >= total and not ends_with_newline:
                return (f"line {line} (the last line, which has no newline at the end: the "
                        "file looks truncated; re-download it or delete that line)")
            return f"line {line}"
        return locate

    def unterminated_quote_line(self) -> int | None:
        """Line where a quoted CSV field opens that the file never closes (a download cut
        inside a quoted prompt), else None. Cheap: only for uncompressed files that do not end
        with a newline; each quote toggles the quoted state (an escaped "" toggles twice), so
        an odd count means the file ends inside the field opened by its last quote."""
        if self.compression:
            return None
        with self.path.open("rb") as f:
            f.seek(0, io.SEEK_END)
            if f.tell() == 0:
                return None
            f.seek(-1, io.SEEK_END)
            if f.read(1) in (b"\n", b"\r"):
                return None
            f.seek(0)
            quotes, newlines, line_of_last_quote = 0, 0, None
            while chunk := f.read(1 << 24):
                n = chunk.count(b'"')
                if n:
                    quotes += n
                    line_of_last_quote = newlines + chunk[:chunk.rindex(b'"')].count(b"\n") + 1
                newlines += chunk.count(b"\n")
        return line_of_last_quote if quotes % 2 else None

    def find_bad_utf8(self) -> str:
        with self.open_binary() as f:
            for lineno, line in enumerate(f, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    return (f"{self.path}: line {lineno}: not UTF-8 text (byte "
                            f"0x{line[e.start]:02x}); re-encode the file as UTF-8 "
                            "(e.g. iconv -f latin1 -t UTF-8)")
        return f"{self.path}: not UTF-8 text; re-encode the file as UTF-8"


# ---------------------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------------------
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
        return src.open_binary() if src.compression else src.path

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


def _read_parquet(src: _Source, fmt: str | None, *, rows, window, skip_invalid,
                  options) -> Trace:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(src.path)
    except (pa.ArrowInvalid, OSError) as e:
        raise TraceError(f"{src.path}: not a readable Parquet file ({str(e).splitlines()[0]}); "
                         "the file may be truncated: re-write it") from None
    df = table.to_pandas()
    return _from_frame(src, df, fmt, rows, window, skip_invalid, options,
                       lambda r: f"row {r}")


def _read_jsonl(src: _Source, fmt: str | None, *, rows, window, skip_invalid,
                options) -> Trace:
    df = None
    if not src.compression:
        try:
            import pyarrow as pa
            import pyarrow.json as pajson
            table = pajson.read_json(src.path)
            if not any(pa.types.is_binary(f.type) for f in table.schema):
                df = table.to_pandas()
                for f in table.schema:
                    if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
                        df[f.name] = [v.tolist() if isinstance(v, np.ndarray) else v
                                      for v in df[f.name]]
        except Exception:  # mixed types, bad lines, ...: the exact reader below says where
            df = None
    if df is None:
        records, linenos = [], []
        with src.open_binary() as f:
            lineno = 0
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise TraceError(f"{src.path}: line {lineno}: not UTF-8 text (byte "
                                     f"0x{raw[e.start]:02x}); re-encode the file as UTF-8"
                                     ) from None
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    truncated = not raw.endswith(b"\n") or e.msg.startswith(
                        ("Expecting", "Unterminated"))
                    raise TraceError(
                        f"{src.path}: line {lineno}: not valid JSON ({_json_why(e)})"
                        + ("; the line looks truncated: re-download the file or delete that "
                           "line" if truncated else "; each line must be one JSON object")
                    ) from None
                if not isinstance(rec, dict):
                    raise TraceError(f"{src.path}: line {lineno}: expected a JSON object "
                                     f"{{...}}, found {type(rec).__name__}")
                records.append(rec)
                linenos.append(lineno)
        if not records:
            raise TraceError(f"{src.path}: the file holds no requests")
        df = pd.DataFrame.from_records(records)
        line_arr = np.asarray(linenos)
        locate = lambda r: f"line {int(line_arr[r])}"  # noqa: E731
    else:
        locate = src.locate_lines(skip_header=False)
    return _from_frame(src, df, fmt, rows, window, skip_invalid, options, locate)


def _json_why(e: json.JSONDecodeError) -> str:
    """'Expecting value at column 5', 'Unterminated string starting at column 34'."""
    return f"{e.msg}{'' if e.msg.endswith(' at') else ' at'} column {e.colno}"


def _read_json(src: _Source, fmt: str | None, *, rows, window, skip_invalid,
               options) -> Trace:
    try:
        with src.open_binary() as f:
            data = json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise TraceError(src.find_bad_utf8()) from None
    except json.JSONDecodeError as e:
        raise TraceError(f"{src.path}: line {e.lineno}: not valid JSON ({_json_why(e)}); if "
                         "that is the end of the file it is truncated: re-download it") from None
    if isinstance(data, dict):  # {id: {...}} keyed variant
        data = [dict(v, id=k) if isinstance(v, dict) and "id" not in v else v
                for k, v in data.items()]
    if not isinstance(data, list) or not data:
        raise TraceError(f"{src.path}: expected a JSON list of request objects; "
                         "found " + ("an empty list" if data == [] else type(data).__name__))
    bad = next((i for i, d in enumerate(data) if not isinstance(d, dict)), None)
    if bad is not None:
        raise TraceError(f"{src.path}: item {bad}: expected an object {{...}}, found "
                         f"{type(data[bad]).__name__}")
    df = pd.DataFrame.from_records(data)
    return _from_frame(src, df, fmt, rows, window, skip_invalid, options,
                       lambda r: f"item {r}")


def _from_frame(src, df, fmt, rows, window, skip_invalid, options, locate) -> Trace:
    cols = [str(c) for c in df.columns]
    name = fmt or detect_format(cols, str(src.path))
    cmap = _resolve(cols, FORMATS[name].required)
    if len(cmap) < len(FORMATS[name].required):
        raise TraceError(f"{src.path}: {_mismatch(cols, name)}")
    first_row = 0
    if rows is not None:
        a, b = rows
        a = a or 0
        df = df.iloc[a:b].reset_index(drop=True)
        inner = locate
        locate = lambda r: inner(r + a)  # noqa: E731
        first_row = a
        if len(df) == 0:
            raise TraceError(f"{src.path}: no requests in rows {rows}; widen the selection")
    trace = _finish(src, df, name, locate, skip_invalid, options,
                    np.arange(first_row, first_row + len(df)))
    if window is not None:
        from seqsched.traces import arrivals
        trace = arrivals.window(trace, *window)
    return trace


_CONTAINERS = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_jsonl,
               "json": _read_json}


# ---------------------------------------------------------------------------------------
# schema converters: source frame -> native frame
# ---------------------------------------------------------------------------------------
def _finish(src: _Source, df: pd.DataFrame, name: str, locate: Locate, skip_invalid: bool,
            options: dict, rownums: np.ndarray) -> Trace:
    conv = _CONVERTERS[name]
    unknown = {k for k in options if not k.startswith("_")} - set(conv.options)
    if unknown:
        raise TraceError(f"{src.path}: option(s) {', '.join(sorted(unknown))} do not apply "
                         f"to the {name} format" + (f" (it takes {', '.join(conv.options)})"
                                                    if conv.options else ""))
    cols = [str(c) for c in df.columns]
    cmap = _resolve(cols, FORMATS[name].required)
    options = dict(options, _skip_invalid=skip_invalid)
    out, names, keep = conv.convert(df, cmap, src, locate, options, rownums)
    if keep is not None:  # rows dropped by the converter: re-map positions for messages
        positions = np.flatnonzero(keep)
        inner = locate
        locate = lambda r: inner(int(positions[r]))  # noqa: E731
    stem = src.path.name
    for suffix in (".gz", ".csv", ".jsonl", ".json", ".parquet"):
        stem = stem.removesuffix(suffix)
    df = normalise_frame(out, str(src.path), locate=locate, columns=names,
                         skip_invalid=skip_invalid,
                         ids_unique=bool(out.attrs.get("generated_ids")))
    return Trace._trusted(df, stem)


@dataclass(frozen=True)
class _Converter:
    convert: Callable        # (df, cmap, src, locate, options, rownums) -> (df, names, keep)
    string_keys: frozenset = frozenset()   # CSV columns to read as text
    streams_window: bool = False           # arrival_of() works batch by batch
    arrival_of: Callable | None = None     # (batch_df, cmap, state) -> seconds array
    options: tuple[str, ...] = ()


def _ids(rownums: np.ndarray) -> pd.Series:
    """Request ids = the row's position in the file (stable across slices of one file)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    arr = pc.cast(pa.array(np.asarray(rownums, dtype=np.int64)), pa.string())
    return pd.Series(arr.to_pandas(), dtype="str")


def _extras(df: pd.DataFrame, used: Iterable[str]) -> dict[str, Any]:
    used = set(used)
    return {c: df[c].to_numpy() if df[c].dtype != object else df[c].tolist()
            for c in df.columns if c not in used}


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


def _timestamps(series: pd.Series, src: _Source, locate: Locate, col: str,
                lenient: bool = False) -> np.ndarray:
    """Date-time strings -> int64 nanoseconds since the epoch (UTC if an offset is given).
    lenient: unparseable stamps become NaN (float array) instead of raising."""
    import pyarrow as pa
    if pd.api.types.is_datetime64_any_dtype(series) and not series.isna().any():
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    if pd.api.types.is_string_dtype(series):
        arr = pa.array(series, type=pa.string(), from_pandas=True)
    else:
        obj = series.astype(object).where(series.notna(), None)
        arr = pa.array(obj.map(lambda v: v if v is None else str(v)).to_numpy(dtype=object),
                       type=pa.string())
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            ts = arr.cast(typ)
            if ts.null_count == arr.null_count:
                if arr.null_count == 0:
                    return ts.cast(pa.int64()).to_numpy()
                break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any() and lenient:
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
        ns[bad] = np.nan
        return ns
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        v = series.iloc[r]
        what = "is empty" if v is None or (isinstance(v, float) and math.isnan(v)) or \
            (isinstance(v, str) and not v.strip()) else f"is {v!r}, not a date-time"
        raise TraceError(f"{src.path}: {locate(r)}: {col} {what}; expected e.g. "
                         "2023-11-16 18:15:46.6805900 or 2024-05-12 00:00:00.001163+00:00")
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _azure(df, cmap, src, locate, options, rownums):
    ns = _timestamps(df[cmap["TIMESTAMP"]], src, locate, cmap["TIMESTAMP"],
                     lenient=bool(options.get("_skip_invalid")))
    t0 = options.get("_t0_ns", np.nanmin(ns))  # a streamed window keeps the file's origin
    arrival = (ns - t0) / 1e9
    out = pd.DataFrame({
        "id": _ids(rownums),
        "arrival_s": arrival,
        "prompt_tokens": df[cmap["ContextTokens"]],
        "output_tokens": df[cmap["GeneratedTokens"]],
    })
    names = {"arrival_s": cmap["TIMESTAMP"], "prompt_tokens": cmap["ContextTokens"],
             "output_tokens": cmap["GeneratedTokens"]}
    used = set(cmap.values())
    for c in df.columns:
        if c not in used:
            out[c] = df[c].to_numpy()
    out.attrs["generated_ids"] = True
    return out, names, None


def _azure_arrival(batch: pd.DataFrame, cmap, state: dict) -> np.ndarray:
    """Seconds since the first row read, for one streamed batch (NaN where unparseable; the
    exact converter reports those rows)."""
    import pyarrow as pa
    arr = pa.array(batch[cmap["TIMESTAMP"]].to_numpy(dtype=object, na_value=None),
                   type=pa.string())
    ns = None
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            ns = arr.cast(typ).cast(pa.int64()).to_numpy(zero_copy_only=False)
            valid = ~np.asarray(arr.is_null())
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    if ns is None:
        parsed = pd.to_datetime(batch[cmap["TIMESTAMP"]], format="ISO8601", errors="coerce",
                                utc=True)
        valid = ~parsed.isna().to_numpy()
        ns = np.where(valid, parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64), 0)
    ns = np.asarray(ns, dtype=np.int64)
    if "t0_ns" not in state and valid.any():
        state["t0_ns"] = int(ns[valid][0])
    out = (ns - state.get("t0_ns", 0)) / 1e9
    out[~valid] = np.nan
    return out


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


def _as_list(v) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return [str(s) for s in v]


def _burstgpt(df, cmap, src, locate, options, rownums):
    full = _resolve(df.columns, ["Model", "Log Type", "Total tokens"])
    keep = np.ones(len(df), bool)
    for opt, col in (("model", "Model"), ("log_type", "Log Type")):
        wanted = _as_list(options.get(opt))
        if wanted:
            if col not in full:
                raise TraceError(f"{src.path}: cannot filter on {col}: the file has no "
                                 f"{col!r} column")
            values = df[full[col]].astype(str).str.strip().str.lower()
            ok = values.isin([w.lower() for w in wanted]).to_numpy()
            if not ok.any():
                present = sorted(df[full[col]].dropna().astype(str).unique())[:10]
                raise TraceError(f"{src.path}: no rows with {col} in {wanted}; the file has "
                                 f"{', '.join(map(repr, present))}")
            keep &= ok
    resp = pd.to_numeric(df[cmap["Response tokens"]], errors="coerce").to_numpy(dtype=float)
    failed = (resp == 0) & keep
    if failed.any():
        logger.warning("%s: skipped %d failed request(s) (Response tokens = 0, BurstGPT's "
                       "marker for a failed request)", src.path, int(failed.sum()))
    keep &= ~failed
    if not keep.any():
        raise TraceError(f"{src.path}: no requests left after dropping failed rows and "
                         "filters; check --trace-option model=/log_type=")
    sel = df.loc[keep]
    ids = _ids(rownums)[keep]
    out = pd.DataFrame({
        "id": ids.to_numpy(),
        "arrival_s": sel[cmap["Timestamp"]].to_numpy(),
        "prompt_tokens": sel[cmap["Request tokens"]].to_numpy(),
        "output_tokens": sel[cmap["Response tokens"]].to_numpy(),
    })
    if "Model" in full:
        out["model"] = sel[full["Model"]].to_numpy()
    if "Log Type" in full:
        out["log_type"] = sel[full["Log Type"]].to_numpy()
    names = {"arrival_s": cmap["Timestamp"], "prompt_tokens": cmap["Request tokens"],
             "output_tokens": cmap["Response tokens"]}
    out.attrs["generated_ids"] = True
    return out, names, (keep if not keep.all() else None)


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
    used = set(cmap.values())
    for c in df.columns:
        if c not in used:
            out[c] = df[c].tolist() if df[c].dtype == object else df[c].to_numpy()
    names = {"arrival_s": cmap["timestamp"] + " (ms)", "prompt_tokens": cmap["input_length"],
             "output_tokens": cmap["output_length"]}
    out.attrs["generated_ids"] = True
    return out, names, None


HUMAN_ROLES = {"human", "user"}
GPT_ROLES = {"gpt", "chatgpt", "assistant", "bard", "bing", "model"}


def _sharegpt(df, cmap, src, locate, options, rownums):
    tokenizer = options.get("tokenizer")
    keep_text = options.get("keep_text", True)
    ids, prompts, outputs, keep = [], [], [], np.zeros(len(df), bool)
    idcol = _resolve(df.columns, ["id"]).get("id")
    raw_ids = df[idcol].tolist() if idcol else list(range(len(df)))
    reasons = {"no human turn followed by a gpt turn": 0, "empty prompt or response": 0}
    for i, conv in enumerate(df[cmap["conversations"]].tolist()):
        if not isinstance(conv, (list, np.ndarray)):
            raise TraceError(f"{src.path}: {locate(i)}: conversations must be a list of "
                             "{from, value} turns")
        turns = [t for t in conv if isinstance(t, dict)]
        roles = [str(t.get("from", t.get("role", ""))).lower() for t in turns]
        h = next((k for k, r in enumerate(roles) if r in HUMAN_ROLES), None)
        g = None if h is None else next((k for k in range(h + 1, len(roles))
                                         if roles[k] in GPT_ROLES), None)
        if g is None:
            reasons["no human turn followed by a gpt turn"] += 1
            continue
        p = turns[h].get("value", turns[h].get("content")) or ""
        o = turns[g].get("value", turns[g].get("content")) or ""
        if not str(p).strip() or not str(o).strip():
            reasons["empty prompt or response"] += 1
            continue
        keep[i] = True
        ids.append(str(raw_ids[i]))
        prompts.append(str(p))
        outputs.append(str(o))
    skipped = {k: v for k, v in reasons.items() if v}
    if skipped:
        logger.warning("%s: skipped %d conversation(s): %s", src.path, sum(skipped.values()),
                       ", ".join(f"{v} with {k}" for k, v in skipped.items()))
    if not ids:
        raise TraceError(f"{src.path}: no conversation has a human turn followed by a gpt "
                         "turn; expected [{id, conversations: [{from: human, value}, "
                         "{from: gpt, value}]}]")
    if tokenizer:
        p_len, o_len = _tokenize(tokenizer, prompts, outputs, src)
        method = f"tokenizer:{Path(str(tokenizer)).name}"
    else:
        p_len = np.array([max(1, math.ceil(len(s) / 4)) for s in prompts])
        o_len = np.array([max(1, math.ceil(len(s) / 4)) for s in outputs])
        method = "chars/4 estimate"
        logger.warning("%s: token counts are a chars/4 ESTIMATE (no --tokenizer given); pass "
                       "--tokenizer PATH (a local Hugging Face tokenizer) for exact counts",
                       src.path)
    ids = pd.Series(ids)
    dup = ids.duplicated(keep=False)
    if dup.any():
        ids[dup] = ids[dup] + "#" + ids[dup].groupby(ids[dup]).cumcount().astype(str)
    out = pd.DataFrame({"id": ids, "arrival_s": np.zeros(len(ids)), "prompt_tokens": p_len,
                        "output_tokens": o_len})
    if keep_text:
        out["prompt"] = prompts
    out["token_count"] = method
    return out, {}, keep


def _tokenize(tokenizer: str, prompts: list[str], outputs: list[str], src: _Source):
    """Exact token counts with a local tokenizer: a tokenizer.json file (tokenizers) or a
    Hugging Face tokenizer directory (transformers, imported lazily; no downloads)."""
    path = Path(str(tokenizer))
    if not path.exists():
        raise TraceError(f"{path}: tokenizer not found; give a local tokenizer directory or "
                         "tokenizer.json (no downloads are attempted)")
    try:
        if path.is_file():
            from tokenizers import Tokenizer
            tok = Tokenizer.from_file(str(path))
            p = [len(e.ids) for e in tok.encode_batch(prompts, add_special_tokens=True)]
            o = [len(e.ids) for e in tok.encode_batch(outputs, add_special_tokens=False)]
        else:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            p = [len(x) for x in tok(prompts, add_special_tokens=True)["input_ids"]]
            o = [len(x) for x in tok(outputs, add_special_tokens=False)["input_ids"]]
    except Exception as e:  # noqa: BLE001 - any loader failure is the user's path
        raise TraceError(f"{path}: cannot load the tokenizer ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); give a directory "
                         "with tokenizer.json/tokenizer_config.json") from None
    return np.maximum(np.asarray(p), 1), np.asarray(o)


def _temperature_columns(df: pd.DataFrame, prefix: str) -> list[str]:
    return sorted([c for c in df.columns if str(c).startswith(prefix)],
                  key=lambda c: float(str(c)[len(prefix):]))


def _assumed_prompt_tokens(options: dict, src: _Source) -> int:
    value = options.get("prompt_tokens", 100)
    try:
        n = float(value)
    except (TypeError, ValueError):
        n = float("nan")
    if not (np.isfinite(n) and n >= 1 and n == int(n)):
        raise TraceError(f"{src.path}: --trace-option prompt_tokens={value} must be a whole "
                         "number of tokens >= 1 (the prompt length assumed for every request)")
    return int(n)


def _paper_lengths(df, cmap, src, locate, options, rownums):
    temps = _temperature_columns(df, "L_t")
    idcol = _resolve(df.columns, ["id"]).get("id")
    prompt_col = _resolve(df.columns, ["prompt_tokens"]).get("prompt_tokens")
    assumed = None if prompt_col else _assumed_prompt_tokens(options, src)
    out = pd.DataFrame({"id": df[idcol] if idcol else _ids(rownums),
                        "arrival_s": np.zeros(len(df)),
                        "prompt_tokens": df[prompt_col] if prompt_col else assumed,
                        "output_tokens": df[cmap["L_t0.0"]]})
    if assumed is not None:
        out["prompt_tokens_assumed"] = True
        logger.warning("%s: the paper's length file has no prompt lengths; assuming %d prompt "
                       "tokens per request (set with --trace-option prompt_tokens=N, or use "
                       "the shared alpaca_vicuna JSONL which has them)", src.path, assumed)
    for c in temps:
        out[f"len_t{c[3:]}"] = df[c].to_numpy()
    if "L_gt" in df.columns:
        out["reference_output_tokens"] = df["L_gt"].to_numpy()
    if temps:
        out["max_of_samples"] = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce")
                                              for c in temps}).max(axis=1).to_numpy()
    names = {"output_tokens": cmap["L_t0.0"]}
    return out, names, None


def _alpaca_vicuna(df, cmap, src, locate, options, rownums):
    from seqsched.traces.native import ALPACA_TEMPLATE, ALPACA_TEMPLATE_INPUT, VICUNA_SYSTEM
    need = [c for c in ("id", "instruction", "prompt_tokens") if c not in df.columns]
    if need:
        raise TraceError(f"{src.path}: missing field(s) {', '.join(need)}; the Alpaca/Vicuna "
                         "file needs id, instruction, prompt_tokens, vicuna7b_output_tokens")
    lengths = df[cmap["vicuna7b_output_tokens"]].tolist()
    temps: list[str] = []
    for i, d in enumerate(lengths):
        if not isinstance(d, dict) or "0.0" not in d:
            raise TraceError(f"{src.path}: {locate(i)}: vicuna7b_output_tokens must be an "
                             "object with a \"0.0\" entry, e.g. {\"0.0\": 115, \"0.3\": 142}")
        if not temps:
            temps = sorted((k for k in d), key=float)
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
    out["max_of_samples"] = out[[f"len_t{t}" for t in temps]].max(axis=1)
    return out, {"output_tokens": "vicuna7b_output_tokens[0.0]"}, None


_CONVERTERS: dict[str, _Converter] = {
    "native": _Converter(_native, frozenset({"id"})),
    "azure": _Converter(_azure, frozenset({"timestamp"}), True, _azure_arrival),
    "splitwise": _Converter(_splitwise, streams_window=True,
                            arrival_of=lambda b, cmap, st: pd.to_numeric(
                                b[cmap["arrived_at"]], errors="coerce").to_numpy(float)),
    "burstgpt": _Converter(_burstgpt, frozenset({"model", "log type"}), True,
                           lambda b, cmap, st: pd.to_numeric(
                               b[cmap["Timestamp"]], errors="coerce").to_numpy(float),
                           options=("model", "log_type")),
    "mooncake": _Converter(_mooncake),
    "sharegpt": _Converter(_sharegpt, options=("tokenizer", "keep_text")),
    "paper-lengths": _Converter(_paper_lengths, options=("prompt_tokens",)),
    "alpaca-vicuna": _Converter(_alpaca_vicuna),
}
