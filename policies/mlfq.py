"""`mlfq`: FastServe's skip-join multi-level feedback queue (Wu et al., "Fast Distributed
Inference Serving for Large Language Models", arXiv:2305.05920, NSDI '26 as "FastServe:
Iteration-Level Preemptive Scheduling for Large Language Model Inference"), on the continuous
replica.

The paper's scheduler (its §4.1 "Skip-join MLFQ"): queues Q1..QK of rising quantum (the
quantum of Q_i is `quantum_ratio` times that of Q_{i-1}, 2 in the paper); a newly arrived job
*skip-joins* the highest-priority queue whose quantum is at least its first-iteration (prefill)
time, so a long prompt does not demote its way down through every queue; a job that has used
its queue's quantum is demoted to the next queue (joining its tail); jobs in higher queues
preempt jobs in lower ones at iteration granularity; a job that has starved for STARVE_LIMIT
is promoted to Q1.

Here, as everything in seqsched is in tokens, a quantum is a number of generated tokens (one
token per decode iteration), and a prompt's first-iteration time is `prompt_weight` decode
iterations per prompt token (default 1/128: a 2,048-token prefill ~ 16 decode iterations, the
order of a 7B model on an A100). Parameters: `quantum` (tokens of Q1), `quantum_ratio`,
`num_queues` (K), or an explicit `levels` list ("16,32,64": the quanta of Q1..QK, ascending);
STARVE_LIMIT is the shared `max_wait_s` guard (off by default, as FastServe does not give a
value); preemption of running jobs by higher-priority arrivals is on (`preemptive`), by the
replica's `preemption` mode (FastServe swaps KV to host memory: `preemption=swap`).

A queue's quantum counts served tokens (with `preemption=restart` the thrown-away ones too,
so a restart cannot lift a request back up and two requests cannot displace each other
forever). Order: lower queue index first; within a queue first-in first-out by the time the job
entered it (its arrival for the queue it skip-joined, else its demotion), which the policy
records when it sees a running row change queue — a request's key never changes while it
waits, as the replica's sorted queue requires.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

from seqsched.common.errors import UserError
from seqsched.common.params import is_number, is_whole
from seqsched.policies.continuous import ContinuousPolicy
from seqsched.sim.sequence import Seq


def parse_levels(levels) -> list[int]:
    """'16,32,64' (or a list) -> [16, 32, 64]; non-empty, whole, > 0, ascending."""
    items = str(levels).split(",") if isinstance(levels, (str, int)) else list(levels)
    try:
        out = [int(str(v).strip()) for v in items if str(v).strip()]
    except ValueError:
        raise UserError(f"levels must be whole numbers of tokens like 16,32,64, got "
                        f"{levels!r}") from None
    if not out:
        raise UserError("levels must list at least one quantum, e.g. levels=16,32,64")
    if min(out) <= 0:
        raise UserError(f"every quantum in levels must be > 0 tokens, got {levels!r}")
    if out != sorted(out):
        raise UserError(f"levels must be sorted ascending (Q1 has the smallest quantum), got "
                        f"{levels!r}; e.g. levels={','.join(map(str, sorted(out)))}")
    return out


def served(seq: Seq) -> int:
    """Output tokens a request has been served, including attempts a restart threw away:
    a restarted request keeps its queue (it cannot regain priority and displace back)."""
    return seq.generated + seq.wasted_tokens


@dataclass
class MLFQPolicy(ContinuousPolicy):
    quantum: int = 16                # tokens, the quantum of Q1
    quantum_ratio: float = 2.0       # quantum of Q_i / quantum of Q_{i-1} (FastServe: 2)
    num_queues: int = 6              # K
    levels: str | None = None        # explicit quanta of Q1..QK, e.g. "16,32,64"
    prompt_weight: float = 1 / 128   # decode iterations one prompt token's prefill costs
    preemptive: bool = True
    name: str = "mlfq"
    _entered: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels is not None:
            self.quanta = parse_levels(self.levels)
        else:
            if not is_whole(self.quantum) or self.quantum <= 0:
                raise UserError(f"quantum must be a whole number of tokens > 0, got "
                                f"{self.quantum!r}")
            if not is_whole(self.num_queues) or self.num_queues <= 0:
                raise UserError(f"num-queues must be a whole number > 0, got "
                                f"{self.num_queues!r}")
            if not is_number(self.quantum_ratio) or not self.quantum_ratio >= 1:
                raise UserError(f"quantum-ratio must be a number >= 1 (quanta grow down the "
                                f"queues), got {self.quantum_ratio!r}")
            self.quanta = [max(int(round(self.quantum * self.quantum_ratio ** i)), 1)
                           for i in range(self.num_queues)]
        if not is_number(self.prompt_weight) or not self.prompt_weight >= 0:
            raise UserError(f"prompt-weight must be a number >= 0, got {self.prompt_weight!r}")
        # rank of a queue in tokens (for `aging`): the tokens served before reaching it
        self._start = [0, *itertools.accumulate(self.quanta)][:-1]

    # -- queues -------------------------------------------------------------------------
    def join_level(self, seq: Seq) -> int:
        """Skip-join: the highest-priority queue whose quantum covers the prefill."""
        first = seq.prompt_tokens * self.prompt_weight
        return min(bisect.bisect_left(self.quanta, first), len(self.quanta) - 1)

    def _bounds(self, seq: Seq) -> list[int]:
        """Generated-token counts at which `seq` is demoted (from its join queue)."""
        j = self.join_level(seq)
        return list(itertools.accumulate(self.quanta[j:-1]))

    def level(self, seq: Seq) -> int:
        return self.join_level(seq) + bisect.bisect_right(self._bounds(seq), served(seq))

    def rank(self, seq: Seq) -> float:
        return self._start[self.level(seq)]

    def priority(self, seq: Seq) -> tuple:
        level = self.level(seq)
        entry = self._entered.get(seq.idx)
        entered = entry[1] if entry is not None and entry[0] == level else seq.arrival_s
        return (self._start[level] + self.aging * seq.arrival_s, entered, seq.idx)

    # -- scheduling ---------------------------------------------------------------------
    def schedule(self, view):
        for s in view.running:             # record demotions (the tail of the next queue)
            level = self.level(s)
            entry = self._entered.get(s.idx)
            if entry is None:
                entry = (self.join_level(s), s.arrival_s)
            if entry[0] != level:
                entry = (level, view.now)
            self._entered[s.idx] = entry
        return super().schedule(view)

    def horizon(self, view, rows: list[Seq]) -> int:
        """Stop the batch at the first demotion while requests wait (they may outrank it)."""
        if not (self.preemptive and len(view.waiting)):
            return self.max_iterations
        nxt = [min((b for b in self._bounds(s) if b > served(s)), default=None) for s in rows]
        left = [b - served(s) for s, b in zip(rows, nxt) if b is not None]
        return int(min([self.max_iterations, *left]))

