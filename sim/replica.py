"""One serving replica: waiting/running sets, KV memory, a Policy and an Executor.

The replica is the only place that mutates request state. Each loop turn asks the policy for a
Step, lets the executor time it, advances the SimPy clock once for the whole Step (k
iterations in one event), and then applies what happened to every row.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import simpy
from sortedcontainers import SortedKeyList

from seqsched.sim.async_lag import AsyncLag
from seqsched.sim.reprediction import repredict
from seqsched.sim.waitqueue import wait_queue
from seqsched.sim.step import Step
from seqsched.common.errors import UserError
from seqsched.sim.kv import KVCache, KVOverflow
from seqsched.sim.prediction import PredictionQueue, PredictorCost
from seqsched.sim.sequence import Seq, Status

if TYPE_CHECKING:
    from seqsched.sim.executor import Executor
    from seqsched.sim.engine import Engine
    from seqsched.sim.swap import HostSwap
    from seqsched.sim.reprediction import Repredictor


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


class Replica:
    def __init__(self, engine: "Engine", index: int, policy, executor: "Executor",
                 kv: KVCache, prediction: PredictorCost | None,
                 swap: HostSwap | None = None, repredictor: Repredictor | None = None) -> None:
        self.engine = engine
        self.env: simpy.Environment = engine.env
        self.index = index
        self.policy = policy
        self.executor = executor
        self.kv = kv
        self.waiting = wait_queue(policy)
        self.repredictor = repredictor
        self.running: list[Seq] = []
        # no prediction step for a policy that never reads predictions (vanilla, greedy fcfs)
        reads = getattr(policy, "reads_predictions", True)
        self.predictions = (PredictionQueue(prediction) if prediction is not None and reads
                            and not prediction.is_free else None)
        self._wake: simpy.Event | None = None
        self.busy_until = 0.0           # end of the step it runs (disaggregation's bound)
        self._predictor_wake: simpy.Event | None = None
        if self.predictions is not None and self.predictions.beside:
            self.env.process(self._predict_beside())
        self._admitted = 0
        self.group = None               # a DP lockstep group (sim/lockstep.py), or None
        # recompute preemption keeps a victim's output and prefills it again with the prompt;
        # swap preemption keeps its KV in host memory (sim/swap.py); an executor that cannot
        # resume either way (`resumes_preempted`) restarts it instead
        mode = getattr(policy, "preemption", "restart")
        wants = mode in ("recompute", "swap")
        self._resume = wants and bool(getattr(executor, "resumes_preempted", False))
        self._warn_restart = wants and not self._resume
        self.swap = swap if mode == "swap" and self._resume else None
        # vLLM's async scheduling: admissions and frees one iteration late (sim/async_lag.py)
        self.lag = AsyncLag(self.env) if getattr(policy, "async_scheduling", False) else None
        self.process = self.env.process(self._loop())

    # -- arrivals -----------------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running) + self._predicting

    @property
    def _predicting(self) -> int:
        q = self.predictions
        return len(q.pending) + q.in_flight if q is not None else 0

    def add(self, seq: Seq) -> None:
        seq.replica = self.index
        if self.predictions is not None:
            self.predictions.pending.append(seq)
            w = self._predictor_wake
            if w is not None and not w.triggered:
                w.succeed()
        else:
            self.waiting.add(seq)
            if self.lag is not None:
                self.lag.joined(seq)

    def wake(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    # -- main loop ----------------------------------------------------------------------
    def _loop(self):
        while True:
            q = self.predictions
            if q is not None and not q.beside and q.pending:
                yield from self._predict(q.take())
                continue
            busy = self.group.busy() if self.group is not None else None
            if busy is not None:        # a lockstep round is on: start at its end
                yield busy
                continue
            done = self.engine.inputs_done(self.index)
            plan = lambda held=0: self.policy.schedule(ReplicaView(   # noqa: E731
                self.env.now, self.index, self.waiting, tuple(self.running), self.kv, done, held,
                self._resume))
            step = plan() if self.lag is None else self.lag.plan(self, plan)
            if step is None:
                if done and self.outstanding == 0:
                    return
                if done and not self._predicting:
                    raise PolicyError(
                        f"policy {self.policy.name} scheduled nothing with {len(self.waiting)} "
                        f"waiting and {len(self.running)} running requests and no arrivals left")
                self._wake = self.env.event()
                yield self._wake
                self._wake = None
                continue
            yield from self._execute(step)

    def _predict(self, seqs: list[Seq]):
        """A prediction batch on the served GPU: the replica's timeline waits for it. A side
        model is timed by its cost model, an LLM query by the executor; an executor that runs
        a predictor itself (live, `executor.predictor`) measures either."""
        cost = self.predictions.cost
        start = self.env.now
        if cost.side_model and getattr(self.executor, "predictor", None) is None:
            duration = cost.batch_seconds([s.idx for s in seqs])
            iterations = 1
        else:
            tokens = cost.prompt_tokens if cost.prompt_tokens is not None else cost.encoder_tokens
            step = Step(seqs, [int(tokens[s.idx]) if tokens is not None else s.prompt_tokens
                               for s in seqs], padded=True, kind="predict")
            iterations = max(cost.decode_tokens, 1)
            result = self.executor.run(step, iterations, None)
            duration = result.duration_s
        yield self.env.timeout(duration)
        self.engine.log_step(self.index, start, self.env.now, "predict", len(seqs), iterations,
                             0, 0, self.kv.used_tokens)
        for s in seqs:
            self.waiting.add(s)

    def _predict_beside(self):
        """on="cpu": a predictor process of its own on the host, batching whatever is pending
        when it is free; each batch joins the waiting queue when done (kind "predict-cpu")."""
        q = self.predictions
        while True:
            if not q.pending:
                self._predictor_wake = self.env.event()
                yield self._predictor_wake
                self._predictor_wake = None
                continue
            seqs = q.take()
            q.in_flight = len(seqs)
            start = self.env.now
            duration = q.cost.batch_seconds([s.idx for s in seqs])
            q.ready_at = start + duration
            yield self.env.timeout(duration)
            self.engine.log_step(self.index, start, self.env.now, "predict-cpu", len(seqs), 1,
                                 0, 0, self.kv.used_tokens)
            for s in seqs:
                self.waiting.add(s)
            q.in_flight = 0
            self.wake()

    def _execute(self, step: Step):
        if not step.seqs:
            raise PolicyError(f"policy {self.policy.name} returned a step with no rows")
        start = self.env.now
        for s in step.preempt:
            self._preempt(s)
        for s in step.seqs:
            if s.status is not Status.RUNNING:
                self._start_row(s, start)
        if self.swap is not None and self.swap.pending_rows:   # the copies block the step
            seconds, rows = self.swap.drain()
            yield self.env.timeout(seconds)
            self.engine.log_step(self.index, start, self.env.now, "swap", rows, 0, 0, 0,
                                 self.kv.used_tokens)
            start = self.env.now
        if step.padded:
            if self.group is not None:
                raise UserError("--dp-lockstep models continuous batching only; use a "
                                "continuous policy (fcfs, sjf, ...) or drop --dp-lockstep")
            yield from self._run_static(step, start)
        else:
            yield from self._run_continuous(step, start)

    def _start_row(self, s: Seq, now: float) -> None:
        if s.status is not Status.WAITING or s.replica != self.index:
            raise PolicyError(f"policy {self.policy.name} scheduled request {s.id} "
                              f"that is {s.status.value} (replica {s.replica})")
        self.waiting.remove(s)
        s.status = Status.RUNNING
        s.attempts += 1
        s.failed = False
        s.admitted_order = self._admitted
        self._admitted += 1
        if math.isnan(s.first_scheduled_s):
            s.first_scheduled_s = now
        if self.kv.prefix is not None and not s.prefilled and not s.swapped:
            self.kv.take_cached_prefix(s)           # its prefill skips the cached prefix
        if s.swapped:                               # its KV comes back from host memory
            self.swap.swap_in(s)
        self.running.append(s)

    def _preempt(self, s: Seq) -> None:
        if s.status is not Status.RUNNING:
            raise PolicyError(f"policy {self.policy.name} preempted request {s.id} "
                              f"that is not running")
        self.running.remove(s)
        if self.swap is not None and self.swap.swap_out(s, self.kv):
            self.executor.release(s)
            s.preemptions += 1
            s.status = Status.WAITING
            self.waiting.add(s)
            return
        s.recomputed_tokens += s.context_tokens
        self.kv.free(s)
        self.executor.release(s)
        if self._resume:
            s.recomputed = s.generated          # prompt + kept output: the next prefill
        else:
            if self._warn_restart:
                self._warn_restart = False
                warnings.warn(f"executor {getattr(self.executor, 'name', '?')} cannot resume a "
                              "preempted request from its output; preempted requests restart "
                              "from scratch (policy parameter preemption=restart simulates "
                              "the same)", RuntimeWarning, stacklevel=2)
            s.wasted_tokens += s.generated
            s.slot_tokens_all += s.generated
            s.generated = s.recomputed = 0
        s.prefilled = 0
        s.preemptions += 1
        s.status = Status.WAITING
        self.waiting.add(s)

    # -- static (padded) batches --------------------------------------------------------
    def _run_static(self, step: Step, start: float):
        cap = step.cap if step.cap is not None else self.engine.max_new_tokens
        # a live model in natural-length mode decides the lengths: run up to the cap and let
        # it stop when every row has emitted EOS
        natural = getattr(self.executor, "length_mode", "forced") == "natural"
        longest = max(s.target_tokens for s in step.seqs)
        iterations = cap if natural else max(min(cap, longest), 1)
        width = max(s.prompt_tokens for s in step.seqs)
        try:
            self.kv.reserve_static(len(step.seqs) * (width + iterations))
        except KVOverflow as e:       # the user's batch size does not fit this GPU
            raise UserError(f"policy {self.policy.name}: {e}") from None
        result = self.executor.run(step, iterations, None)
        yield self.env.timeout(result.duration_s)
        n = result.iterations
        end = self.env.now
        eos_at = result.eos_at or {}
        for s in step.seqs:
            if s.id in eos_at:
                s.output_tokens = s.target_tokens = eos_at[s.id] + 1
            elif natural:            # no EOS before the cap: longer than this batch ran
                s.output_tokens = s.target_tokens = max(s.target_tokens, n + 1)
            s.prefilled = s.prompt_tokens
            if math.isnan(s.first_token_s):
                s.first_token_s = start + result.first_iteration_s
            s.slot_tokens_all += n
            if s.target_tokens <= n:
                s.generated = s.target_tokens
                self._finish(s, end, slot_tokens=n)
            elif step.fcr:
                s.wasted_tokens += n
                s.generated = s.prefilled = 0
                s.failed = True
                s.status = Status.WAITING
                self.running.remove(s)
                self.waiting.add(s)
            else:
                s.generated = n
                s.truncated = True
                self._finish(s, end, slot_tokens=n)
            self.executor.release(s)
        self.engine.log_step(self.index, start, end, step.kind, len(step.seqs), n,
                             len(step.seqs) * width, len(step.seqs) * (n - 1),
                             self.kv.used_tokens)
        self.kv.static_tokens = 0

    # -- continuous batches -------------------------------------------------------------
    def _run_continuous(self, step: Step, start: float):
        seqs = step.seqs
        chunks = np.asarray(step.prefill_tokens, dtype=np.int64)
        if len(chunks) != len(seqs):
            raise PolicyError(f"policy {self.policy.name}: {len(seqs)} rows but "
                              f"{len(chunks)} prefill entries")
        prompt = np.fromiter((s.prefill_len for s in seqs), np.int64, len(seqs))
        prefilled = np.fromiter((s.prefilled for s in seqs), np.int64, len(seqs))
        context = np.fromiter((s.context_tokens for s in seqs), np.int64, len(seqs))
        generated = np.fromiter((s.generated for s in seqs), np.int64, len(seqs))
        target = np.fromiter((s.target_tokens for s in seqs), np.int64, len(seqs))
        if np.any(prefilled + chunks > prompt) or np.any((chunks == 0) & (prefilled < prompt)):
            raise PolicyError(f"policy {self.policy.name}: a row's prefill chunk does not match "
                              "its remaining prompt")
        completes = prefilled + chunks >= prompt
        if completes.all():
            # iterations until the first row finishes (no completion inside the event)
            limit = min(step.max_iterations, int((target - generated).min()))
            if self.repredictor is not None:    # stop where a row is due for re-prediction
                limit = min(limit, self.repredictor.horizon(generated))
        else:
            limit = 1
        if self.group is not None or (self.lag is not None and self.lag.one_iteration):
            limit = 1                       # lockstep: the group's max is per iteration
        held = np.fromiter((s.kv_blocks for s in seqs), np.int64, len(seqs))
        k = self.kv.max_iterations(context + chunks, held, self.kv.free_blocks, max(limit, 1))
        if k == 0:
            raise PolicyError(f"policy {self.policy.name} scheduled more KV than is free "
                              f"({self.kv.free_blocks} blocks)")
        stop_after = self.engine.time_to_next_arrival(self.index)
        if self.predictions is not None:    # or a host-CPU prediction batch joining sooner
            stop_after = self.predictions.until_ready(self.env.now, stop_after)
        result = self.executor.run(step, k, stop_after)
        self.busy_until = self.env.now + result.duration_s
        n = result.iterations
        # allocate KV for what actually ran
        tokens_after = context + chunks + np.where(completes, n, 0)
        grow = np.maximum(self.kv.blocks_for(tokens_after) - held, 0)
        if int(grow.sum()) > self.kv.free_blocks:
            raise PolicyError(f"policy {self.policy.name} scheduled more KV than is free")
        self.kv.allocate(int(grow.sum()))
        for s, g in zip(seqs, grow.tolist()):
            s.kv_blocks += g
        kv_used = self.kv.used_tokens     # held through the step's last iteration (logged
                                          # before finished rows free their blocks)
        if self.group is None:
            yield self.env.timeout(result.duration_s)
        else:                               # ends with the group's slowest member
            yield from self.group.run(self, step, result.duration_s)
        end = self.env.now
        first = result.first_iteration_s if self.group is None else end - start
        eos_at = result.eos_at or {}
        decode_tokens = 0
        for s, c, done_prefill in zip(seqs, chunks.tolist(), completes.tolist()):
            s.prefilled += c
            if not done_prefill:
                self.kv.computed(s, s.context_tokens)
                continue
            produced = n
            if s.id in eos_at:           # live natural-length mode: the model decided
                produced = min(produced, eos_at[s.id] + 1)
                s.output_tokens = s.target_tokens = s.generated + produced
            if math.isnan(s.first_token_s) and s.generated == 0:
                s.first_token_s = start + first
            decode_tokens += produced - (1 if c else 0)
            s.generated += produced
            self.kv.computed(s, s.context_tokens - 1)   # the newest token is not in the KV
            if s.generated >= s.target_tokens:
                self.running.remove(s)
                if self.lag is not None:    # its slot and KV are freed after the next plan
                    self.lag.held.append(s)
                else:
                    self.kv.free(s)
                    self.executor.release(s)
                s.slot_tokens_all += s.generated
                self._finish(s, end, slot_tokens=s.generated)
        self.engine.log_step(self.index, start, end, step.kind, len(seqs), n, int(chunks.sum()),
                             decode_tokens, kv_used)
        if self.lag is not None:
            self.lag.stepped(start, end, result)
        if self.repredictor is not None:
            yield from repredict(self, [s for s in seqs if s.status is Status.RUNNING
                                        and self.repredictor.due(s.generated)])

    def _finish(self, s: Seq, now: float, slot_tokens: int) -> None:
        if s in self.running:
            self.running.remove(s)
        s.status = Status.FINISHED
        s.block_hashes = None
        s.finish_s = now
        s.slot_tokens = slot_tokens
        self.engine.finished(s)
