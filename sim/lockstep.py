"""Data-parallel lockstep: the replicas of one DP group of an MoE model step together.

In vLLM a data-parallel MoE deployment runs one `DPEngineCoreProc` per rank (vllm/v1/engine/
core.py, only for MoE models). While any rank has unfinished requests every rank runs a forward
pass each step -- `execute_dummy_batch()` when it has nothing ready -- and the expert
all-to-all / all-gather of every MoE layer synchronises the ranks, so a step of the group lasts
as long as its slowest member's step and all members' steps end together.

Here: members that start a continuous step at the same instant form one round; the round ends
at the latest of their modelled step ends, and every member's step ends there. A member with
nothing to run while others step runs vLLM's dummy pass of one token; a member that gets work
mid-round starts at the round's end, where vLLM's dummy pass ends. Each member runs one
iteration per step (its step's duration must be known per iteration for the max to mean
anything).

What a rank's step costs depends on the others' (vLLM 0.19.0 as released on PyPI, Apache-2.0,
read from its wheel): every step the ranks all-reduce their token counts and CUDA-graph modes
(`vllm/v1/worker/gpu_model_runner.py:3544` `_determine_batch_execution_and_padding` ->
`vllm/v1/worker/dp_utils.py` `coordinate_batch_across_dp`); a rank whose count exceeds the
largest capture size runs without a graph (mode NONE, `vllm/v1/cudagraph_dispatcher.py:271`),
the group takes the minimum mode (dp_utils.py:143), and only when it is not NONE are all ranks
padded to the largest rank's graph bucket (dp_utils.py:153 `should_dp_pad = synced_cudagraph_mode
!= 0 or should_ubatch`, :78; vllm-project/vllm PR #34102): `DPPadding`. An idle rank's
`execute_dummy_batch` is a one-token `_dummy_run` through the same coordination
(`vllm/v1/worker/gpu_worker.py:889`). Each MoE layer all-gathers the ranks' (padded) tokens with
their per-rank sizes (default all2all backend `allgather_reducescatter`,
`vllm/config/parallel.py:160`; `AgRsAll2AllManager`, `vllm/distributed/device_communicators/
all2all.py:150`, `all_gatherv` / `reduce_scatterv` sized by `num_tokens_across_dp`; no DP
chunking for it, `fused_moe/runner/default_moe_runner.py:263`), so with expert parallelism every
rank's experts run over the group's gathered tokens, padding included (skipping padded rows came
later, PR #46428); ranks of unequal counts make those calls grouped per-rank broadcasts /
reduces (pynccl.py:211, :274), so the largest rank's count is passed too
(backends/moe_profile.py `comm_us`). When every member's executor can time a step at a given
(padded tokens, gathered tokens, largest rank's tokens) -- `Executor.dp_timing` -- a round's
end is the start plus the largest of the
members' and the idle members' dummy-pass times at the group's counts; otherwise the largest of
the members' own step times. Not modelled: the per-step all-reduce itself (a CPU gloo one under
async scheduling, the default: `vllm/config/vllm.py:795`), the 32-step tail after the last
request.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Callable

import simpy

from seqsched.common.errors import UserError

Timing = Callable[[int, int, int], float]   # (this rank's padded tokens, gathered tokens,
                                            #  the largest rank's padded tokens) -> s


@dataclass(frozen=True)
class DPPadding:
    """vLLM's DP padding rule over the CUDA-graph capture sizes (ascending; empty: no CUDA
    graphs, as with --enforce-eager, so never padded)."""
    capture_sizes: tuple[int, ...] = ()

    def padded(self, tokens: list[int]) -> list[int]:
        """Each rank's forward token count, given every rank's scheduled count."""
        sizes, top = self.capture_sizes, max(tokens)
        if not sizes or top > sizes[-1]:        # some rank runs eagerly: nobody is padded
            return list(tokens)
        return [sizes[bisect_left(sizes, top)]] * len(tokens)   # the largest rank's bucket


@dataclass
class _Round:
    start: float
    end: float
    done: simpy.Event
    members: dict = field(default_factory=dict)     # member -> (own end, tokens, timing)
    gen: int = 0                                    # bumped when the end moves earlier


class DPGroup:
    """One lockstep group of replicas (all share this object). `members`: their keys (replica
    indices) in rank order; `dummy`: per member, the timing of its dummy pass, or None."""

    def __init__(self, env: simpy.Environment, members: list | None = None,
                 padding: DPPadding = DPPadding(), dummy: dict | None = None) -> None:
        self.env = env
        self.members = list(members or [])
        self.padding = padding
        self.dummy = dict(dummy or {})
        self._round: _Round | None = None

    def busy(self) -> simpy.Event | None:
        """The end of a round that began before now and has not ended (a member must wait for
        it before starting a step), or None."""
        r = self._round
        if r is not None and r.start < self.env.now and not r.done.triggered:
            return r.done
        return None

    def step(self, duration: float, member=None, tokens: int = 0, timing: Timing | None = None):
        """Join the round starting now (or open one) with a step of `duration` seconds as timed
        alone (`tokens` scheduled tokens; `timing` its time at the group's counts); return when
        the round ends."""
        now = self.env.now
        r = self._round
        fresh = r is None or r.start != now or r.done.triggered
        if fresh:
            r = self._round = _Round(now, now, self.env.event())
        r.members[member if member is not None else len(r.members)] = (now + duration, tokens,
                                                                        timing)
        end = self.end_of(r)
        if fresh or end < r.end:        # (re)start the closer; a stale one stops by itself
            r.gen += 0 if fresh else 1
            r.end = end
            self.env.process(self._close(r, r.gen))
        else:
            r.end = end
        yield r.done

    def run(self, rep, step, duration: float):
        """Replica `rep`'s continuous `step` (`duration` seconds alone, one iteration) in the
        round starting now, timed at the group's counts when its executor can (`dp_timing`)."""
        timing = getattr(rep.executor, "dp_timing", None)
        chunks = step.prefill_tokens                    # a decode row (chunk 0) is one token
        tokens = sum(chunks) + sum(1 for c in chunks if c == 0)
        yield from self.step(duration, rep.index, tokens,
                             timing(step, duration) if timing is not None else None)

    def end_of(self, r: _Round) -> float:
        """The round's end with the members joined so far (the others run dummy passes)."""
        own = max(e for e, _, _ in r.members.values())
        idle = [k for k in self.members if k not in r.members]
        if (not self.members or any(t is None for _, _, t in r.members.values())
                or any(self.dummy.get(k) is None for k in idle)):
            return own
        keys = self.members + [k for k in r.members if k not in self.members]
        tokens = [r.members[k][1] if k in r.members else 1 for k in keys]  # dummy: one token
        padded = self.padding.padded(tokens)
        gathered, largest = sum(padded), max(padded)
        times = [(r.members[k][2] if k in r.members else self.dummy[k])(p, gathered, largest)
                 for k, p in zip(keys, padded)]
        return r.start + max(times)

    def _close(self, r: _Round, gen: int):
        while r.end > self.env.now and r.gen == gen:   # joiners may push the end out
            yield self.env.timeout(r.end - self.env.now)
        if r.gen == gen:
            r.done.succeed()


def attach_groups(replicas: list, size: int, disagg: bool = False,
                  padding: DPPadding = DPPadding()) -> None:
    """Consecutive replicas in groups of `size` (vLLM's data_parallel_size) step in lockstep;
    size 0 or 1: independent replicas, as without this module. A replica whose executor has
    `dp_timing` times its steps and dummy passes at the group's token counts."""
    if size < 0 or (size > 1 and (disagg or len(replicas) % size)):
        raise UserError(f"--dp-lockstep {size} needs a whole number of groups of replicas "
                        f"({len(replicas)} replicas) and no disaggregation; give a divisor of "
                        "--replicas, or 0 for independent replicas")
    if size <= 1:
        return
    for first in range(0, len(replicas), size):
        members = replicas[first:first + size]
        dummy = {}
        for rep in members:
            timing = getattr(rep.executor, "dp_timing", None)
            dummy[rep.index] = timing(None) if timing is not None else None
        group = DPGroup(replicas[first].env, [rep.index for rep in members], padding, dummy)
        for rep in members:
            rep.group = group
