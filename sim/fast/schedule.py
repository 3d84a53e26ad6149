"""`ContinuousPolicy.schedule` on the array replica's running columns.

The same decisions in the same order as `seqsched.policies.continuous` (which stays the
reference): a token for every decode row, prompt chunks of prefilling rows in priority order,
KV room for what the step adds (preempting the lowest-priority rows when it runs out), then
head-of-line admission from the waiting heap, greedy or by predicted length. Only the
preemption victims' and the prefilling rows' priority keys are computed (rarely); the KV
blocks the next iteration needs come from the running set's residue counts plus the few
prefilling rows in Python, so no step passes over the running rows unless a victim is needed.

The running order of rows does not matter here: every sum the cost model takes over decode
rows is an integer, and prompt chunks (whose float sums depend on order) are listed in the
policy's order (`Plan.prefill`, then the admitted requests).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from seqsched.sim.kv import reserve_blocks


@dataclass(slots=True)
class Plan:
    """What the replica runs next: `keep`/`preempt` (running positions), the prefilling rows
    that run, in priority order, with their prompt chunks, the prefilling rows left out of the
    step (`idle`: no budget), the admitted requests (trace positions, chunks) and the
    iteration bound. Every other running row decodes."""

    keep: np.ndarray | None
    preempt: list[int]
    prefill: list[int]
    prefill_chunks: list[int]
    idle: list[int]
    admitted: list[int]
    admitted_chunks: list[int]
    max_iterations: int
    complete: bool                     # every prompt chunk in the step finishes its prompt


def chunk_for(left: int, budget: int, max_tokens: int, chunked: bool) -> int:
    """`ContinuousPolicy._chunk`: prompt tokens a row processes next (0: none)."""
    if left <= 0 or budget <= 0:
        return 0
    if left <= budget:
        return left
    if chunked or left > max_tokens:
        return budget
    return 0


def _reserved(rep, need) -> int:
    """Blocks the running rows' predicted remaining output still needs (predicted admission)."""
    t, run, bs = rep.table, rep.run, rep.kv.block_size
    idx = run.idx
    pred = t.predicted[idx]
    gen = t.target[idx] - run.rem
    more = np.maximum(-(-(t.prompt[idx] + pred) // bs) - (run.held + need), 0)
    return int(np.where(gen >= pred, 1, more).sum())


def _need(run, prefill: list[int], chunks: list[int], bs: int) -> np.ndarray:
    """Per running row, the blocks the next iteration adds (0 for rows left out)."""
    ctx, left = run.ctx, run.left
    chunk = np.zeros(run.n, dtype=np.int64)
    chunk[prefill] = chunks
    runs = (left == 0) | (chunk > 0)
    return np.where(runs, np.maximum((ctx + chunk + bs) // bs - run.held, 0), 0)


def decode_plan(max_iterations: int) -> Plan:
    """Every running row decodes, nothing else (the replica keeps one; nobody changes it)."""
    return Plan(None, [], [], [], [], [], [], max_iterations, True)


def schedule(rep) -> Plan | None:
    """The next step of array replica `rep`, or None when nothing can run."""
    run = rep.run
    if run.n and not run.n_prefilling and not rep.waiting:      # the most common step
        kv = rep.kv
        if run.full() <= kv.num_blocks - kv.used_blocks:
            return rep.decode_plan
    bs = rep.kv.block_size
    free = rep.kv.num_blocks - rep.kv.used_blocks
    max_tokens, chunked = rep.max_tokens, rep.chunked
    n = run.n
    budget = max_tokens
    complete = True
    preempt: list[int] = []
    prefill: list[int] = []
    chunks: list[int] = []
    idle: list[int] = []
    keep = None
    rows = 0
    need = None                           # per-row blocks (`_need`), built only if read
    if n:
        n_prefilling = run.n_prefilling
        budget -= n - n_prefilling
        # a decode row holds ceil(ctx / bs) blocks: it needs one more iff its last is full
        total = run.full()
        if n_prefilling:
            for i in sorted(run.prefilling(), key=rep.running_key):
                _, c0, left_i, _ = run.get(i)
                if c0 % bs == 0:          # counted by full() as if it decoded
                    total -= 1
                c = chunk_for(left_i, budget, max_tokens, chunked)
                budget -= c
                if c:
                    prefill.append(i)
                    chunks.append(c)
                    total += max((c0 + c + bs) // bs + (-c0 // bs), 0)
                else:
                    idle.append(i)
        if total > free:
            need = _need(run, prefill, chunks, bs)
            keep = np.ones(n, dtype=bool)
            held = run.held
            victims = rep.priority_order()
            while victims and total > free:
                i = victims.pop()
                total -= int(need[i])
                free += int(held[i])
                keep[i] = False
                preempt.append(i)
            kept = [j for j, i in enumerate(prefill) if keep[i]]
            prefill, chunks = [prefill[j] for j in kept], [chunks[j] for j in kept]
            idle = [i for i in idle if keep[i]]
        free -= total
        n_pre_prefilling = sum(1 for i in preempt if run.get(i)[2] > 0)
        rows = n - n_prefilling - (len(preempt) - n_pre_prefilling) + len(prefill)
        for i, c in zip(prefill, chunks):
            complete &= c >= run.get(i)[2]

    admitted: list[int] = []
    admitted_chunks: list[int] = []
    blocked = None                        # the waiting request admission stopped at
    reserved = 0
    if not preempt and rep.waiting:
        waiting = rep.waiting
        predicted = rep.predicted_admission
        table = rep.table
        if predicted and n:
            reserved = _reserved(rep, need if need is not None
                                 else _need(run, prefill, chunks, bs))
        while waiting:
            i = waiting[0][-1]
            if rows + rep.held_slots >= rep.max_num_seqs or budget <= 0:
                blocked = i
                break
            fit = _fits(rep, i, budget, free, reserved, n or rows)
            if fit is None:
                blocked = i
                break
            c, need_s, extra = fit
            reserved += extra
            free -= need_s
            heapq.heappop(waiting)
            admitted.append(i)
            admitted_chunks.append(c)
            rows += 1
            budget -= c
            complete &= c >= table.prompt_l[i] + table.recomputed[i]
    if not rows:
        return None
    iterations = rep.max_iterations if complete else 1
    # vLLM plans every iteration: cut the step to one where the next iteration's budget
    # (every row decodes one token) lets in what this one's prompt chunks kept out
    # (`ContinuousPolicy.schedule`, step 4)
    if preempt:                           # a step that preempts for memory admits nothing:
        # one iteration where vLLM's next would admit a victim or the waiting head
        if iterations > 1 and _readmits(rep, preempt, max_tokens - rows, free):
            iterations = 1
    elif iterations > 1 and budget < max_tokens - rows:
        budget = max_tokens - rows
        if any(chunk_for(run.get(i)[2], budget, max_tokens, chunked) for i in idle) or (
                blocked is not None and rows + rep.held_slots < rep.max_num_seqs
                and _fits(rep, blocked, budget, free, reserved, True) is not None):
            iterations = 1
    return Plan(keep, preempt, prefill, chunks, idle, admitted, admitted_chunks,
                iterations, complete)


def _readmits(rep, victims: list[int], budget: int, free: int) -> bool:
    """`ContinuousPolicy._readmits`: after a preemption for memory, could the next iteration
    admit a victim (running positions: its prompt + kept output, or its prompt after a
    restart) or the waiting head? (No swap or prefix caching here: the array engine runs
    neither.)"""
    if budget <= 0:
        return False
    t, run, bs = rep.table, rep.run, rep.kv.block_size
    for pos in victims:
        i, _, _, rem = run.get(pos)
        tokens = t.prompt_l[i] + (t.target_l[i] - rem if rep.resume else 0)
        c = chunk_for(tokens, budget, rep.max_tokens, rep.chunked)
        if c and -(-(c + 1) // bs) <= free and not (rep.reserve_full_isl
                                                    and -(-tokens // bs) > free):
            return True
    return bool(rep.waiting) and _fits(rep, rep.waiting[0][-1], budget, free, 0, True) \
        is not None


def _fits(rep, i: int, budget: int, free: int, reserved: int, others) -> tuple | None:
    """(prompt chunk, blocks, predicted-admission reserve) of waiting request `i` if it can
    be admitted with `budget` tokens and `free` blocks left, else None."""
    table, bs = rep.table, rep.kv.block_size
    plen = table.prompt_l[i] + table.recomputed[i]
    c = chunk_for(plen, budget, rep.max_tokens, rep.chunked)
    if c == 0:
        return None
    need_s = -(-(c + 1) // bs)
    if need_s > free or (rep.reserve_full_isl and -(-plen // bs) > free):
        return None                       # (plen = prompt + kept output: vLLM's num_tokens)
    extra = 0
    if rep.predicted_admission:
        extra = reserve_blocks(table.generated[i], int(table.predicted[i]),
                               table.prompt_l[i], need_s, bs)
        if need_s + extra > free - reserved and others:
            return None
    return c, need_s, extra
