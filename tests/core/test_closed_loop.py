"""vLLM bench's --max-concurrency (sim/client.py): a closed-loop client, hand-computed with the
toy cost model of coretoy.py (iteration = 1 + 0.5 rows + 0.125 prompt tokens in it; a
pure-decode iteration of r rows = 1 + 0.5 r), plus properties on random small traces.

The hand cases run on both engines (the array engine drives the same client, sim/fast/).
Records of a capped run: `arrival_s` is the send (when the server got the request; TTFT and
latency count from it, as vLLM bench times them), `client_arrival_s` the trace's arrival.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coretoy import rec, run_toy, toy_executor, trace
from seqsched.app.run import RunConfig, execute, prepare
from seqsched.common.errors import UserError
from seqsched.sim.client import ClosedLoop
from seqsched.sim.engine import Engine
from seqsched.sim.fast.engine import FastEngine


def at(result, rid):
    r = rec(result, rid)
    return (r["client_arrival_s"], r["arrival_s"], r["first_scheduled_s"], r["first_token_s"],
            r["finish_s"])


ENGINES = pytest.mark.parametrize("engine", ["baseline", "fast"])


@ENGINES
def test_one_in_flight_serialises_requests(engine):
    res = run_toy([("a", 0, 8, 2), ("b", 0, 8, 3), ("c", 0, 16, 1)], "fcfs", max_concurrency=1,
                  engine=engine)
    # a: prefill 1 + 0.5 + 0.125*8 = 2.5, one decode 1.5 -> done 4.0
    # b: sent when a finishes (4.0): prefill 2.5 -> 6.5, two decodes 3.0 -> 9.5
    # c: sent at 9.5: prefill 1 + 0.5 + 0.125*16 = 3.5 -> 13.0 (one token)
    assert at(res, "a") == (0.0, 0.0, 0.0, 2.5, 4.0)
    assert at(res, "b") == (0.0, 4.0, 4.0, 6.5, 9.5)
    assert at(res, "c") == (0.0, 9.5, 9.5, 13.0, 13.0)
    assert list(res.steps["start_s"]) == [0.0, 4.0, 9.5]
    # TTFT from the send: 2.5, 2.5, 3.5
    ttft = res.records["first_token_s"] - res.records["arrival_s"]
    assert ttft.tolist() == [2.5, 2.5, 3.5]


@ENGINES
def test_an_arrival_waits_for_a_slot_and_is_sent_at_a_finish(engine):
    res = run_toy([("a", 0, 8, 3), ("b", 0, 8, 3), ("c", 1, 8, 1)], "fcfs", max_concurrency=2,
                  engine=engine)
    # a, b prefill together: 1 + 1 + 0.125*16 = 4.0, two decodes of 2 rows: 8.0 (both done).
    # c arrives at 1 with 2 in flight: not sent, so the step is not cut at 1 (open loop would
    # stop at 4.0 and admit c there); a's finish at 8.0 sends it: 1 + 0.5 + 1 = 2.5 -> 10.5
    assert at(res, "a")[-1] == at(res, "b")[-1] == 8.0
    assert at(res, "c") == (1.0, 8.0, 8.0, 10.5, 10.5)
    assert list(res.steps["iterations"]) == [3, 1]
    open_loop = run_toy([("a", 0, 8, 3), ("b", 0, 8, 3), ("c", 1, 8, 1)], "fcfs")
    assert rec(open_loop, "c")["first_scheduled_s"] == 4.0


@ENGINES
def test_a_send_from_another_replica_cuts_a_running_step(engine):
    rows = [("a", 0, 8, 2), ("b", 0, 8, 6), ("c", 0, 8, 1), ("d", 0, 8, 1)]
    res = run_toy(rows, "fcfs", max_concurrency=2, replicas=2, router="round-robin",
                  engine=engine)
    # a -> r0, b -> r1 at 0; c, d wait. r0: a 2.5 + 1.5 -> 4.0. r1 plans b at 0 with the cap
    # binding: the next send is no sooner than r0's step end (4.0), so b stops at 4.0 (2 its).
    # 4.0: a's slot sends c (-> r0): 2.5 -> 6.5; r1 replans b: next send >= 6.5 -> 2 its, 7.0.
    # 6.5: c's slot sends d (-> r1); 7.0: r1 admits d beside b: 1 + 1 + 1 = 3 -> 10.0 (d done,
    # b has 5 of 6); b alone 1.5 -> 11.5
    assert at(res, "c") == (0.0, 4.0, 4.0, 6.5, 6.5)
    assert at(res, "d") == (0.0, 6.5, 7.0, 10.0, 10.0)
    assert at(res, "b")[-1] == 11.5
    r1 = res.steps[res.steps["replica"] == 1]
    assert list(zip(r1["start_s"], r1["end_s"], r1["iterations"])) == [
        (0.0, 4.0, 2), (4.0, 7.0, 2), (7.0, 10.0, 1), (10.0, 11.5, 1)]


@ENGINES
def test_async_scheduling_sees_a_send_one_plan_late(engine):
    """A request sent at a finish joins the waiting queue after the plan of the next step was
    made (vLLM's batch queue plans step n+1 while step n runs): it is scheduled one iteration
    after its send. Catches a send that the async lag does not see as a new join (scheduled
    at 6.0, as without the lag) or that joins at its client arrival (0) instead."""
    rows = [("a", 0, 8, 2), ("b", 0, 8, 4), ("c", 0, 8, 1)]
    sync = run_toy(rows, "fcfs", max_concurrency=2, engine=engine)
    # a, b: one step of a prefill (1 + 1 + 0.125*16 = 4.0) and a decode of 2 rows (2.0) -> a
    # done at 6.0, which sends c; c's prefill beside b's decode: 1 + 1 + 1 = 3 -> 9.0; b alone
    # 1.5 -> 10.5
    assert at(sync, "c") == (0.0, 6.0, 6.0, 9.0, 9.0)
    assert at(sync, "b")[-1] == 10.5
    lag = run_toy(rows, "fcfs", max_concurrency=2, engine=engine,
                  policy_params={"async_scheduling": True})
    # async: the plan of the step after 6.0 was made when the decode iteration began (4.0),
    # before c was sent: b decodes alone (1.5 -> 7.5, a's slot still held); the next plan sees
    # c: c's prefill beside b's last decode, 3.0 -> 10.5 (b's 4th token too)
    assert at(lag, "a") == (0.0, 0.0, 0.0, 4.0, 6.0)
    assert at(lag, "c") == (0.0, 6.0, 7.5, 10.5, 10.5)
    assert at(lag, "b")[-1] == 10.5
    assert list(zip(lag.steps["start_s"], lag.steps["end_s"], lag.steps["rows"])) == [
        (0.0, 6.0, 2), (6.0, 7.5, 1), (7.5, 10.5, 2)]


def test_a_cap_of_zero_is_bad_input():
    with pytest.raises(UserError, match="max-concurrency must be >= 1"):
        run_toy([("a", 0, 8, 2)], "fcfs", max_concurrency=0)
    with pytest.raises(UserError, match="max-concurrency must be >= 1"):
        ClosedLoop(0)


def test_auto_runs_a_capped_run_on_the_array_engine():
    t = trace([("a", 0.0, 8, 2)])
    assert isinstance(prepare(t, RunConfig(policy="fcfs", max_concurrency=1)).engine,
                      FastEngine)
    # a feature the array engine does not model still falls back, cap or not
    swap = RunConfig(policy="fcfs", max_concurrency=1, policy_params={"preemption": "swap"})
    assert isinstance(prepare(t, swap).engine, Engine)
    res = run_toy([("a", 0, 8, 2)], "fcfs", max_concurrency=1)      # engine auto
    assert res.records.columns[-1] == "client_arrival_s"


# -- properties ---------------------------------------------------------------------------
@st.composite
def workloads(draw):
    n = draw(st.integers(1, 10))
    arrivals = sorted(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.75, 6.0]),
                                    min_size=n, max_size=n)))
    return [(f"r{i}", a, draw(st.integers(1, 40)), draw(st.integers(1, 8)))
            for i, a in enumerate(arrivals)]


def in_flight_at(records: pd.DataFrame, t: float) -> int:
    """Requests sent and not finished at t (one finishing at t has freed its slot)."""
    return int(((records["arrival_s"] <= t) & (records["finish_s"] > t)).sum())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=workloads(), cap=st.integers(1, 4), replicas=st.integers(1, 2),
       policy=st.sampled_from(["fcfs", "srpt"]))
def test_never_more_than_the_cap_in_flight_and_sent_fifo(rows, cap, replicas, policy):
    cfg = RunConfig(policy=policy, max_concurrency=cap, replicas=replicas,
                    router="least-loaded")
    run = prepare(trace(rows), cfg, executor=toy_executor())
    res = execute(run)
    r = res.records
    # conservation: each request once, all its tokens, every token in the step log, KV back
    assert r["id"].tolist() == [row[0] for row in rows]
    assert r["generated_tokens"].tolist() == [row[3] for row in rows]
    gen = res.steps[res.steps["kind"] == "generate"]
    assert gen["prefill_tokens"].sum() == sum(row[2] for row in rows)
    assert gen["decode_tokens"].sum() == sum(row[3] - 1 for row in rows)
    assert [rep.kv.used_blocks for rep in run.engine.replicas] == [0] * replicas
    # a request is scheduled no sooner than it is sent (the server cannot see it before)
    assert (r["first_scheduled_s"] >= r["arrival_s"]).all()
    assert (r["first_token_s"] > r["first_scheduled_s"]).all()
    sent, arrived, finish = (r[c].to_numpy() for c in ("arrival_s", "client_arrival_s",
                                                        "finish_s"))
    assert np.array_equal(arrived, [row[1] for row in rows])
    assert np.all(sent >= arrived) and np.all(np.diff(sent) >= 0)      # FIFO, never early
    assert max(in_flight_at(r, t) for t in sent) <= cap
    for i in np.flatnonzero(sent > arrived):
        # held back: sent at a finish, when the cap was full just before it
        assert sent[i] in set(finish)
        assert in_flight_at(r, np.nextafter(sent[i], -np.inf)) == cap
    # the client never idles a free slot: whenever fewer than cap are in flight, nothing that
    # has arrived is still waiting
    for t in sorted(set(sent) | set(finish) | set(arrived)):
        waiting = int(((arrived <= t) & (sent > t)).sum())
        assert waiting == 0 or in_flight_at(r, t) == cap


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=workloads(), extra=st.integers(0, 3), replicas=st.integers(1, 2))
def test_a_cap_that_never_binds_is_the_open_loop_run(rows, extra, replicas):
    open_loop = run_toy(rows, "fcfs", replicas=replicas, engine="baseline")
    capped = run_toy(rows, "fcfs", replicas=replicas, max_concurrency=len(rows) + extra)
    records = capped.records
    assert records["client_arrival_s"].equals(records["arrival_s"])
    pd.testing.assert_frame_equal(records.drop(columns="client_arrival_s"), open_loop.records)
    pd.testing.assert_frame_equal(capped.steps, open_loop.steps)
    fast = run_toy(rows, "fcfs", replicas=replicas)                    # the array engine
    pd.testing.assert_frame_equal(records.drop(columns="client_arrival_s"), fast.records)


def test_deterministic():
    rows = [(f"r{i}", i * 0.25, 8 + i, 1 + i % 5) for i in range(12)]
    a = run_toy(rows, "fcfs", max_concurrency=3, replicas=2, router="random", seed=4)
    b = run_toy(rows, "fcfs", max_concurrency=3, replicas=2, router="random", seed=4)
    assert a.records.to_csv() == b.records.to_csv() and a.steps.to_csv() == b.steps.to_csv()
