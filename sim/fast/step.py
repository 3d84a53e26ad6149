"""A step with prompt chunks: some running rows prefill a chunk (`prefill`, in the policy's
order, admitted requests last), some prefilling rows wait for budget (`idle`), every other
row decodes - as `seqsched.sim.replica.Replica._run_continuous` with `CostModelExecutor`
timing does.

The decode rows are many and all do the same thing, so they are handled the way
`advance.run_complete` handles them (residue counts, one uniform advance); the few prefilling
and idle rows are taken out of those counts, handled one by one in Python, and put back.
"""

from __future__ import annotations

import numpy as np

from seqsched.sim.fast.advance import _advance, _first_tokens, _max_iterations, _take


def _blocks(tokens: int, bs: int) -> int:
    return -(-tokens // bs)


def _spread(run, prefill, chunks, idle):
    """The decode rows' and all running rows' longest and shortest context (skew term)."""
    running = np.ones(run.n, dtype=bool)
    running[idle] = False
    tokens = run.ctx.copy()
    tokens[prefill] += chunks
    decoding = running.copy()
    decoding[prefill] = False
    spread = {"context_max": int(tokens[running].max()) + 1,
              "context_min": int(tokens[running].min()) + 1}
    first = ({"decode_max": int(run.ctx[decoding].max()),
              "decode_min": int(run.ctx[decoding].min())} if decoding.any() else {})
    return spread, first


def run_step(rep, start: float, prefill: list[int], chunks: list[int], idle: list[int],
             max_iterations: int):
    run, t, cost, dt, kv = rep.run, rep.table, rep.cost, rep.decode_times, rep.kv
    bs = kv.block_size
    ctx_a, left_a, rem_a, idx_a = run.ctx, run.left, run.rem, run.idx
    m = len(prefill)
    ctx = [int(ctx_a[p]) for p in prefill]
    left = [int(left_a[p]) for p in prefill]
    rem = [int(rem_a[p]) for p in prefill]
    idx = [int(idx_a[p]) for p in prefill]
    idle_state = [(int(ctx_a[p]), int(rem_a[p])) for p in idle]
    completes = [c >= lf for c, lf in zip(chunks, left)]
    # take the prefilling and idle rows out of the residue counts: what stays decodes
    hist, shift = run.hist, run.shift
    out_sum = 0
    for c in ctx + [c for c, _ in idle_state]:
        hist[(c - shift) % bs] -= 1
        out_sum += c
    n_dec = run.n - m - len(idle)
    dec_sum = run.ctx_sum - out_sum
    rows = n_dec + m
    if all(completes):
        if idle:
            running = np.ones(run.n, dtype=bool)
            running[idle] = False
            rem_min = int(rem_a[running].min())
        else:
            rem_min = int(rem_a.min())
        limit = max(min(max_iterations, rem_min), 1)
    else:
        limit = 1
    free = kv.num_blocks - kv.used_blocks
    need = run.growth(limit, n_dec) + sum(
        max(_blocks(c + ch + limit, bs) - _blocks(c, bs), 0) for c, ch in zip(ctx, chunks))
    if need <= free:
        k = limit
    else:
        running = np.ones(run.n, dtype=bool)
        running[idle] = False
        tokens = ctx_a.copy()
        tokens[prefill] += chunks
        k = _max_iterations(rep, tokens[running], run.held[running], free, limit)
    stop_after = rep.engine.time_to_next_arrival()
    past = [int(t.prompt[i] + t.recomputed[i]) - lf for i, lf in zip(idx, left)]
    spread, first_spread = None, {}
    if rep.wants_spread:
        spread, first_spread = _spread(run, prefill, chunks, idle)
    if dt is not None and m <= dt.SCALAR_ROWS:
        first = dt.prefill(chunks, n_dec, dec_sum, past)
    else:
        first = cost.prefill_time(np.asarray(chunks, dtype=np.int64),
                                  np.asarray(past, dtype=np.int64), n_dec, dec_sum,
                                  **first_spread)
    chunk_sum = sum(chunks)
    n, seconds = _advance(rep, first, rows, dec_sum + sum(ctx) + chunk_sum + rows, k,
                          stop_after, spread)
    after = [c + ch + (n if done else 0) for c, ch, done in zip(ctx, chunks, completes)]
    _take(rep, run.growth(n, n_dec) + sum(_blocks(a, bs) - _blocks(c, bs)
                                          for a, c in zip(after, ctx)))
    kv_used = kv.used_blocks * bs
    yield rep.env.timeout(seconds)
    end = rep.env.now
    run.advance(n)                        # every row decoded n ... then the exceptions
    shift = run.shift
    delta = 0
    done = 0
    for p, a, c, ch, r, lf, ok in zip(prefill, after, ctx, chunks, rem, left, completes):
        ctx_a[p] = a
        left_a[p] = lf - ch
        rem_a[p] = r - n if ok else r
        hist[(a - shift) % bs] += 1
        delta += a - (c + n)
        done += ok
    for p, (c, r) in zip(idle, idle_state):
        ctx_a[p] = c
        rem_a[p] = r
        hist[(c - shift) % bs] += 1
        delta += c - (c + n)
    run.ctx_sum += delta
    run.n_prefilling -= done
    fresh = [i for i, r, ok in zip(idx, rem, completes)
             if ok and r == t.target[i]]                  # nothing generated before
    if fresh:
        _first_tokens(rep, fresh, start + first)
    decode_tokens = (n_dec + done) * n - done
    run.rem_min = int(rem_a.min())
    if run.rem_min == 0:
        rep.finish_done(end)
    rep.engine.log_extend((rep.index, start, end, rows, n, chunk_sum, decode_tokens, kv_used))
