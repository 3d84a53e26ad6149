"""A continuous batch on a replica: the checks on a Step's prompt chunks, the KV blocks it
grows, and the tokens its rows receive - shared by the replica (`run_continuous`: k iterations
in one SimPy event) and the pipeline replica (one micro-batch per step, sim/pipeline.py)."""

from __future__ import annotations

import math

import numpy as np

from seqsched.sim.reprediction import repredict
from seqsched.sim.rows import retire
from seqsched.sim.sequence import Seq, Status
from seqsched.sim.step import Step
from seqsched.sim.view import PolicyError


def prefill_chunks(rep, seqs: list[Seq], prefill_tokens) -> tuple[np.ndarray, ...]:
    """(chunks, context, completes) of a Step's rows: each row's prompt chunk, its context
    before the chunk, and whether the chunk ends its prompt (the row then produces a token).
    PolicyError when a chunk does not fit what is left of its row's prompt."""
    chunks = np.asarray(prefill_tokens, dtype=np.int64)
    if len(chunks) != len(seqs):
        raise PolicyError(f"policy {rep.policy.name}: {len(seqs)} rows but "
                          f"{len(chunks)} prefill entries")
    prompt = np.fromiter((s.prefill_len for s in seqs), np.int64, len(seqs))
    prefilled = np.fromiter((s.prefilled for s in seqs), np.int64, len(seqs))
    context = np.fromiter((s.context_tokens for s in seqs), np.int64, len(seqs))
    if np.any(prefilled + chunks > prompt) or np.any((chunks == 0) & (prefilled < prompt)):
        raise PolicyError(f"policy {rep.policy.name}: a row's prefill chunk does not match "
                          "its remaining prompt")
    return chunks, context, prefilled + chunks >= prompt


def grow_kv(rep, seqs: list[Seq], held: np.ndarray, tokens_after: np.ndarray) -> None:
    """Take the blocks the rows need to hold `tokens_after` tokens beyond the `held` ones."""
    grow = np.maximum(rep.kv.blocks_for(tokens_after) - held, 0)
    if int(grow.sum()) > rep.kv.free_blocks:
        raise PolicyError(f"policy {rep.policy.name} scheduled more KV than is free "
                          f"({rep.kv.free_blocks} blocks)")
    rep.kv.allocate(int(grow.sum()))
    for s, g in zip(seqs, grow.tolist()):
        s.kv_blocks += g


def emit_tokens(rep, s: Seq, produced: int, first_token_s: float, end: float) -> None:
    """A row past its prompt got `produced` tokens by `end`; it retires at its target."""
    if math.isnan(s.first_token_s) and s.generated == 0:
        s.first_token_s = first_token_s
    s.generated += produced
    rep.kv.computed(s, s.context_tokens - 1)   # the newest token is not in the KV
    if s.generated >= s.target_tokens:
        retire(rep, s, end)


def run_continuous(rep, step: Step, start: float):
    """The replica's continuous step (a SimPy generator): as many iterations as run before a
    row finishes, the KV runs out, a request arrives or a row is due for re-prediction."""
    seqs = step.seqs
    chunks, context, completes = prefill_chunks(rep, seqs, step.prefill_tokens)
    generated = np.fromiter((s.generated for s in seqs), np.int64, len(seqs))
    target = np.fromiter((s.target_tokens for s in seqs), np.int64, len(seqs))
    if completes.all():
        # iterations until the first row finishes (no completion inside the event)
        limit = min(step.max_iterations, int((target - generated).min()))
        if rep.repredictor is not None:     # stop where a row is due for re-prediction
            limit = min(limit, rep.repredictor.horizon(generated))
    else:
        limit = 1
    if rep.group is not None or (rep.lag is not None and rep.lag.one_iteration):
        limit = 1                       # lockstep: the group's max is per iteration
    held = np.fromiter((s.kv_blocks for s in seqs), np.int64, len(seqs))
    k = rep.kv.max_iterations(context + chunks, held, rep.kv.free_blocks, max(limit, 1))
    if k == 0:
        raise PolicyError(f"policy {rep.policy.name} scheduled more KV than is free "
                          f"({rep.kv.free_blocks} blocks)")
    stop_after = rep.engine.time_to_next_arrival(rep.index)
    if rep.predictions is not None:     # or a host-CPU prediction batch joining sooner
        stop_after = rep.predictions.until_ready(rep.env.now, stop_after)
    result = rep.executor.run(step, k, stop_after)
    rep.busy_until = rep.env.now + result.duration_s
    n = result.iterations
    # allocate KV for what actually ran
    grow_kv(rep, seqs, held, context + chunks + np.where(completes, n, 0))
    kv_used = rep.kv.used_tokens      # held through the step's last iteration (logged
                                      # before finished rows free their blocks)
    if rep.group is None:
        yield rep.env.timeout(result.duration_s)
    else:                               # ends with the group's slowest member
        yield from rep.group.run(rep, step, result.duration_s)
    end = rep.env.now
    first = result.first_iteration_s if rep.group is None else end - start
    eos_at = result.eos_at or {}
    decode_tokens = 0
    for s, c, done_prefill in zip(seqs, chunks.tolist(), completes.tolist()):
        s.prefilled += c
        if not done_prefill:
            rep.kv.computed(s, s.context_tokens)
            continue
        produced = n
        if s.id in eos_at:           # live natural-length mode: the model decided
            produced = min(produced, eos_at[s.id] + 1)
            s.output_tokens = s.target_tokens = s.generated + produced
        decode_tokens += produced - (1 if c else 0)
        emit_tokens(rep, s, produced, start + first, end)
    rep.engine.log_step(rep.index, start, end, step.kind, len(seqs), n, int(chunks.sum()),
                        decode_tokens, kv_used)
    if rep.lag is not None:
        rep.lag.stepped(start, end, result)
    if rep.repredictor is not None:
        yield from repredict(rep, [s for s in seqs if s.status is Status.RUNNING
                                   and rep.repredictor.due(s.generated)])
