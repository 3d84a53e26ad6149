"""Advancing an array replica by one step (one SimPy timeout), as
`seqsched.sim.continuous_batch.run_continuous` does with `CostModelExecutor` timing.

`run_complete` is the common step: every running row decodes and every admitted prompt is
prefilled whole; nothing passes over the rows but the finish check. `sim/fast/step.py`
covers the rest (prompt chunks, rows left out of a step). Both compute the same numbers as
the object engine: the step runs up to the first completion, the KV limit or the first
iteration boundary after the next arrival; rows grow their KV blocks for what ran; the step
log gets one row.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from seqsched.sim.view import PolicyError

def _max_iterations(rep, tokens, held, free: int, limit: int) -> int:
    k = rep.kv.max_iterations(tokens, held, free, limit)
    if k == 0:
        raise PolicyError(f"policy {rep.policy.name} scheduled more KV than is free "
                          f"({free} blocks)")
    return k


def _advance(rep, first: float, rows: int, context_sum: int, k: int,
             stop_after, spread: dict | None = None) -> tuple[int, float]:
    """(n, seconds): the step runs k iterations, or stops at the end of the first iteration
    that ends at or after `stop_after` (`context_sum`: the rows' tokens after iteration 0;
    `spread`: their longest and shortest context then, for a cost model that wants them)."""
    if rep.decode_times is not None:
        return rep.decode_times.run(first, rows, context_sum, k, stop_after)
    if k == 1:
        return 1, first
    ends = np.cumsum(np.concatenate(([first], rep.cost.decode_times(rows, context_sum, k - 1,
                                                                   **(spread or {})))))
    n = k if stop_after is None else min(bisect_left(ends, stop_after) + 1, k)
    return n, float(ends[n - 1])


def _take(rep, blocks: int) -> None:
    kv = rep.kv
    if blocks > kv.num_blocks - kv.used_blocks:
        raise PolicyError(f"policy {rep.policy.name} scheduled more KV than is free")
    kv.used_blocks += blocks


def _first_tokens(rep, rows: list[int], at: float) -> None:
    t = rep.table
    for i in rows:
        if t.first_token_s[i] != t.first_token_s[i]:          # NaN: its first token
            t.first_token_s[i] = at


def run_complete(rep, start: float, admitted: list[int], chunks: list[int],
                 max_iterations: int):
    """Every running row decodes; the `admitted` requests prefill their whole prompts
    (`chunks`) this step. Nothing here passes over the rows but the finish check: the KV
    blocks the step adds come from the running set's residue counts (`RunningSet.growth`)."""
    run, cost, dt, kv = rep.run, rep.cost, rep.decode_times, rep.kv
    m = len(admitted)
    deficit = rep.admit_whole(admitted, chunks, start) if m else 0   # their prompts' blocks
    rows = run.n
    rem_min = run.rem_min
    limit = max(min(max_iterations, rem_min), 1)
    free = kv.num_blocks - kv.used_blocks
    if run.growth(limit) + deficit <= free:
        k = limit
    else:
        held = run.held
        held[rows - m:] = 0               # the admitted rows hold nothing yet
        k = _max_iterations(rep, run.ctx, held, free, limit)
    engine = rep.engine                   # time_to_next_arrival, inlined
    nxt = engine._next
    if engine.client is not None:
        stop_after = engine.client.next_send_s(engine, rep.index)
    else:
        stop_after = (None if nxt >= engine.n_requests
                      else max(engine.arrival_list[nxt] - rep.env.now, 0.0))
    tokens = run.ctx_sum
    chunk_sum = sum(chunks)
    spread, first_spread = None, {}
    if rep.wants_spread:                  # the skew correction's max and min
        ctx = run.ctx
        spread = {"context_max": int(ctx.max()) + 1, "context_min": int(ctx.min()) + 1}
        dec = ctx[:rows - m]              # the admitted rows are the last m
        if dec.size:
            first_spread = {"decode_max": int(dec.max()), "decode_min": int(dec.min())}
    if not m:
        first = (dt.first(rows, tokens) if dt is not None
                 else cost.prefill_time(np.zeros(0, np.int64), np.zeros(0, np.int64), rows,
                                        tokens, **first_spread))
    elif dt is not None and m <= dt.SCALAR_ROWS:
        first = dt.prefill(chunks, rows - m, tokens - chunk_sum)
    else:
        first = cost.prefill_time(np.asarray(chunks, dtype=np.int64), np.zeros(m, np.int64),
                                  rows - m, tokens - chunk_sum, **first_spread)
    n, seconds = _advance(rep, first, rows, tokens + rows, k, stop_after, spread)
    if rep.lag is not None:
        rep.lag.stepped(start, first, rows, tokens + rows, n, spread)
    _take(rep, run.growth(n) + deficit)
    kv_used = kv.used_blocks * kv.block_size
    rep.busy_until = rep.env.now + seconds
    yield rep.env.timeout(seconds)
    end = rep.env.now
    run.advance(n)
    if m:
        _first_tokens(rep, admitted, start + first)
    if n == rem_min:
        rep.finish_done(end)
    rep.engine.log_extend((rep.index, start, end, rows, n, chunk_sum, rows * n - m, kv_used))
