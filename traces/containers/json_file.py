"""JSON Lines traces (one request object per line) and JSON traces (a list of request objects,
or an {id: {...}} object); exact line/item numbers in every error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from seqsched.traces.convert import _from_frame
from seqsched.traces.request import Trace, TraceError
from seqsched.traces.source import _Source


def _read_jsonl(src: _Source, fmt: str | None, *, rows, window, skip_invalid,
                options) -> Trace:
    df = None
    if not src.compression and src.data is None:
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
