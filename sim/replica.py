"""One serving replica: waiting/running sets, KV memory, a Policy and an Executor.

The replica is the SimPy process that drives a Step at a time: each loop turn asks the policy
for a Step, lets the executor time it, advances the clock once for the whole Step (k
iterations in one event), and then applies what happened to every row. What it drives lives
beside it: the row bookkeeping (`rows.py`, the only code that changes a request's state), the
two kinds of batch (`static_batch.py`, `continuous_batch.py`), the prediction steps
(`prediction_steps.py`) and what a policy sees (`view.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from seqsched.common.errors import UserError
from seqsched.sim.async_lag import AsyncLag
from seqsched.sim.continuous_batch import run_continuous
from seqsched.sim.kv import KVCache
from seqsched.sim.prediction import PredictionQueue, PredictorCost
from seqsched.sim.prediction_steps import predict, predict_beside
from seqsched.sim.rows import admit
from seqsched.sim.sequence import Seq
from seqsched.sim.static_batch import run_static
from seqsched.sim.step import Step
from seqsched.sim.view import PolicyError, ReplicaView
from seqsched.sim.waitqueue import wait_queue

if TYPE_CHECKING:
    from seqsched.sim.executor import Executor
    from seqsched.sim.engine import Engine
    from seqsched.sim.swap import HostSwap
    from seqsched.sim.reprediction import Repredictor

__all__ = ["PolicyError", "Replica", "ReplicaView"]    # the view's names, importable here too


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
        self.predictor_wake: simpy.Event | None = None
        if self.predictions is not None and self.predictions.beside:
            self.env.process(predict_beside(self))
        self.admitted = 0               # rows started so far (each row's admitted_order)
        self.group = None               # a DP lockstep group (sim/lockstep.py), or None
        # recompute preemption keeps a victim's output and prefills it again with the prompt;
        # swap preemption keeps its KV in host memory (sim/swap.py); an executor that cannot
        # resume either way (`resumes_preempted`) restarts it instead
        mode = getattr(policy, "preemption", "restart")
        wants = mode in ("recompute", "swap")
        self.resumes = wants and bool(getattr(executor, "resumes_preempted", False))
        self.warn_restart = wants and not self.resumes
        self.swap = swap if mode == "swap" and self.resumes else None
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
            w = self.predictor_wake
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
                yield from predict(self, q.take())
                continue
            busy = self.group.busy() if self.group is not None else None
            if busy is not None:        # a lockstep round is on: start at its end
                yield busy
                continue
            done = self.engine.inputs_done(self.index)
            plan = lambda held=0: self.policy.schedule(ReplicaView(   # noqa: E731
                self.env.now, self.index, self.waiting, tuple(self.running), self.kv, done, held,
                self.resumes))
            step = plan() if self.lag is None else self.lag.plan(self, plan)
            if step is None:
                if (yield from self._idle(done)):
                    return
                continue
            yield from self._execute(step)

    def _idle(self, done: bool):
        """The policy planned nothing: wait for an arrival or a prediction (a SimPy
        generator); True when nothing is left to come, PolicyError when the policy
        stalls on requests it holds."""
        if done and self.outstanding == 0:
            return True
        if done and not self._predicting:
            raise PolicyError(
                f"policy {self.policy.name} scheduled nothing with {len(self.waiting)} "
                f"waiting and {len(self.running)} running requests and no arrivals left")
        self._wake = self.env.event()
        yield self._wake
        self._wake = None
        return False

    def _execute(self, step: Step):
        if not step.seqs:
            raise PolicyError(f"policy {self.policy.name} returned a step with no rows")
        start = self.env.now
        admit(self, step, start)
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
            yield from run_static(self, step, start)
        else:
            yield from run_continuous(self, step, start)
