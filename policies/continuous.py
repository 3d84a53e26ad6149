"""Continuous (iteration-level) batching, vLLM-style.

Every step: give the running rows their tokens for this iteration (one per decode row; prompt
chunks of rows still prefilling share the rest of the token budget in priority order, decode
first as Sarathi-Serve schedules), make room in KV memory for what that step adds (preempting
the lowest-priority running request when blocks run out), then admit waiting requests in
priority order while KV blocks, the sequence limit and the token budget allow. Prefill and
decode rows share an iteration (mixed batches, as vLLM V1 and Sarathi-Serve); with
`chunked_prefill` a prompt that does not fit the token budget is split across iterations.

Preemption (`preemption`): "recompute", as vLLM does, frees the victim's KV blocks and keeps
its output tokens; when it is admitted again, its prompt plus those tokens are prefilled as one
prompt (split into budget-sized chunks if they no longer fit one iteration) and decoding goes
on from there. "restart" throws the output away and starts the request from scratch (what an
executor that cannot resume does). "swap" (vLLM V0) copies the victim's KV to host memory and
back when it is admitted again (as a decode row, or a prefill that goes on where it stopped);
the copy time comes from the bytes and the host link (sim/swap.py). Either way the discarded KV tokens are recorded
(`recomputed_tokens`); a restart also counts its thrown-away output (`wasted_tokens`).

Waiting-queue orders (`priority`; the lowest key is admitted first, the highest key is the
first preemption victim, computed from the row's state when the step is scheduled):
`fcfs` by arrival; `sjf` by predicted length (shortest first); `srpt` by predicted remaining
work, max(predicted - generated, 0), so a request resumed after a recompute preemption, which
keeps its output, counts only what it still has to generate; `ltr` ranks by predicted length
as in Fu et al. 2024 ("Efficient LLM Scheduling by Learning to Rank") with starvation
prevention by linear aging (see `LTRPolicy`). Ties go by arrival, then trace order.

Admission (`admission`, every continuous policy): "greedy" (vLLM) admits a waiting request
whenever the blocks its next iteration needs are free. "predicted" reserves by predicted
length, as length-aware schedulers do to avoid preemption: a request is admitted only if the
blocks for its context plus its predicted remaining output fit in what is free after
reserving, for every running row, the blocks its predicted remaining output will still need
(a row already past its prediction reserves one block). With exact predictions no running row
ever outgrows its reservation, so nothing is preempted; an under-prediction can still run the
memory out, and then the usual preemption applies. A request whose prediction alone exceeds
the whole KV memory is admitted the greedy way when the replica is otherwise empty, so it
cannot wait forever.

`reserve_full_isl` (vLLM's `scheduler_reserve_full_isl`, True by default in vLLM 0.19.0:
vllm/config/scheduler.py; the gate is `Scheduler.schedule` -> `KVCacheManager.
can_fit_full_sequence`, vllm/v1/core/kv_cache_manager.py, vLLM v0.19.0 = commit 2a69949bd):
before a waiting request (new or preempted) is admitted, the blocks of its WHOLE sequence so
far (prompt plus kept output, `request.num_tokens`), less the prefix-cache hit blocks that
running requests hold, must be free - not just those of its first chunk. It is only a gate:
what is allocated is still the chunk's blocks, and later chunks grow as before. Off by default
here (seqsched's behaviour before it); `validate --measured` turns it on for vLLM >= 0.19.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.sim.step import Step
from seqsched.common.errors import UserError
from seqsched.policies.guards import admission_order, check_options, displace
from seqsched.sim.kv import reserve_blocks
from seqsched.sim.sequence import Seq

PREEMPTION_MODES = ("recompute", "restart", "swap")
ADMISSION_MODES = ("greedy", "predicted")


@dataclass
class ContinuousPolicy:
    max_num_seqs: int = 256          # vLLM default max_num_seqs
    max_batched_tokens: int = 8192   # per-iteration token budget (vLLM max_num_batched_tokens)
    chunked_prefill: bool = False
    max_iterations: int = 4096       # upper bound on iterations per event
    preemption: str = "recompute"    # "recompute" (vLLM: keep the output), "restart" or
                                     # "swap" (KV to host memory and back, sim/swap.py)
    admission: str = "greedy"        # "greedy" (vLLM) or "predicted" (reserve by prediction)
    aging: float = 0.0               # tokens/s taken off the rank per second since arrival
    max_wait_s: float = 0.0          # waited this long since arrival: admitted first (0 = off)
    preemptive: bool = False         # better-ranked waiting requests displace running ones
    preempt_until: float | None = None  # TRAIL: displace only before generated >= x * predicted
    repredict_every: int | None = None  # re-predict running requests every N generated tokens
    repredict: str = "conditional"   # how (predictors/reprediction.py): conditional or sharpen
    repredict_s: float = 0.0         # modelled seconds one re-prediction adds to the timeline
    reserve_full_isl: bool = False   # vLLM's scheduler_reserve_full_isl: admit only if the
                                     # whole prompt's blocks are free, not just its chunk's
    async_scheduling: bool = False   # vLLM's async scheduler: admissions and frees lag one
                                     # iteration (the replica applies it: sim/async_lag.py)
    name: str = "fcfs"

    def __post_init__(self) -> None:
        for key in ("max_num_seqs", "max_batched_tokens", "max_iterations"):
            if getattr(self, key) <= 0:
                raise UserError(f"{key.replace('_', '-')} must be > 0, got {getattr(self, key)}")
        check_options(self)
        if self.preemption not in PREEMPTION_MODES:
            raise UserError(f"unknown preemption {self.preemption!r}; use "
                            f"{' or '.join(PREEMPTION_MODES)}")
        if self.admission not in ADMISSION_MODES:
            raise UserError(f"unknown admission {self.admission!r}; use "
                            f"{' or '.join(ADMISSION_MODES)}")

    @property
    def reads_predictions(self) -> bool:
        """fcfs orders by arrival: only predicted admission reads `seq.predicted` (the replica
        runs a prediction step only for a policy that reads it); so does TRAIL's limit."""
        return self.admission == "predicted" or self.preempt_until is not None

    def rank(self, seq: Seq) -> float:
        """The policy's size estimate in tokens (lower runs first); fcfs ranks all alike."""
        return 0.0

    def priority(self, seq: Seq) -> tuple:
        """rank - aging * (t - arrival) ordered at every t by the static rank + aging *
        arrival (see LTRPolicy); ties by arrival, then trace order."""
        return (self.rank(seq) + self.aging * seq.arrival_s, seq.arrival_s, seq.idx)

    def horizon(self, view, rows: list[Seq]) -> int:
        """Iterations the batch may run before a row's priority can change for the worse
        (a policy with dynamic ranks cuts events there so preemption can act)."""
        return self.max_iterations

    def check_prompts(self, prompt_tokens, ids) -> None:
        """Without chunked prefill a prompt must fit one iteration's token budget (vLLM
        rejects such a configuration too)."""
        longest = int(prompt_tokens.argmax())
        if not self.chunked_prefill and prompt_tokens[longest] > self.max_batched_tokens:
            raise UserError(f"request {ids[longest]} has a {prompt_tokens[longest]}-token prompt, "
                            f"above max_batched_tokens={self.max_batched_tokens}; set "
                            "chunked_prefill=true or raise max_batched_tokens")

    def schedule(self, view) -> Step | None:
        kv = view.kv
        bs = kv.block_size
        free = kv.free_blocks
        running = list(view.running)
        n = len(running)
        preempt: list[Seq] = []
        rows: list[Seq] = []
        chunks: list[int] = []
        budget = self.max_batched_tokens
        complete = True                     # every prompt chunk finishes its prompt
        memory_bound = False                # a row was preempted for memory: admit nothing
        if n:
            # 1. this iteration's tokens for every running row: one per decode row; prompt
            #    chunks of rows still prefilling share the rest of the budget in priority order
            ctx = np.fromiter((s.context_tokens for s in running), np.int64, n)
            left = np.fromiter((s.prefill_len - s.prefilled for s in running), np.int64, n)
            held = np.fromiter((s.kv_blocks for s in running), np.int64, n)
            prefilling = left > 0
            chunk = np.zeros(n, dtype=np.int64)
            budget -= int((~prefilling).sum())
            prefill_order = []
            if prefilling.any():
                prefill_order = sorted(np.flatnonzero(prefilling).tolist(),
                                       key=lambda i: self.priority(running[i]))
                for i in prefill_order:
                    c = self._chunk(running[i], budget)
                    chunk[i] = c
                    budget -= c
            runs = ~prefilling | (chunk > 0)
            # 2. KV room for what the step adds (context + chunk + the token it produces);
            #    preempt the lowest-priority rows until the rest fit. A victim's chunk is not
            #    handed on: the remaining rows never need more than was counted for them
            need = np.where(runs, np.maximum((ctx + chunk + bs) // bs - held, 0), 0)
            total = int(need.sum())
            keep = np.ones(n, dtype=bool)
            dropped: dict = {}              # prefix caching: references victims give up
            if total > free:
                order = sorted(range(n), key=lambda i: self.priority(running[i]))
                while order and total > free:
                    i = order.pop()             # lowest priority goes first
                    total -= int(need[i])
                    free += kv.freed_by(running[i], dropped)   # shared blocks stay in use
                    keep[i] = False
                    preempt.append(running[i])
            free -= total
            memory_bound = bool(preempt)
            if self.preemptive and not memory_bound and len(view.waiting):
                for i in displace(self, view, running, keep, need, free, dropped):
                    keep[i] = False
                    free += kv.freed_by(running[i], dropped) + int(need[i])
                    # its share of this iteration's token budget goes back to admission
                    budget += int(chunk[i]) if prefilling[i] else 1
                    preempt.append(running[i])
            # decode rows first (running order), then prompt chunks in priority order
            rows = [s for s, d, k in zip(running, prefilling.tolist(), keep.tolist())
                    if k and not d]
            chunks = [0] * len(rows)
            for i in prefill_order:
                if keep[i] and chunk[i] > 0:
                    rows.append(running[i])
                    chunks.append(int(chunk[i]))
                    complete &= bool(chunk[i] >= left[i])

        # 3. admit waiting requests in priority order (head-of-line: stop at the first misfit)
        blocked = None                      # the request admission stopped at
        slots_held = getattr(view, "held_slots", 0)     # async: finished, not yet freed
        reserved = 0
        if not memory_bound:
            predicted = self.admission == "predicted"
            # blocks the running rows' predicted remaining output still needs after this step
            reserved = (sum(self._reserve(s, h, bs) for s, h in
                            zip(running, (held + need).tolist()))
                        if predicted and n else 0)
            for s in admission_order(self, view):
                blocked = s
                if len(rows) + slots_held >= self.max_num_seqs or budget <= 0:
                    break
                fit = self._fits(s, kv, budget, free, reserved, bool(preempt), bool(n or rows))
                if fit is None:
                    break
                c, need_s, extra, hit = fit
                reserved += extra
                free -= need_s
                rows.append(s)
                chunks.append(c)
                budget -= max(c, 1)         # a swapped-in row past its prefill decodes
                complete &= s.prefilled + hit + c >= s.prefill_len
                blocked = None
        if not rows:
            return None

        # 4. the batch may run unchanged until a completion or an arrival; the engine also
        #    stops it where the KV blocks run out (the next step then preempts). vLLM plans
        #    every iteration: where this iteration's prompt chunks leave too little budget for
        #    a prompt that the next iteration's (every row decodes one token) has room for,
        #    the step is one iteration and the next plan admits it. So is a step that preempts
        #    for memory where a victim or the waiting head would fit the blocks left: it admits
        #    nothing, but vLLM's next iteration tries its waiting queue (victims first) again
        iterations = self.horizon(view, rows) if complete else 1
        if memory_bound:
            if iterations > 1 and self._readmits(view, preempt, self.max_batched_tokens
                                                 - len(rows), free):
                iterations = 1
        elif iterations > 1 and budget < self.max_batched_tokens - len(rows):
            budget = self.max_batched_tokens - len(rows)
            idle = [running[i] for i in prefill_order if keep[i] and not chunk[i]] if n else []
            if any(self._chunk(s, budget) for s in idle) or (
                    blocked is not None and len(rows) + slots_held < self.max_num_seqs
                    and self._fits(blocked, kv, budget, free, reserved, bool(preempt),
                                   True) is not None):
                iterations = 1
        return Step(rows, chunks, max_iterations=iterations, preempt=preempt)

    def _readmits(self, view, victims: list[Seq], budget: int, free: int) -> bool:
        """After a preemption for memory (vLLM 0.19's `Scheduler.schedule` admits nothing in
        that iteration: `if not preempted_reqs`, vllm/v1/core/sched/scheduler.py) could the
        next iteration, with `budget` tokens and `free` blocks at most, admit a victim (as it
        will wait: prompt + kept output as one prefill, its prompt after a restart, or its KV
        back from host memory after a swap) or the waiting head? Any of them, whichever vLLM
        tries first (the victims): a cut where vLLM then admits nothing costs an event, not a
        different answer. A prefix cache (hits need fewer blocks than counted here) cuts."""
        kv = view.kv
        if budget <= 0:
            return False
        if kv.prefix is not None:
            return True
        resumes = getattr(view, "resumes", True) and self.preemption != "restart"
        for s in victims:
            tokens = s.prompt_tokens + (s.generated if resumes else 0)
            if self.reserve_full_isl and kv.blocks_for(tokens) > free:
                continue                    # vLLM's full-sequence gate
            c = self._split(tokens, budget)
            if c and kv.blocks_for(c + 1) <= free:
                return True
            if resumes and self.preemption == "swap":  # or a full host: recomputed (above)
                left = s.prefill_len - s.prefilled
                c = self._split(left, budget)
                if (c or left <= 0) and kv.blocks_for(s.context_tokens + c + 1) <= free:
                    return True
        head = next(iter(admission_order(self, view)), None)
        return head is not None and self._fits(head, kv, budget, free, 0, True, True) is not None

    def _fits(self, s: Seq, kv, budget: int, free: int, reserved: int, displacing: bool,
              others: bool) -> tuple[int, int, int, int] | None:
        """(prompt chunk, blocks, predicted-admission reserve, prefix-cache hit tokens) of
        waiting request `s` if it can be admitted with `budget` tokens and `free` blocks left, else None."""
        # prefix caching: the cached part of its prompt is skipped, and blocks other
        # requests hold cost nothing
        hit, shared = kv.prefix_hit(s)
        if displacing:      # a displaced victim may free blocks it shared: count them
            shared = 0
        c = self._chunk(s, budget, hit)
        if c == 0 and not s.prefill_done:
            return None
        need_s = kv.blocks_for(s.context_tokens + hit + c + 1) - shared
        if need_s > free:
            return None
        # vLLM's full-sequence gate: its prompt + kept output (request.num_tokens)
        if self.reserve_full_isl and kv.blocks_for(s.prompt_tokens + s.generated) - shared > free:
            return None
        extra = 0
        if self.admission == "predicted":
            extra = self._reserve(s, need_s, kv.block_size)
            # an otherwise empty replica admits greedily (a prediction above the whole
            # memory must not wait forever)
            if need_s + extra > free - reserved and others:
                return None
        return c, need_s, extra, hit

    @staticmethod
    def _reserve(s: Seq, blocks: int, block_size: int) -> int:
        """Blocks `s`, holding `blocks`, will still need for its predicted output."""
        return reserve_blocks(s.generated, s.predicted, s.prompt_tokens, blocks, block_size)

    def _chunk(self, s: Seq, budget: int, cached: int = 0) -> int:
        """Tokens of its prefill `s` processes next (0 = decode row, or no budget for it);
        `cached` tokens of it come from the prefix cache."""
        return self._split(s.prefill_len - s.prefilled - cached, budget)

    def _split(self, left: int, budget: int) -> int:
        """Tokens of a prefill with `left` to go that fit `budget` (0: none)."""
        if left <= 0 or budget <= 0:
            return 0
        if left <= budget:
            return left
        # without chunked prefill only a resumed request's recompute (its prompt plus the
        # output kept) may exceed a whole iteration's budget; it is split rather than stuck
        if self.chunked_prefill or left > self.max_batched_tokens:
            return budget
        return 0


@dataclass
class SJFPolicy(ContinuousPolicy):
    name: str = "sjf"
    reads_predictions = True            # orders by prediction

    def rank(self, seq: Seq) -> float:
        return seq.predicted


@dataclass
class SRPTPolicy(ContinuousPolicy):
    """Predicted shortest-remaining first. The key of a waiting request is fixed while it
    waits (its output does not grow there), as the replica's sorted queue requires."""

    name: str = "srpt"
    reads_predictions = True            # orders by prediction

    def rank(self, seq: Seq) -> float:
        return max(seq.predicted - seq.generated, 0)


@dataclass
class LTRPolicy(ContinuousPolicy):
    """Rank by predicted length (Fu et al. 2024, "Efficient LLM Scheduling by Learning to
    Rank") with starvation prevention by linear aging: a request that has waited w seconds
    longer than another is treated as `aging` * w tokens shorter.

    At time t a request's aged score is predicted - aging * (t - arrival_s)
    = (predicted + aging * arrival_s) - aging * t. The last term is the same for every request
    at any instant, so ordering by the static key predicted + aging * arrival_s is exactly
    ordering by the aged score at every t: the key never changes while a request waits (as
    the replica's sorted queue requires), yet an old long request overtakes a newer short one
    precisely when its extra wait outweighs the length difference. `aging` is in tokens per
    second; 0 is plain SJF. (The paper's own guard promotes a request after it has been
    passed over a number of times; linear aging is the static-key form of the same idea.)
    """

    aging: float = 10.0
    name: str = "ltr"
    reads_predictions = True            # orders by prediction

    def rank(self, seq: Seq) -> float:
        return seq.predicted
