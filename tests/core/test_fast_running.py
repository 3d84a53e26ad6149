"""The array engine's running set keeps KV block counts without a pass over the rows: its
residue histogram must give exactly what a row-by-row count gives, under any mix of uniform
decode steps, admissions, removals and row-by-row changes; and lone-replica arrival times
must be the arrival process's SimPy times."""

from __future__ import annotations

import numpy as np
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from seqsched.sim.fast.arrivals import delay_to, fire_times, wake_at
from seqsched.sim.fast.running import RunningSet


def blocks(ctx, bs):
    return -(-np.asarray(ctx, dtype=np.int64) // bs)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1, 2, 4, 16, 32]),
       st.lists(st.tuples(st.sampled_from(["add", "step", "remove", "edit", "compact"]),
                          st.integers(0, 200), st.integers(1, 70)), max_size=40))
def test_running_set_counts_match_a_row_by_row_count(bs, ops):
    """Ops as the engine does them: a step runs at most min(rem) iterations, and the rows
    that finish leave before the next op."""
    run = RunningSet(bs)
    for serial, (op, a, k) in enumerate(ops):
        if op == "add":
            run.append(serial, a, a % 2, k)
        elif op == "step" and run.n:
            run.advance(min(k, run.rem_min))
        elif op == "remove" and run.n:
            run.remove([a % run.n])
        elif op == "edit" and run.n:        # a prefill chunk: taken out, stepped, put back
            p = a % run.n
            (i, c, left, rem), = run.take([p])
            if run.n > 1:
                rest = np.delete(run.ctx, p)
                assert run.growth(k) == int((blocks(rest + k, bs) - blocks(rest, bs)).sum())
            run.advance(1)
            run.put(p, i, c + k, 0, rem + k % 3, left)
        elif op == "compact" and run.n:
            keep = np.arange(run.n) % (k % 3 + 2) != 0
            before = run.idx[keep].tolist()
            run.compact(keep)
            assert run.idx.tolist() == before
        ctx = run.ctx
        for k2 in (1, 2, bs - 1, bs, bs + 1, 3 * bs + 5):
            if k2 >= 1:
                want = int((blocks(ctx + k2, bs) - blocks(ctx, bs)).sum())
                assert run.growth(k2) == want
        assert run.full() == int(np.count_nonzero(ctx % bs == 0))
        assert run.ctx_sum == int(ctx.sum())
        assert run.n_prefilling == int(np.count_nonzero(run.left))
        assert run.rem_min == (int(run.rem.min()) if run.n else 0)
        assert (run.held == blocks(ctx, bs)).all()
        if run.rem_min == 0:
            done = run.finished()
            assert sorted(done) == np.flatnonzero(run.rem == 0).tolist()
            gone = set(run.idx[done].tolist())
            left_over = [i for i in run.idx.tolist() if i not in gone]
            run.remove(done)
            assert sorted(run.idx.tolist()) == sorted(left_over)
            assert run.rem_min == (int(run.rem.min()) if run.n else 0)


def arrival_process_times(arrivals):
    """What `Engine._arrivals` does to SimPy's clock: (time, end) per handling step."""
    now, out = 0.0, []
    ends = (np.flatnonzero(np.diff(arrivals)) + 1).tolist() + [len(arrivals)]
    start = 0
    for end in ends:
        t = float(arrivals[start])
        if t > now:
            now = now + (t - now)
            out.append([now, end])
        elif out:
            out[-1][1] = end
        else:
            out.append([now, end])
        start = end
    return [h for h, _ in out], [e for _, e in out]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1e6, allow_nan=False),
                          st.integers(0, 50).map(lambda q: q / 3)), min_size=1, max_size=30))
def test_fire_times_are_the_arrival_process_clock(times):
    arrivals = np.sort(np.asarray(times, dtype=float))
    assert fire_times(arrivals) == arrival_process_times(arrivals)


def test_fire_times_hand_cases():
    # simultaneous arrivals are one step; an arrival at 0 is handled at once
    assert fire_times(np.array([0.0, 0.0, 0.5, 0.5, 0.75])) == ([0.0, 0.5, 0.75], [2, 4, 5])
    assert fire_times(np.array([])) == ([], [])


@given(st.floats(0, 1e9), st.floats(0, 1e9))
def test_an_idle_replica_wakes_exactly_at_the_next_arrival(a, b):
    env = simpy.Environment(initial_time=min(a, b))
    d = delay_to(env.now, max(a, b))
    assert env.now + d <= max(a, b)
    woke = []

    def sleeper():
        yield wake_at(env, max(a, b))
        woke.append(env.now)

    env.process(sleeper())
    env.run()
    assert woke == [max(a, b)]


def test_wake_at_where_no_timeout_lands():
    now, t = 5.960464477539063e-08, 536870912.9707288     # now + d skips t for every d
    assert now + delay_to(now, t) != t
    env = simpy.Environment(initial_time=now)
    event = wake_at(env, t)
    env.run()
    assert event.processed and env.now == t
