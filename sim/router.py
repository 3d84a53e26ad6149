"""Routers that look at more than a counter: power-of-two choices and prefix-cache-aware.

A router is `route(engine, seq) -> replica index`, called once per arriving request.

- `power-of-two`: sample two distinct replicas and send the request to the one with fewer
  outstanding requests (Mitzenmacher, "The Power of Two Choices in Randomized Load
  Balancing", 2001; SGLang's router and llm-d offer it too).
- `prefix-aware`: the cache-aware policy of SGLang's router (sgl-project/sglang,
  `sgl-router` `cache_aware`: `--cache-threshold 0.5 --balance-abs-threshold 32
  --balance-rel-threshold 1.0001`): when the load is imbalanced (max - min outstanding >
  32 AND max > 1.0001 x min) it sends the request to the least-loaded replica; otherwise to the
  replica whose prefix tree matches the most of the request, if that match covers more than
  half of the prompt, else to the replica whose tree is smallest (the most room). Like
  SGLang's, each replica's tree is *approximate*: the blocks of the requests routed there
  (capped at the replica's KV blocks, least recently routed dropped first), not the cache
  itself, so a burst of requests with one prefix goes to one replica before any of them has
  run. llm-d scores the same two signals (prefix-cache hit and queue load) as a weighted sum.
  Without prefix information (prefix caching off or a trace without it) it is least-loaded.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from seqsched.sim.sequence import Seq


def route_power_of_two(engine, seq: Seq) -> int:
    n = len(engine.replicas)
    if n == 1:
        return 0
    a, b = (int(x) for x in engine.rng.choice(n, size=2, replace=False))
    la, lb = engine.replicas[a].outstanding, engine.replicas[b].outstanding
    return a if (la, a) < (lb, b) else b


@dataclass
class ApproxTree:
    """The block hashes routed to one replica, least recently routed first."""

    capacity: int
    blocks: OrderedDict = field(default_factory=OrderedDict)

    def match(self, hashes: list[int]) -> int:
        n = 0
        for h in hashes:
            if h not in self.blocks:
                break
            n += 1
        return n

    def insert(self, hashes: list[int]) -> None:
        for h in hashes:
            self.blocks[h] = None
            self.blocks.move_to_end(h)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)


@dataclass
class CacheAwareRouter:
    """SGLang's cache-aware routing decision (see the module docstring)."""

    cache_threshold: float = 0.5
    balance_abs_threshold: int = 32
    balance_rel_threshold: float = 1.0001
    trees: list[ApproxTree] = field(default_factory=list)

    def __call__(self, engine, seq: Seq) -> int:
        replicas = engine.replicas
        loads = [r.outstanding for r in replicas]
        least = min(range(len(loads)), key=lambda i: (loads[i], i))
        prefix = replicas[0].kv.prefix
        if prefix is None:
            return least
        if not self.trees:
            self.trees = [ApproxTree(r.kv.num_blocks) for r in replicas]
        hashes = prefix.seq_hashes(seq)[:seq.prompt_tokens // prefix.block_size]
        hi, lo = max(loads), min(loads)
        if hi - lo > self.balance_abs_threshold and hi > self.balance_rel_threshold * lo:
            choice = least
        else:
            matches = [t.match(hashes) for t in self.trees]
            best = max(range(len(matches)), key=lambda i: (matches[i], -i))
            rate = matches[best] * prefix.block_size / seq.prompt_tokens
            if rate > self.cache_threshold:
                choice = best
            else:
                choice = min(range(len(self.trees)),
                             key=lambda i: (len(self.trees[i].blocks), i))
        self.trees[choice].insert(hashes)
        return choice


def route_prefix_aware(engine, seq: Seq) -> int:
    router = engine.route_state.get("prefix-aware")
    if router is None:
        router = engine.route_state["prefix-aware"] = CacheAwareRouter()
    return router(engine, seq)
