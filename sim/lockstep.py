"""Data-parallel lockstep: the replicas of one DP group of an MoE model step together.

In vLLM a data-parallel MoE deployment runs one `DPEngineCoreProc` per rank (vllm/v1/engine/
core.py, only for MoE models). While any rank has unfinished requests every rank runs a forward
pass each step -- `execute_dummy_batch()` when it has nothing ready -- and the expert
all-to-all / all-gather of every MoE layer synchronises the ranks, so a step of the group lasts
as long as its slowest member's step and all members' steps end together.

Here: members that start a continuous step at the same instant form one round; the round ends
at the latest of their modelled step ends, and every member's step ends there. A member with
nothing to run while others step just waits for the round's end (its dummy pass of one token is
never longer than a member's real step, which runs at least one token through the same layers,
so it would not move the round's end); a member that gets work mid-round starts at the round's
end, where vLLM's dummy pass ends. Each member runs one iteration per step (its step's duration
must be known per iteration for the max to mean anything).
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy

from seqsched.common.errors import UserError


@dataclass
class _Round:
    start: float
    end: float
    done: simpy.Event


class DPGroup:
    """One lockstep group of replicas (all share this object)."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._round: _Round | None = None

    def busy(self) -> simpy.Event | None:
        """The end of a round that began before now and has not ended (a member must wait for
        it before starting a step), or None."""
        r = self._round
        if r is not None and r.start < self.env.now and not r.done.triggered:
            return r.done
        return None

    def step(self, duration: float):
        """Join the round starting now (or open one) with a step of `duration` seconds; return
        when the round ends (the latest end of its members)."""
        now = self.env.now
        r = self._round
        if r is None or r.start != now or r.done.triggered:
            r = self._round = _Round(now, now + duration, self.env.event())
            self.env.process(self._close(r))
        else:
            r.end = max(r.end, now + duration)
        yield r.done

    def _close(self, r: _Round):
        while r.end > self.env.now:     # members joining at the start may push the end out
            yield self.env.timeout(r.end - self.env.now)
        r.done.succeed()


def attach_groups(replicas: list, size: int, disagg: bool = False) -> None:
    """Consecutive replicas in groups of `size` (vLLM's data_parallel_size) step in lockstep;
    size 0 or 1: independent replicas, as without this module."""
    if size < 0 or (size > 1 and (disagg or len(replicas) % size)):
        raise UserError(f"--dp-lockstep {size} needs a whole number of groups of replicas "
                        f"({len(replicas)} replicas) and no disaggregation; give a divisor of "
                        "--replicas, or 0 for independent replicas")
    if size <= 1:
        return
    for first in range(0, len(replicas), size):
        group = DPGroup(replicas[first].env)
        for rep in replicas[first:first + size]:
            rep.group = group
