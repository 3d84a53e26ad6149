"""A replica's row bookkeeping: the only code that moves a request between the waiting queue,
the running list and finished (start, preempt, retire, finish). Plain functions on a replica's
state (`rep`: waiting, running, kv, executor, swap, lag), so the replica and the pipeline
replica (sim/pipeline.py) keep one copy of the rules."""

from __future__ import annotations

import math
import warnings

from seqsched.sim.sequence import Seq, Status
from seqsched.sim.step import Step
from seqsched.sim.view import PolicyError


def admit(rep, step: Step, now: float) -> None:
    """Apply a Step's preemptions, then start its rows that are not running yet (the victims
    go first: their blocks are what the new rows may take)."""
    for s in step.preempt:
        preempt(rep, s)
    for s in step.seqs:
        if s.status is not Status.RUNNING:
            start_row(rep, s, now)


def start_row(rep, s: Seq, now: float) -> None:
    if s.status is not Status.WAITING or s.replica != rep.index:
        raise PolicyError(f"policy {rep.policy.name} scheduled request {s.id} "
                          f"that is {s.status.value} (replica {s.replica})")
    rep.waiting.remove(s)
    s.status = Status.RUNNING
    s.attempts += 1
    s.failed = False
    s.admitted_order = rep.admitted
    rep.admitted += 1
    if math.isnan(s.first_scheduled_s):
        s.first_scheduled_s = now
    if rep.kv.prefix is not None and not s.prefilled and not s.swapped:
        rep.kv.take_cached_prefix(s)            # its prefill skips the cached prefix
    if s.swapped:                               # its KV comes back from host memory
        rep.swap.swap_in(s)
    rep.running.append(s)


def preempt(rep, s: Seq) -> None:
    """Back to the waiting queue: its KV swapped out to host memory (swap), or freed and its
    prompt plus kept output prefilled again (recompute), or everything lost (restart)."""
    if s.status is not Status.RUNNING:
        raise PolicyError(f"policy {rep.policy.name} preempted request {s.id} "
                          f"that is not running")
    rep.running.remove(s)
    if rep.swap is not None and rep.swap.swap_out(s, rep.kv):
        rep.executor.release(s)
        s.preemptions += 1
        s.status = Status.WAITING
        rep.waiting.add(s)
        return
    s.recomputed_tokens += s.context_tokens
    rep.kv.free(s)
    rep.executor.release(s)
    if rep.resumes:
        s.recomputed = s.generated          # prompt + kept output: the next prefill
    else:
        if rep.warn_restart:
            rep.warn_restart = False
            warnings.warn(f"executor {getattr(rep.executor, 'name', '?')} cannot resume a "
                          "preempted request from its output; preempted requests restart "
                          "from scratch (policy parameter preemption=restart simulates "
                          "the same)", RuntimeWarning, stacklevel=2)
        s.wasted_tokens += s.generated
        s.slot_tokens_all += s.generated
        s.generated = s.recomputed = 0
    s.prefilled = 0
    s.preemptions += 1
    s.status = Status.WAITING
    rep.waiting.add(s)


def retire(rep, s: Seq, end: float) -> None:
    """A continuous row that produced its last token: it leaves the running list and frees its
    slot and KV (under async scheduling one plan later, sim/async_lag.py)."""
    rep.running.remove(s)
    if rep.lag is not None:     # its slot and KV are freed after the next plan
        rep.lag.held.append(s)
    else:
        rep.kv.free(s)
        rep.executor.release(s)
    s.slot_tokens_all += s.generated
    finish(rep, s, end, slot_tokens=s.generated)


def finish(rep, s: Seq, now: float, slot_tokens: int) -> None:
    if s in rep.running:
        rep.running.remove(s)
    s.status = Status.FINISHED
    s.block_hashes = None
    s.finish_s = now
    s.slot_tokens = slot_tokens
    rep.engine.finished(s)
