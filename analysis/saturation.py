"""Saturation: does the queue keep growing while requests arrive?

A finite trace always finishes, so a saturated run does not hang; it ends with a queue that
grew for as long as requests arrived. We measure that growth as the trend of the queueing
delay (first scheduled - arrival) against arrival time: a least-squares slope over the
requests arriving in the second half of the arrival window (the first half is warm-up). A
stable system's delay is stationary (slope near 0); a server of capacity c under arrivals at
r > c delays request k by k/c - k/r, a slope of r/c - 1 seconds of delay per second. The run
is *saturated* when the slope exceeds `GROWTH_LIMIT` (arrivals > ~1.05 x what is served).

The queueing delay rather than the number of requests in the system: the running batch of a
continuous-batching server grows with load and takes several request lifetimes to settle, so
the count keeps rising through a short trace's window even when the server keeps up; the wait
for a first slot only grows when requests arrive faster than slots free up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GROWTH_LIMIT = 0.05     # queueing delay growing by > 0.05 s per s of arrivals: saturated


def in_system(records: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Requests arrived by each time and not finished by it (vectorised)."""
    arrival = np.sort(records["arrival_s"].to_numpy(dtype=float))
    finish = np.sort(records["finish_s"].to_numpy(dtype=float))
    return (np.searchsorted(arrival, times, side="right")
            - np.searchsorted(finish, times, side="right"))


def queue_growth(records: pd.DataFrame) -> float:
    """Slope of queueing delay against arrival time over the arrival window's second half;
    NaN when the requests arrive at once (an offline run has no rate to sustain)."""
    arrival = records["arrival_s"].to_numpy(dtype=float)
    start, end = float(arrival.min()), float(arrival.max())
    late = arrival >= start + (end - start) / 2
    if not end > start or late.sum() < 3 or np.ptp(arrival[late]) == 0:
        return float("nan")
    delay = records["first_scheduled_s"].to_numpy(dtype=float)[late] - arrival[late]
    return float(np.polyfit(arrival[late], delay, 1)[0])


def saturation_summary(records: pd.DataFrame) -> dict[str, float]:
    growth = queue_growth(records)
    return {"queue_growth": growth,
            "saturated": bool(np.isfinite(growth) and growth > GROWTH_LIMIT)}
