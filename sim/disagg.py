"""Prefill/decode disaggregation (DistServe, OSDI 2024; Splitwise, ISCA 2024): prefill
replicas only prefill, decode replicas only decode, and each request's KV cache crosses a
link from one to the other.

- A request arrives at a prefill replica (the run's router over the prefill replicas), which
  runs its prefill and first token with the run's policy, as a request of one output token.
- Its KV (prompt + kept output tokens) is then sent to a decode replica over the link of its
  prefill replica, one transfer at a time per link (a later one queues behind): bytes / link
  bandwidth (`backends/links.py`: NVLink inside a node, InfiniBand across nodes).
- When the KV has arrived the request joins the least-loaded decode replica, past its
  prefill: it is admitted as a decode row when its blocks are free there.
- The user sees the first token when it reaches the decode side, as with vLLM's P/D proxy
  (the prefill instance runs with max_tokens=1 and tokens stream from the decode instance):
  TTFT = queueing + prefill + transfer; TPOT is measured on the decode side alone. Goodput
  (DistServe) is the rate of requests meeting both the TTFT and the TPOT objective
  (`analysis.metrics.goodput`).
- A request of one output token finishes on the prefill side (nothing to decode).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import simpy

from seqsched.sim.sequence import Seq, Status


@dataclass
class Disaggregation:
    prefill: list[int]                 # replica indices
    decode: list[int]
    bytes_per_token: int               # KV bytes per token (all layers, K and V)
    bandwidth_bps: float               # the prefill -> decode link, bytes/s
    expected: int = 0                  # requests that will reach a decode replica
    delivered: int = 0
    links: list = field(default_factory=list)      # one simpy.Resource per prefill replica
    pending: list = field(default_factory=list)    # heap of known delivery times

    def setup(self, engine) -> None:
        self.links = {r: simpy.Resource(engine.env, capacity=1) for r in self.prefill}
        self.expected = sum(1 for s in engine.seqs if s.target_tokens > 1)
        for s in engine.seqs:          # the prefill side runs one token
            s.decode_target = s.target_tokens
            s.target_tokens = 1

    def transfer_s(self, tokens: int) -> float:
        return tokens * self.bytes_per_token / self.bandwidth_bps

    def route(self, engine, route, seq: Seq) -> int:
        """The run's router, over the prefill replicas only."""
        return self.prefill[route(_Subset(engine, self.prefill), seq)]

    def inputs_done(self, engine, replica: int) -> bool:
        if replica in self.links:
            return engine.arrivals_done
        return engine.arrivals_done and self.delivered >= self.expected

    def next_input_s(self, engine, replica: int, arrival: float | None) -> float | None:
        """A bound on the next request reaching `replica`: for a decode replica, the next
        known delivery or the end of a prefill replica's running step (a prefill can only
        hand off when its step ends)."""
        if replica in self.links:
            return arrival
        now = engine.env.now
        times = [t - now for t in (self.pending[:1] + [engine.replicas[r].busy_until
                                                       for r in self.prefill])
                 if t > now]
        if arrival is not None:
            times.append(arrival)
        return min(times) if times else None

    def hand_off(self, engine, seq: Seq) -> bool:
        """Called when `seq` finished on a replica: True if it goes on to a decode replica."""
        if seq.replica not in self.links or seq.decode_target <= seq.generated:
            return False
        seq.target_tokens = seq.decode_target
        seq.output_tokens = max(seq.output_tokens, seq.decode_target)
        seq.status = Status.WAITING
        seq.slot_tokens_all -= seq.generated          # counted again when it finishes
        seq.attempts -= 1                              # the decode side goes on, not again
        seq.prefill_replica = seq.replica
        seq.prefill_end_s = seq.finish_s
        seq.finish_s = math.nan
        engine.env.process(self._send(engine, seq))
        return True

    def _send(self, engine, seq: Seq):
        link = self.links[seq.replica]
        with link.request() as turn:
            yield turn
            seconds = self.transfer_s(seq.context_tokens - 1)
            heapq.heappush(self.pending, engine.env.now + seconds)
            yield engine.env.timeout(seconds)
            heapq.heappop(self.pending)
        seq.kv_transfer_s = seconds
        seq.first_token_s = engine.env.now           # the first token reaches the user
        target = min(self.decode, key=lambda r: (engine.replicas[r].outstanding, r))
        self.delivered += 1
        engine.replicas[target].add(seq)
        for r in self.decode:
            engine.replicas[r].wake()


class _Subset:
    """An engine seen by a router as if it had only some of its replicas."""

    def __init__(self, engine, indices: list[int]) -> None:
        self._engine = engine
        self.replicas = [engine.replicas[i] for i in indices]
        self.rng = engine.rng
        self.route_state = engine.route_state

    def __getattr__(self, name):
        return getattr(self._engine, name)
