"""Saturation: does the queue keep growing while requests arrive?

A finite trace always finishes, so a saturated run does not hang; it ends with a queue that
grew for as long as requests arrived. We measure that growth on the *waiting* count: requests
arrived and not finished that are not in a running batch at that time (queued for the first
time, or preempted and waiting to resume), sampled on a regular grid over the second half of
the arrival window (the first half is warm-up), a least-squares slope divided by the mean
arrival rate. A stable system's queue is stationary (slope near 0); a server admitting c
req/s under arrivals at r > c grows its queue at (r - c) / r of the arrival rate. The run is
*saturated* when that share exceeds `GROWTH_LIMIT`.

Why this count: the requests *in the system* include the running batch, which on a
continuous-batching server grows with load and takes several request lifetimes to settle, so
it keeps rising through a short trace's window even when the server keeps up; the wait for a
*first* slot misses the requests an overloaded fcfs server admits and then preempts; and the
queueing *delay* misses a queue that a length-ordered policy (sjf) lets grow at the back (its
starved long requests all start when arrivals stop, so later arrivals wait less). The count
of requests not running grows in every case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GROWTH_LIMIT = 0.02     # waiting queue growing at > 2% of the arrival rate: saturated
GRID_POINTS = 256


def _count_by(sorted_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_times, times, side="right")


def in_system(records: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Requests arrived by each time and not finished by it (vectorised)."""
    return (_count_by(np.sort(records["arrival_s"].to_numpy(dtype=float)), times)
            - _count_by(np.sort(records["finish_s"].to_numpy(dtype=float)), times))


def running(steps: pd.DataFrame, times: np.ndarray, column: str = "rows") -> np.ndarray:
    """Sum over replicas of `column` of the generate step running at each time (0 if idle)."""
    total = np.zeros(len(times))
    gen = steps[steps["kind"] == "generate"]
    for _, s in gen.groupby("replica", sort=True):
        start = s["start_s"].to_numpy(dtype=float)
        end = s["end_s"].to_numpy(dtype=float)
        i = np.clip(np.searchsorted(start, times, side="right") - 1, 0, None)
        inside = (times >= start[i]) & (times < end[i])
        total += np.where(inside, s[column].to_numpy(dtype=float)[i], 0.0)
    return total


def waiting(records: pd.DataFrame, steps: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Requests arrived and not finished that no running step holds, at each time."""
    return np.maximum(in_system(records, times) - running(steps, times), 0.0)


def queue_growth(records: pd.DataFrame, steps: pd.DataFrame) -> float:
    """Waiting-queue slope over the arrival window's second half / mean arrival rate; NaN
    when the requests arrive at once (an offline run has no rate to sustain), which includes
    arrivals within a nanosecond: a window that short has no meaningful rate, and a subnormal
    one makes the least-squares fit itself fail (LinAlgError)."""
    arrival = records["arrival_s"].to_numpy(dtype=float)
    start, end = float(arrival.min()), float(arrival.max())
    if not end - start > 1e-9 or len(arrival) < 3:
        return float("nan")
    rate = (len(arrival) - 1) / (end - start)
    times = np.linspace(start + (end - start) / 2, end, GRID_POINTS)
    slope = np.polyfit(times, waiting(records, steps, times), 1)[0]
    return float(slope / rate)


def saturation_summary(records: pd.DataFrame, steps: pd.DataFrame) -> dict[str, float]:
    growth = queue_growth(records, steps)
    return {"queue_growth": growth,
            "saturated": bool(np.isfinite(growth) and growth > GROWTH_LIMIT)}
