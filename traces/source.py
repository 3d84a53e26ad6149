"""The raw trace file: opening it, sniffing the container (Parquet, JSON, JSON Lines, CSV) and
gzip compression from its first bytes, checking the text encoding, and mapping record numbers
back to file lines for error messages."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import select
import stat
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from seqsched.traces.request import TraceError

SNIFF_BYTES = 1 << 16
FIFO_NOTICE_S = 1.0        # a named pipe silent this long gets a "waiting for a writer" line
Locate = Callable[[int], str]


def _open_fifo(path: Path):
    """Open a named pipe without blocking in open() (which waits for a writer, silently, for
    ever); poll for data and tell the user once on stderr when none comes, so a forgotten
    writer reads as a wait, not a hang. Ctrl-C ends the wait as usual."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(FIFO_NOTICE_S * 1000):
        print(f"seqsched: waiting for a writer on the named pipe {path} (start it, or press "
              "Ctrl-C to stop)", file=sys.stderr, flush=True)
        poller.poll()
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read_head(path: Path) -> tuple[bytes, bytes | None]:
    """(the first SNIFF_BYTES, the whole input if it is not a regular file). A pipe or a
    process substitution (`<(zcat x.gz)`, `-` for stdin) can be read only once, so it is
    buffered here and every later read comes from the buffer. Binary junk (NUL bytes in a
    head that is neither gzip nor Parquet, e.g. /dev/zero) is not read past the head."""
    try:
        if str(path) == "-":
            f = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
        elif stat.S_ISFIFO(os.stat(path).st_mode):
            f = _open_fifo(path)
        else:
            f = path.open("rb")
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file; give the path of a trace file "
                         "(or synth:NAME for a synthetic workload)") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory; give the path of a trace file") from None
    except (OSError, ValueError) as e:
        raise TraceError(f"{path}: cannot read the file "
                         f"({getattr(e, 'strerror', None) or e})") from None
    try:
        with f:
            if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
                raise TraceError(f"{path}: is a directory; give the path of a trace file")
            head = f.read(SNIFF_BYTES)
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return head, None
            if b"\0" in head and not head.startswith((b"\x1f\x8b", b"PAR1")):
                return head, head
            return head, head + f.read()
    except OSError as e:
        raise TraceError(f"{path}: cannot read the file ({e.strerror or e})") from None


class _Gzip(gzip.GzipFile):
    """A gzip stream whose corruption (a download cut after the first block, a bad CRC) is a
    TraceError naming the file wherever it is met: in the sniffer, in pyarrow's reader, or on
    an error path re-reading the file."""

    def __init__(self, label: str, fileobj) -> None:
        super().__init__(fileobj=fileobj, mode="rb")
        self._label = label
        self._owned = fileobj

    def _fail(self, e: BaseException):
        return TraceError(f"{self._label}: gzip data is corrupt or truncated ({e}); re-download "
                          "or re-compress the file")

    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        except (EOFError, OSError, zlib.error) as e:
            raise self._fail(e) from None

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except (EOFError, OSError, zlib.error) as e:
            raise self._fail(e) from None

    def readline(self, size: int = -1) -> bytes:
        try:
            return super().readline(size)
        except (EOFError, OSError, zlib.error) as e:
            raise self._fail(e) from None

    def close(self) -> None:
        super().close()
        self._owned.close()


@dataclass
class _Source:
    path: Path
    container: str           # parquet | json | jsonl | csv
    compression: str | None  # None | "gzip"
    head: str                # decoded first bytes (not for parquet)
    delimiter: str = ","     # CSV: set by the reader from the header line
    data: bytes | None = None  # the whole input when it cannot be read twice (a pipe)

    @classmethod
    def open(cls, path: Path) -> "_Source":
        raw, data = _read_head(path)
        if raw.startswith(b"PAR1"):
            return cls(path, "parquet", None, "", data=data)
        compression = None
        if raw[:2] == b"\x1f\x8b":
            compression = "gzip"
            probe = cls(path, "csv", "gzip", "", data=data)
            with probe.open_binary() as f:
                raw = f.read(SNIFF_BYTES)
        if not raw.strip():
            raise TraceError(f"{path}: the file is empty; give a file with a header and at "
                             "least one request")
        if not raw.strip(b"\0"):
            raise TraceError(f"{path}: holds only NUL bytes (binary data), not a trace; give "
                             "a CSV, JSON, JSON Lines or Parquet file")
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
        return cls(path, container, compression, head, data=data)

    def open_plain(self):
        """The raw bytes (compressed or not), from the buffer when the input was a pipe."""
        return io.BytesIO(self.data) if self.data is not None else self.path.open("rb")

    def open_binary(self):
        """The decompressed bytes."""
        raw = self.open_plain()
        return _Gzip(str(self.path), raw) if self.compression else raw

    def arrow_input(self):
        """What pyarrow reads: the path of a plain regular file (fastest), else a stream."""
        if self.data is None and not self.compression:
            return self.path
        return self.open_binary()

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
        with self.open_plain() as f:
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
