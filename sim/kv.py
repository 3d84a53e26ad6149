"""KV-cache memory of one replica, in fixed-size blocks (paged, as vLLM) or as one padded
reservation (static batching, as HF generate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from seqsched.common.errors import UserError
from seqsched.sim.sequence import Seq

if TYPE_CHECKING:
    from seqsched.sim.prefix_cache import PrefixCache


def reserve_blocks(generated: int, predicted: int, prompt: int, held: int,
                   block_size: int) -> int:
    """Blocks a request holding `held` still needs for its predicted output (predicted
    admission): up to prompt + predicted tokens; one block once it is past its prediction.
    The object and array engines both reserve by this rule (their `_reserved` sums it over
    the running rows, vectorised)."""
    if generated >= predicted:
        return 1
    return max(-(-(prompt + predicted) // block_size) - held, 0)


class KVOverflow(RuntimeError):
    """A policy asked for more KV memory than is free: a policy bug, not bad input."""


@dataclass
class KVCache:
    capacity_tokens: int
    block_size: int = 16
    prefix: "PrefixCache | None" = None   # prefix caching (sim/prefix_cache.py) when on

    def __post_init__(self) -> None:
        if self.capacity_tokens < self.block_size:
            raise UserError(f"KV capacity of {self.capacity_tokens} tokens is smaller than one "
                            f"block ({self.block_size}); use a bigger GPU or a smaller model")
        self.num_blocks = self.capacity_tokens // self.block_size
        self.used_blocks = 0
        self.static_tokens = 0     # padded reservation of the running static batch

    @property
    def free_blocks(self) -> int:
        return self.num_blocks - self.used_blocks - self.blocks_for(self.static_tokens)

    @property
    def used_tokens(self) -> int:
        return self.used_blocks * self.block_size + self.static_tokens

    def blocks_for(self, tokens):
        return -(-np.asarray(tokens) // self.block_size) if isinstance(tokens, np.ndarray) \
            else -(-tokens // self.block_size)

    def grow(self, seq: Seq, tokens: int) -> None:
        """Hold enough blocks for `tokens` tokens of `seq`."""
        need = self.blocks_for(tokens) - seq.kv_blocks
        if need > self.free_blocks:
            raise KVOverflow(f"request {seq.id} needs {need} more KV blocks, {self.free_blocks} free")
        if need > 0:
            self.allocate(need)
            seq.kv_blocks += need

    def free(self, seq: Seq) -> None:
        # with prefix caching, blocks another request shares stay in use
        self.used_blocks -= seq.kv_blocks if self.prefix is None else self.prefix.release(seq)
        seq.kv_blocks = 0

    def freed_by(self, seq: Seq, dropped: dict | None = None) -> int:
        """Blocks that preempting `seq` frees: all it holds, less (with prefix caching) the
        blocks another running request shares. `dropped` carries the references of victims
        already counted in the same decision (several victims may share a block)."""
        if self.prefix is None:
            return seq.kv_blocks
        return self.prefix.freed_by(seq, {} if dropped is None else dropped)

    def allocate(self, blocks: int) -> None:
        """Take `blocks` free blocks (evicting cached ones, least recently freed first)."""
        self.used_blocks += blocks
        if self.prefix is not None:
            self.prefix.take(blocks)

    def take_cached_prefix(self, seq: Seq) -> None:
        """`seq` starts an attempt: it holds its cached prefix and its prefill skips it."""
        tokens, taken = self.prefix.acquire(seq)
        self.used_blocks += taken
        seq.kv_blocks = tokens // self.block_size
        seq.prefilled = tokens
        seq.cached_tokens += tokens

    def computed(self, seq: Seq, tokens: int) -> None:
        """`seq`'s first `tokens` tokens are in the KV: cache the blocks they filled."""
        if self.prefix is not None:
            self.prefix.register(seq, tokens)

    def prefix_hit(self, seq: Seq) -> tuple[int, int]:
        """(tokens `seq` would take from the prefix cache if admitted now, of their blocks
        how many other requests hold); (0, 0) without caching or mid-attempt."""
        if self.prefix is None or seq.prefilled or seq.swapped:
            return 0, 0
        return self.prefix.lookup(seq)

    def reserve_static(self, tokens: int) -> None:
        if tokens > self.capacity_tokens - self.used_blocks * self.block_size:
            raise KVOverflow(f"a padded batch needs {tokens} KV tokens but the replica holds "
                             f"{self.capacity_tokens}; lower the batch size or the cap")
        self.static_tokens = tokens

    def max_iterations(self, tokens: np.ndarray, held_blocks: np.ndarray, free_blocks: int,
                       limit: int) -> int:
        """Largest k <= limit such that rows that will hold `tokens + k` tokens after k
        iterations fit: sum(blocks_for(tokens + k) - held) <= free_blocks. 0 if even k=1
        does not fit."""
        bs = self.block_size
        base = tokens + (bs - 1)

        def extra(k: int) -> int:
            need = (base + k) // bs - held_blocks
            return int(need[need > 0].sum())

        if limit < 1 or extra(1) > free_blocks:
            return 0
        if extra(limit) <= free_blocks:
            return limit
        lo, hi = 1, limit                # invariant: extra(lo) fits, extra(hi + 1) may not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if extra(mid) <= free_blocks:
                lo = mid
            else:
                hi = mid - 1
        return lo
