"""The running set of an array replica as structure-of-arrays: one int64 buffer per column,
grown by doubling, with `n` live rows exposed as views (`idx`, `ctx`, `left`, `rem`).

Row order carries no meaning (every quantity the engine takes over running rows is a sum or a
unique-key sort), so a finished row is removed by moving the last row into its place.

A row always holds ceil(ctx / block size) KV blocks (it grows to that after every step and
frees all on leaving), so `held` is derived, not stored. For the common step - every row
decodes the same k iterations - the set keeps what the step needs in Python scalars: the
rows' context sum, how many still prefill, and a histogram of ctx mod block size (kept
relative to `shift`, the uniform decode iterations run so far, so a uniform step rotates it
for free): the blocks k more iterations add are then a count over one residue range, with no
pass over the rows (`growth`).
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("idx", "ctx", "left", "rem")


class RunningSet:
    """`idx` trace position, `ctx` tokens in the KV cache (`Seq.context_tokens`), `left` prompt
    tokens still to prefill in this attempt, `rem` tokens still to generate."""

    def __init__(self, block_size: int, capacity: int = 64) -> None:
        self.bs = block_size
        self._buf = np.zeros((len(COLUMNS), capacity), dtype=np.int64)   # a row per column
        self.n = 0
        self.shift = 0                  # uniform decode iterations so far (histogram origin)
        self.hist = [0] * block_size    # rows by (ctx - shift) mod block size
        self.ctx_sum = 0
        self.n_prefilling = 0           # rows with left > 0
        self.rem_min = 0                # min(rem) (kept by the engine's steps, `rebuild`)
        self._views()

    def _views(self) -> None:
        self.idx, self.ctx, self.left, self.rem = self._buf[:, :self.n]

    @property
    def held(self) -> np.ndarray:
        """KV blocks per row: ceil(ctx / block size)."""
        return -(-self.ctx // self.bs)

    def append(self, i: int, ctx: int, left: int, rem: int) -> int:
        """Add a row; returns its position."""
        p = self.n
        if p == self._buf.shape[1]:
            self._buf = np.concatenate((self._buf, np.zeros_like(self._buf)), axis=1)
        self._buf[:, p] = (i, ctx, left, rem)
        self.n = p + 1
        self.hist[(ctx - self.shift) % self.bs] += 1
        self.ctx_sum += ctx
        if left > 0:
            self.n_prefilling += 1
        if rem < self.rem_min or p == 0:
            self.rem_min = rem
        self._views()
        return p

    def rebuild(self) -> None:
        """Recount the scalars after the columns changed row by row."""
        self.hist = np.bincount((self.ctx - self.shift) % self.bs, minlength=self.bs).tolist()
        self.ctx_sum = int(self.ctx.sum())
        self.n_prefilling = int(np.count_nonzero(self.left))
        self.rem_min = int(self.rem.min()) if self.n else 0

    def advance(self, k: int) -> None:
        """Every row decoded k iterations."""
        self.ctx += k
        self.rem -= k
        self.shift += k
        self.ctx_sum += self.n * k
        self.rem_min -= k

    def growth(self, k: int, rows: int | None = None) -> int:
        """KV blocks the rows add over k more decode iterations: a row at ctx = c adds
        floor(((c - 1) mod bs + k) / bs), i.e. k // bs, plus one where c mod bs is 0 or above
        bs - k mod bs - a cyclic range of k mod bs residues. `rows`: how many rows the
        histogram holds when some were taken out of it (default all)."""
        bs = self.bs
        q, e = divmod(k, bs)
        g = (self.n if rows is None else rows) * q
        if e:
            h = self.hist
            a = (bs - e + 1 - self.shift) % bs
            b = a + e
            g += sum(h[a:b]) if b <= bs else sum(h[a:]) + sum(h[:b - bs])
        return g

    def full(self) -> int:
        """Rows whose last block is full (ctx a multiple of the block size)."""
        return self.hist[-self.shift % self.bs]

    def compact(self, keep: np.ndarray) -> None:
        """Keep the rows where `keep` is True, in order."""
        m = int(np.count_nonzero(keep))
        self._buf[:, :m] = self._buf[:, :self.n][:, keep]
        self.n = m
        self._views()
        self.rebuild()

    def remove(self, positions: list[int]) -> None:
        """Remove the rows at `positions` (any order kept for the rest)."""
        buf, hist, bs, shift = self._buf, self.hist, self.bs, self.shift
        for p in sorted(positions, reverse=True):
            _, c, left, _ = buf[:, p].tolist()
            hist[(c - shift) % bs] -= 1
            self.ctx_sum -= c
            if left > 0:
                self.n_prefilling -= 1
            last = self.n - 1
            if p != last:
                buf[:, p] = buf[:, last]
            self.n = last
        self._views()
        self.rem_min = int(self.rem.min()) if self.n else 0
