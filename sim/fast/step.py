"""A step with prompt chunks: some running rows prefill a chunk (`prefill`, in the policy's
order, admitted requests last), some prefilling rows wait for budget (`idle`), every other
row decodes - as `seqsched.sim.continuous_batch.run_continuous` with `CostModelExecutor`
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
    ctx = run.ctx
    tokens = ctx.copy()
    tokens[prefill] += chunks
    decoding = running.copy()
    decoding[prefill] = False
    spread = {"context_max": int(tokens[running].max()) + 1,
              "context_min": int(tokens[running].min()) + 1}
    first = ({"decode_max": int(ctx[decoding].max()),
              "decode_min": int(ctx[decoding].min())} if decoding.any() else {})
    return spread, first


def run_step(rep, start: float, prefill: list[int], chunks: list[int], idle: list[int],
             max_iterations: int):
    run, t, cost, dt, kv = rep.run, rep.table, rep.cost, rep.decode_times, rep.kv
    bs = kv.block_size
    m = len(prefill)
    spread, first_spread = None, {}
    if rep.wants_spread:                  # before the rows are taken out
        spread, first_spread = _spread(run, prefill, chunks, idle)
    # take the prefilling and idle rows out of the counts: the counted rows decode
    taken = run.take(prefill + idle)
    pf, idle_rows = taken[:m], taken[m:]
    completes = [ch >= left for ch, (_, _, left, _) in zip(chunks, pf)]
    n_dec = run.n - len(taken)
    dec_sum = run.ctx_sum
    rows = n_dec + m
    if all(completes):
        if idle:
            running = np.ones(run.n, dtype=bool)
            running[idle] = False
            rem_min = int(run.rem[running].min())
        else:
            rem_min = run.rem_min
        limit = max(min(max_iterations, rem_min), 1)
    else:
        limit = 1
    free = kv.num_blocks - kv.used_blocks
    need = run.growth(limit) + sum(max(_blocks(c + ch + limit, bs) - _blocks(c, bs), 0)
                                   for ch, (_, c, _, _) in zip(chunks, pf))
    if need <= free:
        k = limit
    else:
        running = np.ones(run.n, dtype=bool)
        running[idle] = False
        tokens = run.ctx
        tokens[prefill] += chunks
        k = _max_iterations(rep, tokens[running], run.held[running], free, limit)
    stop_after = rep.engine.time_to_next_arrival(rep.index)
    past = [t.prompt_l[i] + t.recomputed[i] - left for i, _, left, _ in pf]
    if dt is not None and m <= dt.SCALAR_ROWS:
        first = dt.prefill(chunks, n_dec, dec_sum, past)
    else:
        first = cost.prefill_time(np.asarray(chunks, dtype=np.int64),
                                  np.asarray(past, dtype=np.int64), n_dec, dec_sum,
                                  **first_spread)
    chunk_sum = sum(chunks)
    pf_sum = sum(c for _, c, _, _ in pf)
    n, seconds = _advance(rep, first, rows, dec_sum + pf_sum + chunk_sum + rows, k,
                          stop_after, spread)
    if rep.lag is not None:
        rep.lag.stepped(start, first, rows, dec_sum + pf_sum + chunk_sum + rows, n, spread)
    after = [c + ch + (n if ok else 0) for ch, ok, (_, c, _, _) in zip(chunks, completes, pf)]
    _take(rep, run.growth(n) + sum(_blocks(a, bs) - _blocks(c, bs)
                                   for a, (_, c, _, _) in zip(after, pf)))
    kv_used = kv.used_blocks * bs
    rep.busy_until = rep.env.now + seconds
    yield rep.env.timeout(seconds)
    end = rep.env.now
    run.advance(n)                        # the counted rows decoded n; the rest go back
    fresh = []
    for p, a, ch, ok, (i, _, left, rem) in zip(prefill, after, chunks, completes, pf):
        run.put(p, i, a, left - ch, rem - n if ok else rem, left)
        if ok and rem == t.target_l[i]:   # prefilled, nothing generated before
            fresh.append(i)
    for p, (i, c, left, rem) in zip(idle, idle_rows):
        run.put(p, i, c, left, rem, left)
    if fresh:
        _first_tokens(rep, fresh, start + first)
    done = sum(completes)
    decode_tokens = (n_dec + done) * n - done
    if run.rem_min == 0:
        rep.finish_done(end)
    rep.engine.log_extend((rep.index, start, end, rows, n, chunk_sum, decode_tokens, kv_used))
