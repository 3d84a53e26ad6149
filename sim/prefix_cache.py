"""Automatic prefix caching, as vLLM v1 does it (`vllm/v1/core/block_pool.py`,
`kv_cache_manager.py`, `single_type_kv_cache_manager.py`).

- Full KV blocks are identified by a chained hash of their tokens and every token before
  them (`traces/prefix.py` computes them). A block that fills up is registered under its hash
  (`cache_full_blocks`); a second block with a hash already registered stays private (vLLM
  keeps duplicates too, and looks up the first).
- A new request (or one resumed after a recompute preemption) takes the longest run of
  registered blocks from the start of its tokens, at most `tokens - 1` of them (the last token
  is computed again for its logits: `max_cache_hit_length = num_tokens - 1`); its prefill
  skips those tokens (`get_computed_blocks`). A hit on a block another running request holds
  shares it (reference count); a hit on a freed cached block takes it back off the free queue
  (`touch`).
- A finished or preempted request's blocks return to the free queue in reverse order, its last
  block first (`free`: eviction order), and cached ones keep their hash: they are still free
  memory, but a later request can hit them until they are evicted.
- New blocks come from the head of the free queue (`get_new_blocks`): the least recently freed
  block goes first, and if it is cached its hash is dropped (LRU eviction).

The free queue holds runs of anonymous blocks (never cached, or evicted) as counts and cached
blocks by hash, so bookkeeping is per cached block, not per token.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from seqsched.sim.sequence import Seq


class PrefixCache:
    """The cached-block index and the free queue of one replica's KV memory."""

    def __init__(self, num_blocks: int, block_size: int,
                 hashes: Callable[[Seq], list[int]]) -> None:
        self.block_size = block_size
        self.hashes = hashes                   # seq -> its chained block hashes (all tokens)
        self.refs: dict[int, int] = {}         # registered hash -> running requests holding it
        # eviction order, head first: hash -> 1 (a free cached block), or an anonymous run's
        # key (a 1-tuple, never equal to a hash) -> number of free blocks in the run
        self.free_queue: OrderedDict = OrderedDict()
        self._anon = 0
        self._push_anon(num_blocks)
        self.evicted = 0                       # cached blocks evicted to make room
        self.hit_tokens = 0                    # tokens served from the cache

    # -- the free queue ---------------------------------------------------------------
    def _push_anon(self, n: int) -> None:
        if n <= 0:
            return
        if self.free_queue:
            key = next(reversed(self.free_queue))
            if type(key) is tuple:             # extend the tail run
                self.free_queue[key] += n
                return
        self._anon += 1
        self.free_queue[(self._anon,)] = n

    def take(self, n: int) -> None:
        """Take `n` blocks from the head of the free queue, evicting cached ones."""
        q = self.free_queue
        while n > 0:
            key, count = q.popitem(last=False)
            if type(key) is not tuple:         # a cached block: evict it
                del self.refs[key]
                self.evicted += 1
                n -= 1
            elif count > n:                    # part of an anonymous run
                q[key] = count - n
                q.move_to_end(key, last=False)
                n = 0
            else:
                n -= count

    # -- requests ---------------------------------------------------------------------
    def seq_hashes(self, s: Seq) -> list[int]:
        """`s`'s chained block hashes (computed once per request, dropped when it ends)."""
        if s.block_hashes is None:
            s.block_hashes = self.hashes(s)
        return s.block_hashes

    def lookup(self, s: Seq) -> tuple[int, int]:
        """(cached tokens, of their blocks those another request holds) for `s` starting an
        attempt now; a pure query."""
        hashes = self.seq_hashes(s)
        most = (s.prefill_len - 1) // self.block_size
        hit = shared = 0
        refs = self.refs
        for h in hashes[:most]:
            r = refs.get(h)
            if r is None:
                break
            hit += 1
            shared += r > 0
        return hit * self.block_size, shared

    def acquire(self, s: Seq) -> tuple[int, int]:
        """Take `s`'s cached prefix (its attempt starts now): returns the tokens hit and how
        many blocks left the free queue."""
        tokens, _ = self.lookup(s)
        n = tokens // self.block_size
        taken = 0
        for h in s.block_hashes[:n]:
            if self.refs[h] == 0:
                del self.free_queue[h]
                taken += 1
            self.refs[h] += 1
        s.cache_keys = list(s.block_hashes[:n])
        self.hit_tokens += tokens
        return tokens, taken

    def register(self, s: Seq, computed_tokens: int) -> None:
        """Register `s`'s blocks that `computed_tokens` filled (vLLM: cache_full_blocks)."""
        if s.cache_keys is None:
            s.cache_keys = []
        keys = s.cache_keys
        hashes = self.seq_hashes(s)
        full = min(computed_tokens // self.block_size, len(hashes), s.kv_blocks)
        for j in range(len(keys), full):
            h = hashes[j]
            if h in self.refs:                 # already cached elsewhere: stays private
                keys.append(None)
            else:
                self.refs[h] = 1
                keys.append(h)

    def freed_by(self, s: Seq, dropped: dict) -> int:
        """Blocks releasing `s` would free, after the requests whose references `dropped`
        (hash -> references they drop) already counts; updates `dropped`. A block another
        running request still holds stays in use (a policy choosing preemption victims must
        not count it as room)."""
        keys = s.cache_keys or []
        freed = s.kv_blocks - len(keys)
        for h in keys:
            if h is None:
                freed += 1
                continue
            dropped[h] = dropped.get(h, 0) + 1
            freed += self.refs[h] == dropped[h]
        return freed

    def release(self, s: Seq) -> int:
        """Free `s`'s blocks, last block first; returns how many became free."""
        keys = s.cache_keys or []
        freed = s.kv_blocks - len(keys)        # private blocks past the registered ones
        self._push_anon(freed)
        for h in reversed(keys):
            if h is None:
                self._push_anon(1)
                freed += 1
                continue
            self.refs[h] -= 1
            if self.refs[h] == 0:
                self.free_queue[h] = 1
                freed += 1
        s.cache_keys = []
        return freed
