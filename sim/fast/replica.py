"""One serving replica of the array engine: the running set as structure-of-arrays (one numpy
column per field, in running order), the waiting queue as a heap keyed by the policy's own
`priority`, and one SimPy timeout per step - the same steps, in the same order, with the same
times and token counts as `seqsched.sim.replica.Replica` under a `ContinuousPolicy` and the
cost-model executor. Request state lives in the engine's `RequestTable`; it is read when a
request is admitted and written back when it is preempted or finishes.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import simpy

from seqsched.sim.fast.schedule import schedule
from seqsched.sim.kv import KVCache
from seqsched.sim.replica import PolicyError

COLUMNS = ("idx", "prefilled", "generated", "recomputed", "held", "prompt", "target",
           "predicted")


class _Key:
    """The fields a policy's `priority(seq)` reads, for computing a key without a `Seq`."""

    __slots__ = ("idx", "arrival_s", "predicted", "generated")


class ArrayReplica:
    def __init__(self, engine, index: int, policy, cost, kv: KVCache) -> None:
        self.engine = engine
        self.env: simpy.Environment = engine.env
        self.table = engine.table
        self.index = index
        self.policy = policy
        self.cost = cost
        self.kv = kv
        self.max_tokens = policy.max_batched_tokens
        self.chunked = policy.chunked_prefill
        self.max_num_seqs = policy.max_num_seqs
        self.max_iterations = policy.max_iterations
        self.predicted_admission = policy.admission == "predicted"
        self.resume = policy.preemption == "recompute"   # the cost model resumes preempted rows
        self.waiting: list[tuple] = []
        self._counter = itertools.count()
        self._key = _Key()
        for name in COLUMNS:
            setattr(self, name, np.zeros(0, dtype=np.int64))
        self._wake: simpy.Event | None = None
        self.process = self.env.process(self._loop())

    # -- keys and arrivals ------------------------------------------------------------
    def _priority(self, i: int, generated: int) -> tuple:
        k = self._key
        t = self.table
        k.idx, k.arrival_s = i, float(t.arrival_s[i])
        k.predicted, k.generated = int(t.predicted[i]), generated
        return self.policy.priority(k)

    def running_key(self, pos: int) -> tuple:
        return self._priority(int(self.idx[pos]), int(self.generated[pos]))

    def _push(self, i: int) -> None:
        heapq.heappush(self.waiting, (self._priority(i, int(self.table.generated[i])),
                                      next(self._counter), i))

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.idx)

    def add_range(self, lo: int, hi: int) -> None:
        self.table.replica[lo:hi] = self.index
        for i in range(lo, hi):
            self._push(i)

    def wake(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    # -- main loop ----------------------------------------------------------------------
    def _loop(self):
        while True:
            plan = schedule(self)
            if plan is None:
                if self.engine.arrivals_done and self.outstanding == 0:
                    return
                if self.engine.arrivals_done:
                    raise PolicyError(
                        f"policy {self.policy.name} scheduled nothing with {len(self.waiting)} "
                        f"waiting and {len(self.idx)} running requests and no arrivals left")
                self._wake = self.env.event()
                yield self._wake
                self._wake = None
                continue
            yield from self._execute(plan)

    def _set_running(self, mask: np.ndarray | None, extra: dict | None) -> None:
        for name in COLUMNS:
            col = getattr(self, name)
            if mask is not None:
                col = col[mask]
            if extra is not None:
                col = np.concatenate((col, extra[name]))
            setattr(self, name, col)

    def _preempt(self, positions: list[int]) -> None:
        t = self.table
        for pos in positions:
            i = int(self.idx[pos])
            gen = int(self.generated[pos])
            t.recomputed_tokens[i] += int(self.prefilled[pos]) + gen - int(self.recomputed[pos])
            self.kv.used_blocks -= int(self.held[pos])
            if self.resume:
                t.generated[i] = t.recomputed[i] = gen
            else:
                t.wasted[i] += gen
                t.slot_tokens_all[i] += gen
                t.generated[i] = t.recomputed[i] = 0
            t.preemptions[i] += 1
            self._push(i)

    def _admit(self, admitted: list[int], now: float) -> dict:
        t = self.table
        a = np.asarray(admitted, dtype=np.int64)
        t.attempts[a] += 1
        fresh = a[np.isnan(t.first_scheduled_s[a])]
        t.first_scheduled_s[fresh] = now
        zeros = np.zeros(len(a), dtype=np.int64)
        return {"idx": a, "prefilled": zeros, "generated": t.generated[a],
                "recomputed": t.recomputed[a], "held": zeros, "prompt": t.prompt[a],
                "target": t.target[a], "predicted": t.predicted[a]}

    def _execute(self, plan):
        start = self.env.now
        n_old = len(self.idx)
        chunk, runs = plan.chunk, plan.runs
        if plan.preempt:
            self._preempt(plan.preempt)
        # the step's prefill rows in row order: running prompt chunks by priority, then admitted
        keep = plan.keep
        if keep is not None:
            new_pos = np.cumsum(keep) - 1
            pf_order = new_pos[plan.prefill_order].tolist()
            chunk = chunk[keep]
            runs = runs[keep] if runs is not None else None
        else:
            pf_order = plan.prefill_order
        if plan.admitted:
            n_kept = len(chunk)
            self._set_running(keep, self._admit(plan.admitted, start))
            pf_order = pf_order + list(range(n_kept, n_kept + len(plan.admitted)))
            chunk = np.concatenate((chunk, np.asarray(plan.admitted_chunks, dtype=np.int64)))
            if runs is not None:
                runs = np.concatenate((runs, np.ones(len(plan.admitted), dtype=bool)))
        elif keep is not None:
            self._set_running(keep, None)
        yield from self._run(start, chunk, runs, pf_order, plan.max_iterations)
        del n_old

    def _run(self, start: float, chunk, runs, pf_order: list[int], max_iterations: int):
        kv, bs, t = self.kv, self.kv.block_size, self.table
        prefilled, generated, held = self.prefilled, self.generated, self.held
        ctx = prefilled + generated - self.recomputed
        plen = self.prompt + self.recomputed
        if runs is None:                 # every running row takes part
            s_ctx, s_chunk, s_held, s_pre = ctx, chunk, held, prefilled
            s_gen, s_target, s_plen = generated, self.target, plen
        else:
            s_ctx, s_chunk, s_held, s_pre = ctx[runs], chunk[runs], held[runs], prefilled[runs]
            s_gen, s_target, s_plen = generated[runs], self.target[runs], plen[runs]
        completes = s_pre + s_chunk >= s_plen
        all_complete = bool(completes.all())
        limit = min(max_iterations, int((s_target - s_gen).min())) if all_complete else 1
        tokens = s_ctx + s_chunk
        k = kv.max_iterations(tokens, s_held, kv.num_blocks - kv.used_blocks, max(limit, 1))
        if k == 0:
            raise PolicyError(f"policy {self.policy.name} scheduled more KV than is free "
                              f"({kv.num_blocks - kv.used_blocks} blocks)")
        stop_after = self.engine.time_to_next_arrival()
        # timing: what CostModelExecutor.run computes from the Step's rows
        rows = len(s_ctx)
        is_prefill = s_chunk > 0
        n_decode = rows - int(np.count_nonzero(is_prefill))
        if pf_order:
            first = self.cost.prefill_time(chunk[pf_order], prefilled[pf_order], n_decode,
                                           int(s_ctx[~is_prefill].sum()))
        else:
            first = self.cost.prefill_time(chunk[:0], prefilled[:0], n_decode, int(s_ctx.sum()))
        later = self.cost.decode_times(rows, int(tokens.sum()) + rows, k - 1)
        ends = np.cumsum(np.concatenate(([first], later)))
        n = k
        if stop_after is not None and k > 1:
            n = min(int(np.searchsorted(ends, stop_after, side="left")) + 1, k)
        duration = float(ends[n - 1])
        # KV for what actually ran
        grow = np.maximum(-(-(tokens + np.where(completes, n, 0)) // bs) - s_held, 0)
        grown = int(grow.sum())
        if grown > kv.num_blocks - kv.used_blocks:
            raise PolicyError(f"policy {self.policy.name} scheduled more KV than is free")
        kv.used_blocks += grown
        kv_used = kv.used_blocks * bs
        yield self.env.timeout(duration)
        end = self.env.now
        first_at = start + float(ends[0])
        if runs is None:
            s_gen_after = generated + np.where(completes, n, 0)
            held += grow
            prefilled += chunk
            self.generated = generated = s_gen_after
            rows_idx = self.idx
        else:
            held[runs] += grow
            prefilled[runs] += s_chunk
            s_gen_after = s_gen + np.where(completes, n, 0)
            generated[runs] = s_gen_after
            rows_idx = self.idx[runs]
        # first tokens: rows whose prefill completed with nothing generated before
        fresh = completes & (s_gen == 0)
        if fresh.any():
            fi = rows_idx[fresh]
            fi = fi[np.isnan(t.first_token_s[fi])]
            t.first_token_s[fi] = first_at
        decode_tokens = int(np.count_nonzero(completes)) * n - int(
            np.count_nonzero(completes & is_prefill))
        done = completes & (s_gen_after >= s_target)
        if done.any():
            self._finish(runs, done, end)
        self.engine.log_step(self.index, start, end, rows, n, int(s_chunk.sum()),
                             decode_tokens, kv_used)

    def _finish(self, runs, done, end: float) -> None:
        if runs is None:
            pos = done
        else:
            pos = np.zeros(len(self.idx), dtype=bool)
            pos[np.flatnonzero(runs)[done]] = True
        t = self.table
        i = self.idx[pos]
        gen = self.generated[pos]
        self.kv.used_blocks -= int(self.held[pos].sum())
        t.generated[i] = gen
        t.slot_tokens_all[i] += gen
        t.slot_tokens[i] = gen
        t.finish_s[i] = end
        self._set_running(~pos, None)
        self.engine.finished(len(i))
