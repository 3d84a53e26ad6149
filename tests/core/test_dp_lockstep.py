"""DP lockstep (sim/lockstep.py, --dp-lockstep): replicas of one group start each step
together and every member's step ends at the slowest member's end. Hand-computed with the toy
cost model of coretoy.py (iteration = 1 + 0.5 rows + 0.125 prompt tokens), plus conservation
and "no switch, no change"."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coretoy import rec, run_toy, toy_executor, trace
from seqsched.app.run import RunConfig, execute, prepare, simulate
from seqsched.common.errors import UserError


def times(result, rid):
    r = rec(result, rid)
    return r["first_scheduled_s"], r["first_token_s"], r["finish_s"]


def two(rows, lockstep):
    return run_toy(rows, "fcfs", replicas=2, router="round-robin", dp_lockstep=lockstep)


def test_each_step_ends_at_the_slowest_member():
    rows = [("r0", 0, 8, 3), ("r1", 0, 40, 2)]       # r0 -> replica 0, r1 -> replica 1
    free = two(rows, 0)
    # independent: replica 0 prefills 8 tokens in 1 + 0.5 + 1 = 2.5, decodes 1.5 each;
    # replica 1 prefills 40 in 1 + 0.5 + 5 = 6.5, then one decode of 1.5
    assert times(free, "r0") == (0.0, 2.5, 5.5)
    assert times(free, "r1") == (0.0, 6.5, 8.0)
    res = two(rows, 2)
    # lockstep: step 1 = max(2.5, 6.5) = 6.5 for both; step 2 both decode: 6.5 + 1.5 = 8.0
    # (r1 done); step 3 replica 0 alone: 8.0 + 1.5 = 9.5
    assert times(res, "r0") == (0.0, 6.5, 9.5)
    assert times(res, "r1") == (0.0, 6.5, 8.0)
    st_ = res.steps.sort_values(["replica", "start_s"])
    assert list(st_["replica"]) == [0, 0, 0, 1, 1]
    assert list(st_["start_s"]) == [0.0, 6.5, 8.0, 0.0, 6.5]
    assert list(st_["end_s"]) == [6.5, 8.0, 9.5, 6.5, 8.0]
    assert list(st_["iterations"]) == [1, 1, 1, 1, 1]     # one iteration per lockstep step


def test_work_arriving_mid_step_starts_at_the_groups_step_end():
    rows = [("r0", 0, 40, 2), ("r1", 1.0, 8, 1)]     # r1 reaches idle replica 1 mid-step
    assert times(two(rows, 0), "r1") == (1.0, 3.5, 3.5)
    res = two(rows, 2)
    # replica 0's prefill step runs 0 -> 6.5; replica 1 (dummy pass in vLLM) starts r1 at 6.5;
    # step 2: replica 0 decodes 1.5, replica 1 prefills 8 in 2.5 -> both end at 9.0
    assert times(res, "r1") == (6.5, 9.0, 9.0)
    assert times(res, "r0") == (0.0, 6.5, 9.0)


def test_group_of_one_and_off_are_the_plain_engine():
    rows = [(f"q{i}", 0.3 * i, 5 + 7 * i % 30, 1 + 5 * i % 13) for i in range(12)]
    base = run_toy(rows, "fcfs", replicas=2, router="least-loaded")
    for size in (0, 1):
        res = run_toy(rows, "fcfs", replicas=2, router="least-loaded", dp_lockstep=size)
        assert res.records.equals(base.records)
        assert res.steps.equals(base.steps)


def test_lockstep_runs_on_the_object_engine_only():
    cfg = RunConfig(replicas=2, dp_lockstep=2)
    assert "lockstep" in cfg.features()
    with pytest.raises(UserError, match="engine fast"):
        simulate(trace([("a", 0, 4, 2)]), RunConfig(replicas=2, dp_lockstep=2, engine="fast"),
                 executor=toy_executor())
    with pytest.raises(UserError, match="dp-lockstep 2"):
        simulate(trace([("a", 0, 4, 2)]), RunConfig(replicas=3, dp_lockstep=2),
                 executor=toy_executor())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.0, 0.4, 2.0]), st.integers(1, 60),
                          st.integers(1, 30)), min_size=1, max_size=10),
       st.sampled_from(["round-robin", "least-loaded", "vllm-dp"]), st.sampled_from([2, 4]))
def test_conservation_and_aligned_steps(rows, router, replicas):
    arrivals = np.cumsum([g for g, _, _ in rows])
    tr = [(f"q{i}", float(a), p, o) for i, (a, (_, p, o)) in enumerate(zip(arrivals, rows))]
    cfg = RunConfig(policy="fcfs", replicas=replicas, router=router, dp_lockstep=2)
    run = prepare(trace(tr), cfg, executor=toy_executor())
    res = execute(run)
    r = res.records
    assert len(r) == len(tr) and r["id"].is_unique
    assert (r["generated_tokens"] == r["output_tokens"]).all()
    assert (r["arrival_s"] <= r["first_scheduled_s"]).all()
    assert (r["first_scheduled_s"] < r["first_token_s"]).all()
    assert (r["first_token_s"] <= r["finish_s"]).all()
    s = res.steps
    assert int(s["prefill_tokens"].sum()) == int(r["prompt_tokens"].sum())
    assert int(s["decode_tokens"].sum()) == int((r["generated_tokens"] - 1).sum())
    # replica by replica: a record's replica is where its prompt was prefilled and its tokens
    # decoded (a wrong replica id, or a step logged under a group mate, breaks this)
    by = r.groupby("replica")
    logged = s.groupby("replica")[["prefill_tokens", "decode_tokens"]].sum()
    logged = logged.reindex(range(replicas), fill_value=0)
    want = by["prompt_tokens"].sum().reindex(range(replicas), fill_value=0)
    assert logged["prefill_tokens"].tolist() == want.tolist()
    want = (by["generated_tokens"].sum() - by.size()).reindex(range(replicas), fill_value=0)
    assert logged["decode_tokens"].tolist() == want.tolist()
    # every KV block is back at the end, on every member
    assert [rep.kv.used_blocks for rep in run.engine.replicas] == [0] * replicas
    for rep, g in s.groupby("replica"):                  # a replica's steps never overlap
        g = g.sort_values("start_s")
        assert (g["start_s"].to_numpy()[1:] >= g["end_s"].to_numpy()[:-1]).all()
    s = s.assign(group=s["replica"] // 2)
    for _, g in s.groupby(["group", "start_s"]):         # members starting together end together
        assert g["end_s"].nunique() == 1
    # a group's steps never overlap either: a member starts only when the group's step ended
    for _, g in s.groupby("group"):
        spans = g.drop_duplicates("start_s").sort_values("start_s")
        assert (spans["start_s"].to_numpy()[1:] >= spans["end_s"].to_numpy()[:-1]).all()
