"""One serving replica of the array engine: the running set as structure-of-arrays
(`RunningSet`), the waiting queue as a heap keyed by the policy's own `priority`, one SimPy
timeout per step - the same steps, with the same times and token counts, as
`seqsched.sim.replica.Replica` under a `ContinuousPolicy` and the cost-model executor.

Request state lives in the engine's `RequestTable`; it is read when a request is admitted and
written back when it is preempted or finishes. The step itself is advanced by
`sim/fast/advance.py`.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import simpy

from seqsched.sim.fast.advance import run_complete
from seqsched.sim.fast.step import run_step
from seqsched.sim.fast.arrivals import wake_at
from seqsched.sim.fast.lag import ArrayLag
from seqsched.sim.fast.running import RunningSet
from seqsched.sim.fast.schedule import decode_plan, schedule
from seqsched.sim.kv import KVCache
from seqsched.sim.view import PolicyError


class _Key:
    """The fields a policy's `priority(seq)` reads, for computing a key without a `Seq`."""

    __slots__ = ("idx", "arrival_s", "predicted", "generated")


class ArrayReplica:
    def __init__(self, engine, index: int, policy, cost, kv: KVCache, decode_times=None,
                 order=None, leading=None) -> None:
        self.engine = engine
        self.env: simpy.Environment = engine.env
        self.table = engine.table
        self.index = index
        self.policy = policy
        self.cost = cost
        # optional exact scalar timing of decode iterations (backends/roofline_steps.py)
        self.decode_times = decode_times
        # the cost model wants the decode rows' longest and shortest context (its skew term)
        self.wants_spread = bool(getattr(cost, "wants_decode_spread", False))
        # optional vectorised priority order of running rows (policies/array_keys.py)
        self.order = order
        # optional first element of every request's priority key with nothing generated, in
        # trace order (policies/array_keys.py): a new request's key without a policy call
        self.leading = leading
        self.kv = kv
        self.max_tokens = policy.max_batched_tokens
        self.chunked = policy.chunked_prefill
        self.max_num_seqs = policy.max_num_seqs
        self.max_iterations = policy.max_iterations
        self.decode_plan = decode_plan(policy.max_iterations)
        self.predicted_admission = policy.admission == "predicted"
        self.reserve_full_isl = policy.reserve_full_isl
        self.resume = policy.preemption == "recompute"   # the cost model resumes preempted rows
        # vLLM's async scheduling: admissions and frees one iteration late (sim/fast/lag.py)
        self.lag = ArrayLag() if policy.async_scheduling else None
        self.held_slots = 0               # async: finished rows still holding a slot
        self.busy_until = 0.0             # end of the step it runs (the closed-loop client)
        self.finishing = 0                # finished rows whose slot is not yet released
        self.waiting: list[tuple] = []
        self._counter = itertools.count()
        self._key = _Key()
        self.run = RunningSet(kv.block_size)
        self._wake: simpy.Event | None = None
        self.process = self.env.process(self._loop())

    # -- keys and arrivals ------------------------------------------------------------
    def _priority(self, i: int, generated: int) -> tuple:
        k = self._key
        k.idx, k.arrival_s = i, self.engine.arrival_list[i]
        k.predicted, k.generated = int(self.table.predicted[i]), generated
        return self.policy.priority(k)

    def priority_order(self) -> list[int]:
        """Running positions by the policy's priority, lowest key first."""
        run = self.run
        if self.order is not None:
            gen = self.table.target[run.idx] - run.rem
            return self.order(self.table, run.idx, gen).tolist()
        return sorted(range(run.n), key=self.running_key)

    def running_key(self, pos: int) -> tuple:
        i, _, _, rem = self.run.get(pos)
        return self._priority(i, self.table.target_l[i] - rem)

    def _push(self, i: int, generated: int = 0) -> None:
        heapq.heappush(self.waiting, (self._priority(i, generated), next(self._counter), i))

    @property
    def outstanding(self) -> int:
        n = len(self.waiting) + self.run.n + self.finishing
        return n if self.lag is None else n + len(self.lag.recent)

    def add(self, i: int, at: float | None = None) -> None:
        """A new request (nothing generated yet) joins the waiting queue (with async
        scheduling, at the next plan; `at`: when it joined, if not now)."""
        if self.index:
            self.table.replica[i] = self.index
        if self.lag is not None:
            self.lag.recent.append((i, self.env.now if at is None else at))
            return
        self.enqueue(i)

    def enqueue(self, i: int) -> None:
        """Put new request `i` in the waiting heap."""
        if self.leading is None:
            self._push(i)
        else:                             # policy.priority's tuple, from its columns
            key = (self.leading[i], self.engine.arrival_list[i], i)
            heapq.heappush(self.waiting, (key, next(self._counter), i))

    def wake(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    # -- main loop ----------------------------------------------------------------------
    def _loop(self):
        engine = self.engine
        pull = engine.pull_mode
        mark = -1                         # at time 0 the arrival process has not run yet
        while True:
            if pull:
                engine.pull(self.env.now, mark)
                mark = engine.fire
            plan = schedule(self) if self.lag is None else self.lag.plan(self, schedule)
            if plan is None:
                if self.engine.arrivals_done and self.outstanding == 0:
                    return
                if self.engine.arrivals_done:
                    raise PolicyError(
                        f"policy {self.policy.name} scheduled nothing with {len(self.waiting)} "
                        f"waiting and {self.run.n} running requests and no arrivals left")
                if pull:                  # idle until the arrival process's next step
                    yield wake_at(self.env, engine.fire_h[mark])
                    continue
                self._wake = self.env.event()
                yield self._wake
                self._wake = None
                continue
            if plan.complete and not (plan.preempt or plan.prefill or plan.idle):
                # every running row decodes, every admitted prompt completes: the common step
                yield from run_complete(self, self.env.now, plan.admitted,
                                        plan.admitted_chunks, plan.max_iterations)
            else:
                yield from self._execute(plan)

    def _execute(self, plan):
        start = self.env.now
        prefill, idle = plan.prefill, plan.idle
        run = self.run
        if plan.preempt:
            self._preempt(plan.preempt)
            moved = np.cumsum(plan.keep) - 1
            prefill, idle = moved[prefill].tolist(), moved[idle].tolist()
            run.compact(plan.keep)
        if not prefill and not idle and plan.complete:
            # every running row decodes and every admitted prompt completes: the common step
            yield from run_complete(self, start, plan.admitted, plan.admitted_chunks,
                                    plan.max_iterations)
            return
        chunks = plan.prefill_chunks
        if plan.admitted:
            prefill = prefill + self._admit(plan.admitted, start)
            chunks = chunks + plan.admitted_chunks
        yield from run_step(self, start, prefill, chunks, idle, plan.max_iterations)

    # -- edges: admission, preemption, completion ---------------------------------------
    def _admit(self, admitted: list[int], now: float) -> list[int]:
        """Start the admitted requests; returns their running positions."""
        t = self.table
        out = []
        for i in admitted:
            t.attempts[i] += 1
            if t.first_scheduled_s[i] != t.first_scheduled_s[i]:      # NaN: first start
                t.first_scheduled_s[i] = now
            out.append(self.run.append(i, 0, t.prompt_l[i] + t.recomputed[i],
                                       t.target_l[i] - t.generated[i]))
        return out

    def admit_whole(self, admitted: list[int], chunks: list[int], now: float) -> int:
        """Start the admitted requests with their whole prompts (`chunks`) in the KV cache
        after this step's first iteration; returns the blocks those prompts take."""
        t, run, bs = self.table, self.run, self.kv.block_size
        blocks = 0
        for i, c in zip(admitted, chunks):
            t.attempts[i] += 1
            if t.first_scheduled_s[i] != t.first_scheduled_s[i]:      # NaN: first start
                t.first_scheduled_s[i] = now
            run.append(i, c, 0, t.target_l[i] - t.generated[i])
            blocks += -(-c // bs)
        return blocks

    def _preempt(self, positions: list[int]) -> None:
        t, run = self.table, self.run
        for pos in positions:
            i, ctx, _, rem = run.get(pos)
            gen = t.target_l[i] - rem
            t.recomputed_tokens[i] += ctx
            self.kv.used_blocks -= -(-ctx // self.kv.block_size)
            if self.resume:
                t.generated[i] = t.recomputed[i] = gen
            else:
                t.wasted[i] += gen
                t.slot_tokens_all[i] += gen
                t.generated[i] = t.recomputed[i] = gen = 0
            t.preemptions[i] += 1
            self._push(i, gen)

    def finish_done(self, end: float) -> None:
        """Rows that generated their last token leave: records written, KV freed."""
        t, run, bs = self.table, self.run, self.kv.block_size
        positions = run.finished()
        freed = 0
        for p in positions:
            i, c, _, _ = run.get(p)
            gen = t.target_l[i]
            freed += -(-c // bs)
            t.generated[i] = gen
            t.slot_tokens_all[i] += gen
            t.slot_tokens[i] = gen
            t.finish_s[i] = end
        if self.lag is None:
            self.kv.used_blocks -= freed
        else:                             # slots and blocks held until the next plan
            self.lag.held_rows += len(positions)
            self.lag.held_blocks += freed
        run.remove(positions)
        self.engine.finished(len(positions), self)
