"""From a container's source frame to a `Trace`: pick the rows, run the format's converter
(`formats.registry._CONVERTERS`), normalise and validate the native columns, cut the window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import _resolve
from seqsched.traces.formats.registry import _CONVERTERS, FORMATS, _mismatch, detect_format
from seqsched.traces.request import Trace, TraceError, normalise_frame
from seqsched.traces.source import Locate, _Source


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
                         ids_unique=bool(out.attrs.get("generated_ids")),
                         typed=src.container != "csv")
    return Trace._trusted(df, stem)
