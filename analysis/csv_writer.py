"""`write_csv(df, path)`: the bytes of `df.to_csv(path, index=False)`, about twice as fast on
the numeric frames a run writes (the records CSV of every simulate/compare/demo run).

pandas formats every float64 through numpy's `astype(str)` and then hands the strings to the
`csv` writer, which inspects them character by character for quoting. Here each row is one
`%`-format in C: `%r` of a Python float is the same shortest round-trip text that numpy writes
(tests/analysis/test_csv_writer.py compares the two, NaN, +-inf and -0.0 included), and numbers,
booleans and text without a comma, quote or line break never need quoting. Any other frame
(other dtypes, text that needs quoting, non-text labels, one column, no rows) goes to pandas.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

CHUNK = 65536            # rows formatted at a time: bounded memory for a 1M-request run
_QUOTED = (",", '"', "\r", "\n")


def _needs_quoting(texts) -> bool:
    return any(q in t for t in texts for q in _QUOTED)


def _column(s: pd.Series) -> tuple[str, np.ndarray] | None:
    """(format, array whose .tolist() the format takes), or None when only pandas writes it
    right."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype == np.float64:
        v = s.to_numpy()
        if not np.isnan(v).any():
            return "%r", v
        texts = np.array(list(map(repr, v.tolist())), dtype=object)
        texts[np.isnan(v)] = ""                              # pandas' na_rep
        return "%s", texts
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return "%s", s.to_numpy()
    if dtype == object or isinstance(dtype, pd.StringDtype):
        texts = s.to_numpy(dtype=object, na_value="")
        if all(type(t) is str for t in texts) and not _needs_quoting(texts):
            return "%s", texts
    return None


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """`df.to_csv(path, index=False)`, byte for byte."""
    labels = list(df.columns)
    columns = None
    if (len(labels) > 1 and len(df) and all(type(c) is str for c in labels)
            and df.columns.is_unique and not _needs_quoting(labels)):
        columns = [_column(df[c]) for c in labels]
    if columns is None or any(c is None for c in columns):
        df.to_csv(path, index=False)
        return
    line = ",".join(fmt for fmt, _ in columns) + os.linesep
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(labels) + os.linesep)
        for start in range(0, len(df), CHUNK):
            rows = zip(*(v[start:start + CHUNK].tolist() for _, v in columns))
            f.write("".join(map(line.__mod__, rows)))
