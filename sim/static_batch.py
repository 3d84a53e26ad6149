"""A static (padded) batch on a replica, the static policies' kind of Step: every row padded
to the longest prompt, the batch generating until its longest row (or the cap) is done, in one
SimPy event; under FCR a row cut by the cap goes back to wait, otherwise it is truncated."""

from __future__ import annotations

import math

from seqsched.common.errors import UserError
from seqsched.sim.kv import KVOverflow
from seqsched.sim.rows import finish
from seqsched.sim.sequence import Status
from seqsched.sim.step import Step


def run_static(rep, step: Step, start: float):
    """The replica's static step (a SimPy generator)."""
    cap = step.cap if step.cap is not None else rep.engine.max_new_tokens
    # a live model in natural-length mode decides the lengths: run up to the cap and let
    # it stop when every row has emitted EOS
    natural = getattr(rep.executor, "length_mode", "forced") == "natural"
    longest = max(s.target_tokens for s in step.seqs)
    iterations = cap if natural else max(min(cap, longest), 1)
    width = max(s.prompt_tokens for s in step.seqs)
    try:
        rep.kv.reserve_static(len(step.seqs) * (width + iterations))
    except KVOverflow as e:       # the user's batch size does not fit this GPU
        raise UserError(f"policy {rep.policy.name}: {e}") from None
    result = rep.executor.run(step, iterations, None)
    yield rep.env.timeout(result.duration_s)
    n = result.iterations
    end = rep.env.now
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
            finish(rep, s, end, slot_tokens=n)
        elif step.fcr:
            s.wasted_tokens += n
            s.generated = s.prefilled = 0
            s.failed = True
            s.status = Status.WAITING
            rep.running.remove(s)
            rep.waiting.add(s)
        else:
            s.generated = n
            s.truncated = True
            finish(rep, s, end, slot_tokens=n)
        rep.executor.release(s)
    rep.engine.log_step(rep.index, start, end, step.kind, len(step.seqs), n,
                        len(step.seqs) * width, len(step.seqs) * (n - 1), rep.kv.used_tokens)
    rep.kv.static_tokens = 0
