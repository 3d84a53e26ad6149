"""The running set of an array replica as structure-of-arrays: one Python list per column
(`idx`, `ctx`, `left`, `rem`; a row's own reads and writes cost a fraction of a numpy
scalar's), handed out as numpy arrays for the few passes that need the whole column.

Row order carries no meaning (every quantity the engine takes over running rows is a sum or a
unique-key sort), so a finished row is removed by moving the last row into its place.

The common step - every row decodes the same n iterations - costs no pass over the rows:
- `ctx` and `rem` are stored relative to `shift`, the uniform decode iterations run so far
  (true ctx = stored + shift, true rem = stored - shift), so a uniform step only moves
  `shift`; a row finishes when its stored rem reaches `shift`;
- a row always holds ceil(ctx / block size) KV blocks (it grows to that after every step and
  frees all on leaving), so `held` is derived, and the blocks k more iterations add come
  from a histogram of stored ctx mod block size (`growth`);
- the context sum and the prefilling rows are kept as Python numbers, and the rows' stored
  rem in a heap (`_heap`, stale entries skipped): its top is min(rem), and the rows that
  finish in a step are popped from it.
Rows that do something else in a step (prompt chunks, rows left out) are `take`n out of the
counts and `put` back with their new values.
"""

from __future__ import annotations

import heapq

import numpy as np


class RunningSet:
    """`idx` trace position, `ctx` tokens in the KV cache (`Seq.context_tokens`), `left` prompt
    tokens still to prefill in this attempt, `rem` tokens still to generate."""

    def __init__(self, block_size: int) -> None:
        self.bs = block_size
        self._idx: list[int] = []
        self._ctx: list[int] = []       # stored: true ctx - shift
        self._left: list[int] = []
        self._rem: list[int] = []       # stored: true rem + shift
        self.n = 0
        self.shift = 0                  # uniform decode iterations so far
        self.hist = [0] * block_size    # counted rows by stored ctx mod block size
        self.out = 0                    # rows taken out of the counts (`take`)
        self.ctx_sum = 0                # true ctx summed over the counted rows
        self.n_prefilling = 0           # rows with left > 0
        self._heap: list[tuple[int, int]] = []   # (stored rem, idx), stale ones included
        self._rem_of: dict[int, int] = {}        # idx -> stored rem of the running rows
        self._pos: dict[int, int] = {}           # idx -> position

    # -- reading (true values) --------------------------------------------------------
    @property
    def idx(self) -> np.ndarray:
        return np.array(self._idx, dtype=np.int64)

    @property
    def left(self) -> np.ndarray:
        return np.array(self._left, dtype=np.int64)

    @property
    def ctx(self) -> np.ndarray:
        return np.array(self._ctx, dtype=np.int64) + self.shift

    @property
    def rem(self) -> np.ndarray:
        return np.array(self._rem, dtype=np.int64) - self.shift

    @property
    def held(self) -> np.ndarray:
        """KV blocks per row: ceil(ctx / block size)."""
        return -(-self.ctx // self.bs)

    @property
    def rem_min(self) -> int:
        if not self.n:
            return 0
        heap, cur = self._heap, self._rem_of
        while cur.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] - self.shift

    def get(self, p: int) -> tuple[int, int, int, int]:
        """(idx, ctx, left, rem) of the row at position p."""
        return (self._idx[p], self._ctx[p] + self.shift, self._left[p],
                self._rem[p] - self.shift)

    def prefilling(self) -> list[int]:
        """Positions of the rows with prompt tokens left."""
        return [p for p, left in enumerate(self._left) if left]

    def finished(self) -> list[int]:
        """Positions of the rows with nothing left to generate (they must be removed)."""
        heap, cur, out = self._heap, self._rem_of, []
        while heap and heap[0][0] <= self.shift:
            r, i = heapq.heappop(heap)
            if cur.get(i) == r:
                out.append(self._pos[i])
        return out

    # -- changing -----------------------------------------------------------------------
    def append(self, i: int, ctx: int, left: int, rem: int) -> int:
        """Add a row; returns its position."""
        p = self.n
        c, r = ctx - self.shift, rem + self.shift
        self._idx.append(i)
        self._ctx.append(c)
        self._left.append(left)
        self._rem.append(r)
        self.n = p + 1
        self.hist[c % self.bs] += 1
        self.ctx_sum += ctx
        if left > 0:
            self.n_prefilling += 1
        self._rem_of[i] = r
        self._pos[i] = p
        heapq.heappush(self._heap, (r, i))
        return p

    def advance(self, k: int) -> None:
        """Every row decoded k iterations (rows taken out are `put` back after)."""
        self.shift += k
        self.ctx_sum += (self.n - self.out) * k

    def growth(self, k: int) -> int:
        """KV blocks the counted rows add over k more decode iterations: a row at ctx = c
        adds floor(((c - 1) mod bs + k) / bs), i.e. k // bs, plus one where c mod bs is 0 or
        above bs - k mod bs - a cyclic range of k mod bs residues."""
        bs = self.bs
        q, e = divmod(k, bs)
        g = (self.n - self.out) * q
        if e:
            h = self.hist
            a = (bs - e + 1 - self.shift) % bs
            b = a + e
            g += sum(h[a:b]) if b <= bs else sum(h[a:]) + sum(h[:b - bs])
        return g

    def full(self) -> int:
        """Counted rows whose last block is full (ctx a multiple of the block size)."""
        return self.hist[-self.shift % self.bs]

    def take(self, positions: list[int]) -> list[tuple[int, int, int, int]]:
        """Take rows out of the counts (to change them one by one); their (idx, ctx, left,
        rem)."""
        rows = [self.get(p) for p in positions]
        for _, c, _, _ in rows:
            self.hist[(c - self.shift) % self.bs] -= 1
            self.ctx_sum -= c
        self.out += len(rows)
        return rows

    def put(self, p: int, i: int, ctx: int, left: int, rem: int, left_before: int) -> None:
        """Put a taken row back (trace position i) with its new values."""
        c, r = ctx - self.shift, rem + self.shift
        self._ctx[p], self._left[p], self._rem[p] = c, left, r
        if self._rem_of[i] != r:
            self._rem_of[i] = r
            heapq.heappush(self._heap, (r, i))
        self.hist[c % self.bs] += 1
        self.ctx_sum += ctx
        self.n_prefilling += (left > 0) - (left_before > 0)
        self.out -= 1

    def rebuild(self) -> None:
        """Recount everything from the columns."""
        bs = self.bs
        self.n = len(self._idx)
        self.hist = [0] * bs
        for c in self._ctx:
            self.hist[c % bs] += 1
        self.ctx_sum = sum(self._ctx) + self.n * self.shift
        self.n_prefilling = sum(1 for left in self._left if left > 0)
        self.out = 0
        self._rem_of = dict(zip(self._idx, self._rem))
        self._pos = {i: p for p, i in enumerate(self._idx)}
        self._heap = list(zip(self._rem, self._idx))
        heapq.heapify(self._heap)

    def compact(self, keep: np.ndarray) -> None:
        """Keep the rows where `keep` is True, in order."""
        kept = keep.tolist()
        for name in ("_idx", "_ctx", "_left", "_rem"):
            setattr(self, name, [v for v, k in zip(getattr(self, name), kept) if k])
        self.rebuild()

    def remove(self, positions: list[int]) -> None:
        """Remove the rows at `positions` (any order kept for the rest)."""
        cols = (self._idx, self._ctx, self._left, self._rem)
        idx, ctx, left = self._idx, self._ctx, self._left
        hist, bs, rem_of, pos = self.hist, self.bs, self._rem_of, self._pos
        for p in sorted(positions, reverse=True):
            i, c = idx[p], ctx[p]
            hist[c % bs] -= 1
            self.ctx_sum -= c + self.shift
            if left[p] > 0:
                self.n_prefilling -= 1
            del rem_of[i], pos[i]
            last = self.n - 1
            if p != last:
                for col in cols:
                    col[p] = col[last]
                pos[idx[p]] = p
            for col in cols:
                col.pop()
            self.n = last
