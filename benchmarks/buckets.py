"""Rows of a frame grouped into closed [lo, hi] buckets of one column, for the judges' tables
(decode_step_gap.py, prefill_step_gap.py, moe_dp_gap.py): empty buckets are skipped, an open
top (hi >= 10**6) is labelled "lo-"."""

from __future__ import annotations

import pandas as pd


def bucketed(frame: pd.DataFrame, column: str, bounds):
    """(label "lo-hi", the rows with lo <= column <= hi) for each bucket that has rows."""
    for lo, hi in bounds:
        rows = frame[(frame[column] >= lo) & (frame[column] <= hi)]
        if not rows.empty:
            yield f"{lo}-{hi if hi < 10 ** 6 else ''}", rows
