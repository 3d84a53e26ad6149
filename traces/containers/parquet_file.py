"""Parquet traces (``PAR1`` magic), read whole with pyarrow."""

from __future__ import annotations

from seqsched.traces.convert import _from_frame
from seqsched.traces.request import Trace, TraceError
from seqsched.traces.source import _Source


def _read_parquet(src: _Source, fmt: str | None, *, rows, window, skip_invalid,
                  options) -> Trace:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(src.arrow_input())
    except (pa.ArrowInvalid, OSError) as e:
        raise TraceError(f"{src.path}: not a readable Parquet file ({str(e).splitlines()[0]}); "
                         "the file may be truncated: re-write it") from None
    df = table.to_pandas()
    return _from_frame(src, df, fmt, rows, window, skip_invalid, options,
                       lambda r: f"row {r}")
