"""A pipeline-parallel replica: vLLM's engine core with a batch queue of PP micro-batches.

What vLLM 0.19.0 does (its PyPI wheel, Apache-2.0) without async scheduling: the executor
allows `max_concurrent_batches` = pipeline_parallel_size batches in flight
(vllm/v1/executor/multiproc_executor.py:469, ray_executor.py:109), and
`EngineCore.step_with_batch_queue` (vllm/v1/engine/core.py:421) schedules and submits a new
batch while the queue has room and the scheduler finds work, else blocks on the OLDEST batch,
reads its output and only then schedules again (arrivals are read between steps, so one that
comes while the engine blocks waits for that output). The scheduler counts scheduled tokens
as computed at once (`_update_after_schedule`, vllm/v1/core/sched/scheduler.py:985: "allowing
us to schedule the prefill request again immediately"), so a prompt's next chunk goes into the
next micro-batch while the previous chunk is still in flight; a decode's next token only exists
after the batch's output is read, so a request whose batch produces a token (a decode or its
last prompt chunk) is in no other batch until that output is read; it keeps its place in the
running list (max_num_seqs) meanwhile. Each
stage's GPU runs the batches in submission order; a batch moves to the next stage when the
previous stage's forward pass ends and the activations have crossed the link (non-blocking
`isend`, vllm/v1/worker/gpu_worker.py:825: the sending stage goes on at once).

Here: each micro-batch is one scheduler step (one iteration) planned from the rows not waiting
for a token (`ReplicaView.running`; those fill `held_slots`); a row's prefilled count moves on
when its chunk is scheduled, so its next chunk can follow at once; its stage times come from
the run's cost model split over the stages (`timing.stage_times`, backends/pipeline.py) and
each stage starts it when the stage is free and the batch has arrived; the micro-batch's tokens,
finishes and KV frees apply at its end (the last stage's). KV blocks are taken when it is
scheduled. A row preempted while a chunk of it is in flight ignores that chunk's output (as
vLLM's `update_from_output` skips requests no longer running). Not modelled: the TP all-gather
of the received activations.
The step log has one row per micro-batch from the end of the previous row (or its stage-0
start) to its end, so rows do not overlap and their sum is the time with a batch in flight.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from seqsched.sim.continuous_batch import emit_tokens, grow_kv, prefill_chunks
from seqsched.sim.replica import Replica
from seqsched.sim.rows import admit
from seqsched.sim.sequence import Status
from seqsched.sim.step import Step
from seqsched.sim.view import PolicyError, ReplicaView


@dataclass
class MicroBatch:
    step: Step
    chunks: list
    completes: list
    attempts: list          # each row's attempt when scheduled (a preempted row's is stale)
    upto: list              # each row's context after its chunk (the prefix cache's mark)
    start: float            # its first stage began
    end: float              # its last stage ended (its output is read)
    kv_used: int


class PipelineReplica(Replica):
    """One replica of PP stages (`timing`: stage_times(whole_s, rows), send_s(tokens), pp)."""

    def __init__(self, *args, timing, **kwargs) -> None:
        self.timing = timing
        self.in_flight: deque[MicroBatch] = deque()
        self.rows_in_flight: set[int] = set()
        self.stage_free = [0.0] * timing.pp
        self._logged_to = 0.0
        super().__init__(*args, **kwargs)
        if self.lag is not None or self.predictions is not None or self.swap is not None \
                or self.repredictor is not None:
            raise PolicyError("a pipeline replica runs without async scheduling, charged "
                              "predictions, swap or re-prediction (app/pipeline_setup.py)")

    def _loop(self):
        while True:
            now = self.env.now
            if self.in_flight and self.in_flight[0].end <= now:
                self._complete(self.in_flight.popleft())
                continue
            done = self.engine.inputs_done(self.index)
            step = None
            if len(self.in_flight) < self.timing.pp:
                free = tuple(s for s in self.running if s.idx not in self.rows_in_flight)
                step = self.policy.schedule(ReplicaView(now, self.index, self.waiting, free,
                                                        self.kv, done, len(self.rows_in_flight)))
            if step is not None:
                self._launch(step)
                continue
            if self.in_flight:              # vLLM blocks on the oldest batch
                yield self.env.timeout(self.in_flight[0].end - now)
                continue
            if (yield from self._idle(done)):
                return

    def _launch(self, step: Step) -> None:
        if not step.seqs or step.padded:
            raise PolicyError(f"policy {self.policy.name} returned an empty or padded step")
        now = self.env.now
        admit(self, step, now)
        seqs = step.seqs
        chunks, context, completes = prefill_chunks(self, seqs, step.prefill_tokens)
        held = np.fromiter((s.kv_blocks for s in seqs), np.int64, len(seqs))
        grow_kv(self, seqs, held, context + chunks + completes)   # + a completing row's token
        whole = self.executor.run(step, 1, None).duration_s
        for s, c in zip(seqs, chunks.tolist()):
            s.prefilled += c                # the next chunk may be scheduled at once
        tokens = int(chunks.sum() + (chunks == 0).sum())
        stages = self.timing.stage_times(whole, len(seqs))
        send = self.timing.send_s(tokens)
        t = now
        for k, seconds in enumerate(stages.tolist()):
            begin = max(t, self.stage_free[k])
            start = begin if k == 0 else start
            self.stage_free[k] = begin + seconds
            t = begin + seconds + send
        end = self.stage_free[-1]
        self.busy_until = end
        self.in_flight.append(MicroBatch(step, chunks.tolist(), completes.tolist(),
                                         [s.attempts for s in seqs],
                                         (context + chunks).tolist(), start, end,
                                         self.kv.used_tokens))
        self.rows_in_flight.update(s.idx for s, c in zip(seqs, completes.tolist()) if c)

    def _complete(self, mb: MicroBatch) -> None:
        end = mb.end
        decode_tokens = 0
        for s, c, done_prefill, attempt, upto in zip(mb.step.seqs, mb.chunks, mb.completes,
                                                     mb.attempts, mb.upto):
            if s.status is not Status.RUNNING or s.attempts != attempt:
                continue                    # preempted since: vLLM drops the output
            if not done_prefill:
                self.kv.computed(s, upto)
                continue
            self.rows_in_flight.discard(s.idx)
            decode_tokens += 0 if c else 1
            emit_tokens(self, s, 1, end, end)
        start = max(mb.start, self._logged_to)
        self._logged_to = end
        self.engine.log_step(self.index, start, end, mb.step.kind, len(mb.step.seqs), 1,
                             int(sum(mb.chunks)), decode_tokens, mb.kv_used)
