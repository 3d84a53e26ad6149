"""Piecewise-linear lookups on measured grids, vectorised over query arrays.

Every axis is blended linearly between its two bracketing samples (LLMServingSim's
`_axis_bracket`: kernels are close to linear in each axis, and linear blending of a doubling
grid beats log-space blending in its leave-one-out test); below the first sample the value is
clamped, above the last it is extrapolated from the last two samples. No Python loop per
query: k iterations are one numpy call.
"""

from __future__ import annotations

import numpy as np


def bracket(axis, q):
    """(lo, hi, t) per query: value = v[lo] + t * (v[hi] - v[lo]); t > 1 above the grid."""
    axis = np.asarray(axis, dtype=float)
    q = np.asarray(q, dtype=float)
    if len(axis) == 1:
        zero = np.zeros(q.shape, dtype=np.int64)
        return zero, zero, np.zeros(q.shape)
    i = np.searchsorted(axis, q, side="right")
    lo = np.clip(i - 1, 0, len(axis) - 2)
    hi = lo + 1
    t = (q - axis[lo]) / (axis[hi] - axis[lo])
    return lo, hi, np.where(q <= axis[0], 0.0, t)


def interp1(axis, values, q) -> np.ndarray:
    """Linear in `axis`, clamped below, extrapolated above."""
    values = np.asarray(values, dtype=float)
    lo, hi, t = bracket(axis, q)
    return values[lo] + t * (values[hi] - values[lo])


def interp2(ax0, ax1, grid, q0, q1) -> np.ndarray:
    """Bilinear on grid[i0, i1] (shape len(ax0) x len(ax1)); q0/q1 broadcast together."""
    grid = np.asarray(grid, dtype=float)
    q0, q1 = np.broadcast_arrays(np.asarray(q0, dtype=float), np.asarray(q1, dtype=float))
    lo0, hi0, t0 = bracket(ax0, q0)
    lo1, hi1, t1 = bracket(ax1, q1)
    a = grid[lo0, lo1] + t1 * (grid[lo0, hi1] - grid[lo0, lo1])
    b = grid[hi0, lo1] + t1 * (grid[hi0, hi1] - grid[hi0, lo1])
    return a + t0 * (b - a)


def leave_one_out(axis, values) -> np.ndarray:
    """Relative error of predicting each interior sample from its two neighbours: how well
    linear interpolation holds between the measured points (the calibration report)."""
    x = np.asarray(axis, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(x) < 3:
        return np.zeros(0)
    t = (x[1:-1] - x[:-2]) / (x[2:] - x[:-2])
    pred = y[:-2] + t * (y[2:] - y[:-2])
    return np.abs(pred - y[1:-1]) / np.maximum(np.abs(y[1:-1]), 1e-12)


def error_summary(rel) -> dict:
    rel = np.asarray(rel, dtype=float)
    if rel.size == 0:
        return {"n": 0}
    return {"n": int(rel.size), "mean_rel_err": round(float(rel.mean()), 4),
            "p90_rel_err": round(float(np.quantile(rel, 0.9)), 4),
            "max_rel_err": round(float(rel.max()), 4)}


__all__ = ["bracket", "interp1", "interp2", "leave_one_out", "error_summary"]
