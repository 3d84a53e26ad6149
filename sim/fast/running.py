"""The running set of an array replica as structure-of-arrays: one int64 buffer per column,
grown by doubling, with `n` live rows exposed as views (`idx`, `ctx`, `left`, `rem`, `held`).

Row order carries no meaning (every quantity the engine takes over running rows is a sum or a
unique-key sort), so a finished row is removed by moving the last row into its place.
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("idx", "ctx", "left", "rem", "held")


class RunningSet:
    """`idx` trace position, `ctx` tokens in the KV cache (`Seq.context_tokens`), `left` prompt
    tokens still to prefill in this attempt, `rem` tokens still to generate, `held` KV blocks."""

    def __init__(self, capacity: int = 64) -> None:
        self._bufs = [np.zeros(capacity, dtype=np.int64) for _ in COLUMNS]
        self.n = 0
        self._views()

    def _views(self) -> None:
        n = self.n
        b = self._bufs
        self.idx, self.ctx, self.left, self.rem, self.held = (b[0][:n], b[1][:n], b[2][:n],
                                                              b[3][:n], b[4][:n])

    def append(self, i: int, ctx: int, left: int, rem: int, held: int) -> int:
        """Add a row; returns its position."""
        p = self.n
        if p == len(self._bufs[0]):
            self._bufs = [np.concatenate((b, np.zeros(len(b), dtype=np.int64)))
                          for b in self._bufs]
        b = self._bufs
        b[0][p], b[1][p], b[2][p], b[3][p], b[4][p] = i, ctx, left, rem, held
        self.n = p + 1
        self._views()
        return p

    def compact(self, keep: np.ndarray) -> None:
        """Keep the rows where `keep` is True, in order."""
        m = int(np.count_nonzero(keep))
        for b in self._bufs:
            b[:m] = b[:self.n][keep]
        self.n = m
        self._views()

    def remove(self, positions: list[int]) -> None:
        """Remove the rows at `positions` (any order kept for the rest)."""
        b = self._bufs
        for p in sorted(positions, reverse=True):
            last = self.n - 1
            if p != last:
                for col in b:
                    col[p] = col[last]
            self.n = last
        self._views()
