"""The raw trace file: opening it, sniffing the container (Parquet, JSON, JSON Lines, CSV) and
gzip compression from its first bytes, checking the text encoding, and mapping record numbers
back to file lines for error messages."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from seqsched.traces.request import TraceError

SNIFF_BYTES = 1 << 16
Locate = Callable[[int], str]


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
