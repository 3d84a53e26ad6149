"""Static batching, the Sequence Scheduling paper's setting (Zheng et al., NeurIPS 2023).

A batch is admitted only when the replica is idle, is padded to its longest prompt, and decodes
until every row has finished or the batch's cap is reached. The policies differ in how they
cut the waiting requests into batches:

- `vanilla`: arrival order, fixed batch size, cap = max length.
- `sorted`: take a pool (the paper's group of 256), sort it by predicted length, cut into
  fixed-size batches (the paper's "w/o VBS/FCR" row).
- `binned`: bin predictions up to a multiple of 50; VBS picks the batch size per bin (the
  paper's table, or the largest padded batch that fits KV memory); FCR caps each batch at its
  bin and recomputes rows that hit the cap unfinished, after the pool, at the full cap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice

from seqsched.sim.step import Step
from seqsched.common.errors import UserError
from seqsched.sim.sequence import Seq, Status

# The paper's variable batch sizes per 50-token bin (src/utils.py, `len_bs_dict`); others: 16.
PAPER_VBS_TABLE = {50: 256, 100: 128, 150: 64, 200: 32, 250: 16, 300: 16}
PAPER_VBS_DEFAULT = 16


def bin_up(length: int, width: int = 50) -> int:
    """Round up to a multiple of `width` (a multiple stays; at least one bin)."""
    return max(-(-int(length) // width) * width, width)


def fitting_batch(seqs: list[Seq], new_tokens: int, view) -> int:
    """Largest padded batch of `seqs`-like rows (longest prompt + `new_tokens` each) that fits
    the replica's KV memory."""
    width = max(s.prompt_tokens for s in seqs) + new_tokens
    return max(view.kv.capacity_tokens // width, 1)


def _check_positive(**values) -> None:
    for name, v in values.items():
        if v is None or v <= 0:
            raise UserError(f"{name.replace('_', '-')} must be > 0, got {v}")


@dataclass
class Batch:
    seqs: list[Seq]
    cap: int
    fcr: bool


@dataclass
class StaticPolicy:
    """Shared machinery: a queue of planned batches, refilled pool by pool."""

    batch_size: int = 16
    max_new_tokens: int = 512
    pool_size: int = 256
    name: str = "static"
    _plan: deque = field(default_factory=deque, init=False, repr=False)
    _pool: list = field(default_factory=list, init=False, repr=False)
    _recomputed: bool = field(default=True, init=False, repr=False)
    # the replica runs a prediction step only for a policy that reads `seq.predicted`
    reads_predictions = True

    def __post_init__(self) -> None:
        _check_positive(batch_size=self.batch_size, max_new_tokens=self.max_new_tokens,
                        pool_size=self.pool_size)

    def priority(self, seq: Seq) -> tuple:
        return (seq.arrival_s, seq.idx)

    def schedule(self, view) -> Step | None:
        if view.running:
            return None
        if not self._plan:
            self._refill(view)
        if not self._plan:
            return None
        b = self._plan.popleft()
        return Step(b.seqs, [s.prompt_tokens for s in b.seqs], padded=True, cap=b.cap, fcr=b.fcr)

    def _refill(self, view) -> None:
        if not self._recomputed:
            # FCR: rows of the finished pool that hit their cap, recomputed at the full cap
            self._recomputed = True
            failed = [s for s in self._pool if s.status is Status.WAITING and s.failed]
            if failed:
                size = min(self.batch_size, fitting_batch(failed, self.max_new_tokens, view))
                for i in range(0, len(failed), size):
                    self._plan.append(Batch(failed[i:i + size], self.max_new_tokens, False))
                return
        pool = [s for s in islice(view.waiting, self.pool_size)]
        if not pool:
            return
        self._pool = pool
        self._recomputed = False
        self._plan.extend(self.plan_pool(pool, view))

    def plan_pool(self, pool: list[Seq], view) -> list[Batch]:
        raise NotImplementedError


@dataclass
class VanillaPolicy(StaticPolicy):
    name: str = "vanilla"
    reads_predictions = False           # arrival order, the cap for every row

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pool_size = self.batch_size

    def plan_pool(self, pool, view):
        return [Batch(pool, self.max_new_tokens, False)]


@dataclass
class SortedPolicy(StaticPolicy):
    name: str = "sorted"

    def plan_pool(self, pool, view):
        ordered = sorted(pool, key=lambda s: s.predicted)
        return [Batch(ordered[i:i + self.batch_size], self.max_new_tokens, False)
                for i in range(0, len(ordered), self.batch_size)]


@dataclass
class BinnedPolicy(StaticPolicy):
    """`vbs`: batch size per bin; `vbs_table` "paper" (PAPER_VBS_TABLE, clipped to what fits KV
    memory) or "memory" (largest padded batch that fits, at most `max_batch_size`).
    `fcr`: cap = bin value, unfinished rows recomputed after the pool at `max_new_tokens`."""

    vbs: bool = True
    fcr: bool = True
    bin_width: int = 50
    vbs_table: str = "paper"
    max_batch_size: int = 256
    name: str = "binned"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(bin_width=self.bin_width, max_batch_size=self.max_batch_size)
        if self.vbs_table not in ("paper", "memory"):
            raise UserError(f"unknown vbs-table {self.vbs_table!r}; use paper or memory")

    def _cap(self, bin_value: int) -> int:
        return min(bin_value, self.max_new_tokens) if self.fcr else self.max_new_tokens

    def _batch(self, rows: list[Seq], bin_value: int) -> Batch:
        # a row that reaches the full cap is done (truncated): recomputing it at the same
        # cap could only repeat the work, so FCR applies to caps below it
        cap = self._cap(bin_value)
        return Batch(rows, cap, self.fcr and cap < self.max_new_tokens)

    def _batch_size(self, bin_value: int, seqs: list[Seq], view) -> int:
        # a batch runs to its cap: the bin with FCR, the full cap without
        fits = fitting_batch(seqs, self._cap(bin_value), view)
        if self.vbs_table == "memory":
            return min(fits, self.max_batch_size)
        return min(PAPER_VBS_TABLE.get(bin_value, PAPER_VBS_DEFAULT), fits)

    def plan_pool(self, pool, view):
        ordered = sorted(pool, key=lambda s: s.predicted)
        if not self.vbs:
            batches = []
            for i in range(0, len(ordered), self.batch_size):
                rows = ordered[i:i + self.batch_size]
                batches.append(self._batch(rows, bin_up(rows[-1].predicted, self.bin_width)))
            return batches
        bins: dict[int, list[Seq]] = {}
        for s in ordered:
            bins.setdefault(bin_up(s.predicted, self.bin_width), []).append(s)
        keys = sorted(bins)
        batches = []
        for j, key in enumerate(keys):
            rows = bins[key]
            size = self._batch_size(key, rows, view)
            # the paper's rule: a short leftover batch (the bin's last, under half a batch or
            # under 16 rows) joins the next longer bin; a full batch is never a leftover
            short = min(size, max(size // 2, PAPER_VBS_DEFAULT))
            for i in range(0, len(rows), size):
                chunk = rows[i:i + size]
                if j + 1 < len(keys) and i + size >= len(rows) and len(chunk) < short:
                    bins[keys[j + 1]][:0] = chunk
                    break
                batches.append(self._batch(chunk, key))
        return batches
