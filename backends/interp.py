"""Piecewise-linear lookups on measured grids, vectorised over query arrays.

Every axis is blended linearly between its two bracketing samples (LLMServingSim's
`_axis_bracket`: kernels are close to linear in each axis, and linear blending of a doubling
grid beats log-space blending in its leave-one-out test); below the first sample the value is
clamped, above the last it is extrapolated from the last two samples. No Python loop per
query: k iterations are one numpy call.

A simulator step asks for one value (or a few) at a time, where numpy's per-call dispatch
costs more than the arithmetic: `Line` and `Plane` are the same lookups on Python floats,
performing the same IEEE operations in the same order (a float64 is a float64), so they
return the same doubles as `interp1` / `interp2`; `bisect_right` brackets as
`searchsorted(side="right")` does.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

SMALL = 64          # up to this many queries, a Python loop over `Line`/`Plane` beats numpy


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


def bracket1(axis: list, q: float) -> tuple[int, int, float]:
    """`bracket` of one query on an axis held as a list of floats."""
    n = len(axis)
    if n == 1:
        return 0, 0, 0.0
    lo = bisect_right(axis, q) - 1
    lo = 0 if lo < 0 else (n - 2 if lo > n - 2 else lo)
    if q <= axis[0]:
        return lo, lo + 1, 0.0
    return lo, lo + 1, (q - axis[lo]) / (axis[lo + 1] - axis[lo])


def max0(v: float) -> float:
    """np.maximum(v, 0.0) of one float: v when v > 0 or NaN, else +0.0 (also for -0.0)."""
    return v if v > 0.0 or v != v else 0.0


def scalar(q):
    """q as a Python float when it is one number (int, float, numpy scalar, 0-d array)."""
    if isinstance(q, (float, int, np.generic)):
        return float(q)
    if isinstance(q, np.ndarray) and q.ndim == 0:
        return float(q)
    return None


def small(q):
    """q as a float64 array when it holds at most SMALL values, else None."""
    if isinstance(q, np.ndarray) and q.size <= SMALL:
        return q.astype(float, copy=False)
    return None


class Line:
    """`interp1` of one table on Python floats: `line(q)` for one query."""
    __slots__ = ("x", "v", "src")

    def __init__(self, axis, values) -> None:
        self.src = (axis, values)
        self.x = [float(a) for a in np.asarray(axis, dtype=float).ravel()]
        self.v = [float(a) for a in np.asarray(values, dtype=float).ravel()]

    def __call__(self, q: float) -> float:
        v = self.v
        lo, hi, t = bracket1(self.x, q)
        return v[lo] + t * (v[hi] - v[lo])


class Plane:
    """`interp2` of one grid on Python floats: `plane(q0, q1)` for one query."""
    __slots__ = ("a0", "a1", "g", "src")

    def __init__(self, ax0, ax1, grid) -> None:
        self.src = (ax0, ax1, grid)
        self.a0 = [float(a) for a in np.asarray(ax0, dtype=float)]
        self.a1 = [float(a) for a in np.asarray(ax1, dtype=float)]
        self.g = np.asarray(grid, dtype=float).tolist()

    def __call__(self, q0: float, q1: float) -> float:
        lo0, hi0, t0 = bracket1(self.a0, q0)
        lo1, hi1, t1 = bracket1(self.a1, q1)
        g0, g1 = self.g[lo0], self.g[hi0]
        a = g0[lo1] + t1 * (g0[hi1] - g0[lo1])
        b = g1[lo1] + t1 * (g1[hi1] - g1[lo1])
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


__all__ = ["bracket", "interp1", "interp2", "leave_one_out", "error_summary", "bracket1",
           "max0", "scalar", "small", "Line", "Plane", "SMALL"]
