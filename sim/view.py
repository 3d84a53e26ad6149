"""The contract between a replica and its policy: what a policy may look at (`ReplicaView`)
and the error a replica raises when a policy's Step cannot run (`PolicyError`). Below the
replica, so the row bookkeeping, the batch runners and the array engine can raise it too."""

from __future__ import annotations

from dataclasses import dataclass

from sortedcontainers import SortedKeyList

from seqsched.sim.kv import KVCache
from seqsched.sim.sequence import Seq


class PolicyError(RuntimeError):
    """A policy returned a Step the engine cannot run (a bug in the policy)."""


@dataclass(frozen=True)
class ReplicaView:
    """What a policy may look at. Iterate `waiting` in the policy's priority order."""

    now: float
    replica: int
    waiting: SortedKeyList
    running: tuple[Seq, ...]
    kv: KVCache
    arrivals_done: bool
    held_slots: int = 0     # async scheduling: finished rows still in vLLM's running list
    resumes: bool = True    # a victim keeps its output (recompute, swap); False: it restarts
