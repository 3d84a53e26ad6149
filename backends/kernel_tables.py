"""The measured tables of a kernel profile (backends/kernel_profile.py): one kernel along one
axis (`Op`), a 2-D attention grid (`Grid2`) and LLMServingSim's 4-D attention table (`Grid4`
of `Slice`s).

Each lookup has two paths that return the same doubles: numpy over many queries (`interp1`,
`interp2`), and Python floats for one query or a few (`Line`, `Plane`: the same IEEE
operations in the same order), which is what a simulator step asks for; numpy's dispatch
costs microseconds per call on arrays of one value. The float tables are built on first use
and rebuilt if a table's arrays are swapped. `FAST = False` turns the float path off (the
numpy reference, for the property test and benchmarks/kernel_profile_speed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqsched.backends.interp import (SMALL, Line, Plane, bracket, bracket1, interp1, interp2,
                                      max0, scalar, small)

FAST = True


def _line(owner, x, v) -> Line:
    line = owner.__dict__.get("_line")
    if line is None or line.src[0] is not x or line.src[1] is not v:
        line = owner.__dict__["_line"] = Line(x, v)
        owner.__dict__["_memo"] = {}
    return line


@dataclass
class Op:
    """One kernel measured along one axis (tokens, sequences or bytes)."""
    name: str
    count: float
    x: np.ndarray
    us: np.ndarray

    def seconds(self, q):
        one = scalar(q) if FAST else None
        if one is not None:     # memoised: a run asks for the same token counts again and again
            line = _line(self, self.x, self.us)
            memo = self.__dict__["_memo"]
            hit = memo.get((one, self.count))
            if hit is None:
                if len(memo) > 1 << 16:
                    memo.clear()
                hit = memo[(one, self.count)] = self.count * max0(line(one)) * 1e-6
            return hit
        few = small(q) if FAST else None
        if few is not None:
            line, c = _line(self, self.x, self.us), self.count
            return np.array([c * max0(line(v)) * 1e-6 for v in few.ravel().tolist()]
                            ).reshape(few.shape)
        return self.count * np.maximum(interp1(self.x, self.us, q), 0.0) * 1e-6


@dataclass
class Grid2:
    ax0: np.ndarray
    ax1: np.ndarray
    us: np.ndarray

    def _plane(self) -> Plane:
        p = self.__dict__.get("_plane_")
        if p is None or any(a is not b for a, b in zip(p.src, (self.ax0, self.ax1, self.us))):
            p = self.__dict__["_plane_"] = Plane(self.ax0, self.ax1, self.us)
        return p

    def __call__(self, q0, q1) -> np.ndarray:
        if FAST and np.size(q0) <= SMALL and np.size(q1) <= SMALL:
            a, b = np.broadcast_arrays(np.asarray(q0, dtype=float), np.asarray(q1, dtype=float))
            if a.size <= SMALL:
                plane = self._plane()
                return np.array([max0(plane(u, v)) for u, v in zip(a.ravel().tolist(),
                                                                   b.ravel().tolist())]
                                ).reshape(a.shape)
        return np.maximum(interp2(self.ax0, self.ax1, self.us, q0, q1), 0.0)


@dataclass
class Slice:
    """One (pc, nd) slice of the 4-D table: per kv_prefill value, a kv_decode row (the
    profiler's rows are ragged: not every kp has every kd)."""
    kp: np.ndarray
    rows: list              # [(kd axis, us)] per kp

    def __call__(self, kp: float, kd) -> np.ndarray:
        lo, hi, t = (float(v) for v in bracket(self.kp, kp))
        a = interp1(*self.rows[int(lo)], kd)
        if int(hi) == int(lo):
            return a
        return a + t * (interp1(*self.rows[int(hi)], kd) - a)

    def lines(self, kp: float) -> tuple[Line, Line | None, float]:
        """(row below, row above or None, weight) of `kp`, as float tables."""
        cache = self.__dict__.setdefault("_lines", {})
        if cache.get("src") is not self.rows:
            cache.clear()
            cache["src"] = self.rows
            cache["kp"] = [float(v) for v in self.kp]
        lo, hi, t = bracket1(cache["kp"], kp)
        for i in (lo, hi):
            if i not in cache:
                cache[i] = Line(*self.rows[i])
        return cache[lo], (None if hi == lo else cache[hi]), t


@dataclass
class Grid4:
    """LLMServingSim's attention table: (pc, nd) slices, blended linearly on every axis."""
    slices: dict                    # (pc, nd) -> Slice
    pc: np.ndarray = field(init=False)
    nd: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.pc = np.array(sorted({k[0] for k in self.slices}), dtype=float)
        self.nd = np.array(sorted({k[1] for k in self.slices}), dtype=float)
        self._pairs = np.array(sorted(self.slices), dtype=float)
        self._pcl, self._ndl = self.pc.tolist(), self.nd.tolist()
        self._corners: dict = {}

    def _slice(self, pc: float, nd: float) -> Slice:
        s = self.slices.get((int(pc), int(nd)))
        if s is None:    # a corner the profiler never measured: the nearest measured pair
            i = int(np.argmin(((self._pairs - (pc, nd)) ** 2).sum(axis=1)))
            s = self.slices[tuple(int(v) for v in self._pairs[i])]
        return s

    def __call__(self, pc: float, kp: float, nd: float, kd) -> np.ndarray:
        few = small(kd) if FAST else None
        if few is not None:
            return self._few(float(pc), float(kp), float(nd), few)
        lo_p, hi_p, t_p = (float(v) for v in bracket(self.pc, pc))
        lo_n, hi_n, t_n = (float(v) for v in bracket(self.nd, nd))

        def corner(p, n):
            return self._slice(self.pc[int(p)], self.nd[int(n)])(kp, kd)
        c00, c01 = corner(lo_p, lo_n), corner(lo_p, hi_n)
        v0 = c00 + t_n * (c01 - c00)
        if t_p == 0.0:
            return np.maximum(v0, 0.0)
        c10, c11 = corner(hi_p, lo_n), corner(hi_p, hi_n)
        v1 = c10 + t_n * (c11 - c10)
        return np.maximum(v0 + t_p * (v1 - v0), 0.0)

    def _corner(self, p: int, n: int, kp: float):
        """The float rows of corner (p, n) at `kp` (the `Slice.__call__` blend)."""
        key = (p, n)
        s = self._corners.get(key)
        if s is None:
            if self.__dict__.get("_corners_src") is not self.slices:
                self._corners.clear()
                self.__dict__["_corners_src"] = self.slices
            s = self._corners[key] = self._slice(self._pcl[p], self._ndl[n])
        return s.lines(kp)

    def _few(self, pc: float, kp: float, nd: float, kd: np.ndarray) -> np.ndarray:
        return np.array(self.values(pc, kp, nd, kd.ravel().tolist())).reshape(kd.shape)

    def values(self, pc: float, kp: float, nd: float, kd: list) -> list:
        """`__call__` on Python floats, one kd at a time (the same operations per element)."""
        lo_p, hi_p, t_p = bracket1(self._pcl, pc)
        lo_n, hi_n, t_n = bracket1(self._ndl, nd)
        corners = [self._corner(lo_p, lo_n, kp), self._corner(lo_p, hi_n, kp)]
        if t_p != 0.0:
            corners += [self._corner(hi_p, lo_n, kp), self._corner(hi_p, hi_n, kp)]

        def at(c, q):
            lo, hi, t = c
            a = lo(q)
            return a if hi is None else a + t * (hi(q) - a)
        out = []
        for q in kd:
            c00, c01 = at(corners[0], q), at(corners[1], q)
            v0 = c00 + t_n * (c01 - c00)
            if t_p == 0.0:
                out.append(max0(v0))
                continue
            c10, c11 = at(corners[2], q), at(corners[3], q)
            v1 = c10 + t_n * (c11 - c10)
            out.append(max0(v0 + t_p * (v1 - v0)))
        return out


__all__ = ["Op", "Grid2", "Grid4", "Slice"]
