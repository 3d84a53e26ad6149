"""The replica's waiting queue: sorted by the policy's priority key, plus (only for a policy
with a max-wait guard) a second index by arrival, so the guard finds the requests that have
waited too long without scanning the whole queue each step."""

from __future__ import annotations

from sortedcontainers import SortedKeyList


def _arrival(seq) -> tuple:
    return (seq.arrival_s, seq.idx)


class ArrivalIndexedQueue(SortedKeyList):
    """A SortedKeyList by priority that also keeps `by_arrival` (add/remove only: the
    replica's waiting queue uses no other mutation)."""

    def __init__(self, key):
        super().__init__(key=key)
        self.by_arrival = SortedKeyList(key=_arrival)

    def add(self, value) -> None:
        super().add(value)
        self.by_arrival.add(value)

    def remove(self, value) -> None:
        super().remove(value)
        self.by_arrival.remove(value)


def wait_queue(policy) -> SortedKeyList:
    if getattr(policy, "max_wait_s", 0) > 0:
        return ArrivalIndexedQueue(policy.priority)
    return SortedKeyList(key=policy.priority)
