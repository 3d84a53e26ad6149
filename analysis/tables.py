"""Terminal and report.md tables: a few significant digits, but never tabulate's exponent for
a number a reader compares by eye (`floatfmt=".3g"` writes 1,004 tokens/s as "1e+03" and 1,920
as "1.92e+03")."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate


def _round(value, digits: int):
    """`value` to `digits` significant digits, from 10**digits up to a whole number."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return value
    if abs(value) >= 10 ** digits - 0.5:
        return float(round(value))
    return float(f"{value:.{digits}g}")


def github_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-markdown table of `frame` (no index) with `digits` significant digits; below
    10**digits the cells read exactly as `floatfmt=f".{digits}g"` writes them."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]) or out[column].dtype == object:
            out[column] = out[column].map(lambda v: _round(v, digits))
    # ".15g" prints the rounded doubles back as they were rounded (15 digits round-trip any
    # normal double's decimal): as ".{digits}g" did below 10**digits, whole numbers above
    return tabulate(out, headers="keys", tablefmt="github", showindex=False, floatfmt=".15g")
