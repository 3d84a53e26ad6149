"""vLLM 0.19's two scheduler switches: `scheduler_reserve_full_isl` (policy parameter
`reserve_full_isl`: admit only if the whole prompt's KV blocks are free) and
`async_scheduling` (sim/async_lag.py: admissions and frees one iteration late). Hand-computed
with the toy cost model (coretoy: iteration = 1 + 0.5 rows + 0.125 prompt tokens), then
properties on random traces."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqsched.app.run import RunConfig, prepare, simulate
from seqsched.app.vllm_args import add_vllm_options, version_defaults, vllm_settings
from seqsched.common.errors import UserError
from seqsched.sim.engine import Engine
from seqsched.sim.fast.engine import FastEngine

from tests.core.coretoy import FixedPredictor, rec, small_kv_config, toy_executor, trace


def run(rows, capacity=100_000, block=16, engine="auto", **params):
    cfg = small_kv_config(capacity, policy="fcfs", policy_params=params, block_size=block,
                          engine=engine)
    return simulate(trace(rows), cfg, predictor=FixedPredictor([r[3] for r in rows]),
                    executor=toy_executor())


# -- reserve_full_isl ------------------------------------------------------------------------
TIGHT = [("a", 0.0, 12, 8), ("b", 0.0, 20, 2)]      # 8 blocks of 4 tokens
TIGHT_KW = dict(capacity=32, block=4, chunked_prefill=True, max_batched_tokens=16)


def test_without_the_gate_the_first_chunk_gets_in_and_is_preempted():
    # step 1: a's 12 tokens (blocks_for(13) = 4) + b's first 4 (blocks_for(5) = 2): 2 free;
    # step 2: b's next chunk of 15 needs 3 more blocks -> b (the later, by trace order) goes
    r = run(TIGHT, **TIGHT_KW)
    b = rec(r, "b")
    assert b["first_scheduled_s"] == 0.0
    assert b["preemptions"] >= 1


def test_with_the_gate_a_prompt_whose_blocks_are_not_free_waits():
    # b's whole prompt needs blocks_for(20) = 5 blocks; 8 - a's 4 = 4 are free, though its
    # first chunk (2 blocks) would fit. a runs alone: prefill 1 + 0.5 + 12/8 = 3.0, then 7
    # decodes of 1.5 -> a ends at 13.5 and frees its blocks; b starts there
    r = run(TIGHT, reserve_full_isl=True, **TIGHT_KW)
    a, b = rec(r, "a"), rec(r, "b")
    assert a["first_token_s"] == 3.0 and a["finish_s"] == 13.5
    assert b["first_scheduled_s"] == 13.5
    assert r.records["preemptions"].sum() == 0


def test_the_gate_counts_a_resumed_request_prompt_plus_kept_output():
    # `reserve_full_isl` uses vLLM's request.num_tokens: a preempted request's kept output
    # counts too. Without the gate b is preempted holding output; both runs finish everything
    for gate in (False, True):
        r = run(TIGHT + [("c", 0.0, 4, 3)], reserve_full_isl=gate, **TIGHT_KW)
        assert (r.records["generated_tokens"] == r.records["output_tokens"]).all()


def test_the_array_engine_applies_the_gate_identically():
    for gate in (False, True):
        cfgs = [small_kv_config(32, policy="fcfs", block_size=4, engine=e,
                                policy_params={"reserve_full_isl": gate,
                                               "chunked_prefill": True,
                                               "max_batched_tokens": 16})
                for e in ("baseline", "fast")]
        a, b = (simulate(trace(TIGHT), c, executor=toy_executor()) for c in cfgs)
        assert a.records.equals(b.records) and a.steps.equals(b.steps)


# -- async scheduling ------------------------------------------------------------------------
MID = [("a", 0.0, 10, 5), ("b", 0.3, 10, 3), ("c", 0.3, 20, 4)]
MID_KW = dict(chunked_prefill=True, max_batched_tokens=64)


@pytest.mark.parametrize("engine", ["baseline", "fast"])
def test_an_arrival_during_a_step_is_admitted_one_iteration_later(engine):
    # a's prefill runs 0 -> 2.75 (1 + 0.5 + 10/8); b and c arrive at 0.3, during it
    sync = run(MID, engine=engine, **MID_KW)
    assert rec(sync, "b")["first_scheduled_s"] == 2.75
    assert rec(sync, "b")["first_token_s"] == 2.75 + 1 + 1.5 + 30 / 8     # 9.0
    # async: the plan of the step after 2.75 was made at 0, before they arrived: a decodes
    # alone (2.75 -> 4.25), then b and c join: 4.25 + 6.25 = 10.5
    lag = run(MID, engine=engine, async_scheduling=True, **MID_KW)
    for rid in ("b", "c"):
        assert rec(lag, rid)["first_scheduled_s"] == 4.25
        assert rec(lag, rid)["first_token_s"] == 10.5
    # a decodes without a gap: tokens at 2.75, 4.25, 10.5, 13.0, 15.5
    assert rec(lag, "a")["first_token_s"] == 2.75 and rec(lag, "a")["finish_s"] == 15.5
    assert rec(lag, "c")["finish_s"] == 17.0     # 10.5, 13, 15.5, then alone: + 1.5


@pytest.mark.parametrize("engine", ["baseline", "fast"])
def test_a_finished_request_holds_its_slot_one_iteration_longer(engine):
    rows = [("a", 0.0, 8, 10), ("b", 0.0, 8, 2), ("c", 0.0, 8, 1)]
    # max 2 running. a and b prefill together: 1 + 1 + 2 = 4.0; b's second token at 6.0
    sync = run(rows, engine=engine, max_num_seqs=2)
    assert rec(sync, "b")["finish_s"] == 6.0
    assert rec(sync, "c")["first_scheduled_s"] == 6.0
    assert rec(sync, "c")["finish_s"] == 6.0 + 1 + 1 + 1                   # 9.0
    # async: b's slot is still taken when the step after 6.0 is planned -> a alone (1.5)
    lag = run(rows, engine=engine, max_num_seqs=2, async_scheduling=True)
    assert rec(lag, "b")["finish_s"] == 6.0
    assert rec(lag, "c")["first_scheduled_s"] == 7.5
    assert rec(lag, "c")["finish_s"] == 10.5


@pytest.mark.parametrize("engine", ["baseline", "fast"])
def test_an_idle_gpu_plans_at_once(engine):
    # one slot: b waits for a; when a finishes nothing else runs, so vLLM plans again as soon
    # as a's output is read: b starts when a ends, as without the lag
    rows = [("a", 0.0, 8, 2), ("b", 0.0, 8, 2)]
    for lag in (False, True):
        r = run(rows, engine=engine, max_num_seqs=1, async_scheduling=lag)
        assert rec(r, "b")["first_scheduled_s"] == rec(r, "a")["finish_s"] == 2.5 + 1.5
    # an arrival while idle starts at once too
    r = run([("a", 0.0, 8, 2), ("b", 10.0, 8, 2)], engine=engine, async_scheduling=True)
    assert rec(r, "b")["first_scheduled_s"] == 10.0


def test_async_runs_on_the_array_engine():
    t = trace([("a", 0.0, 10, 5), ("b", 0.1, 20, 7)])
    cfg = RunConfig(policy="fcfs", policy_params={"async_scheduling": True})
    assert isinstance(prepare(t, cfg).engine, FastEngine)
    assert isinstance(prepare(t, dataclasses.replace(cfg, engine="baseline")).engine, Engine)
    assert isinstance(prepare(t, RunConfig(policy="fcfs", policy_params={
        "reserve_full_isl": True})).engine, FastEngine)
    # what the array engine does not cover still falls back, async or not
    swap = RunConfig(policy="fcfs", policy_params={"async_scheduling": True,
                                                    "preemption": "swap"})
    assert isinstance(prepare(t, swap).engine, Engine)
    with pytest.raises(UserError, match="does not cover"):
        prepare(t, dataclasses.replace(swap, engine="fast"))
    with pytest.raises(UserError, match="async-scheduling must be true or false"):
        prepare(t, RunConfig(policy="fcfs", policy_params={"async_scheduling": "yes"}))


# -- the vLLM option names and a recorded run's version ----------------------------------
def _args(*argv):
    p = argparse.ArgumentParser()
    add_vllm_options(p)
    return p.parse_args(list(argv))


def test_vllm_option_names_and_version_defaults():
    params, _ = vllm_settings(_args("--async-scheduling", "--no-scheduler-reserve-full-isl"))
    assert params == {"async_scheduling": True, "reserve_full_isl": False}
    assert vllm_settings(_args())[0] == {}                       # plain simulate: unchanged
    on, _ = vllm_settings(_args(), {"vllm_version": "0.19.0"})
    assert on == {"async_scheduling": True, "reserve_full_isl": True}
    old, _ = vllm_settings(_args(), {"vllm_version": "0.10.1"})
    assert old == {}                                             # not guessed
    recorded, _ = vllm_settings(_args(), {"vllm_version": "0.19.0", "async_scheduling": False})
    assert recorded == {"async_scheduling": False, "reserve_full_isl": True}
    flag, _ = vllm_settings(_args("--no-async-scheduling"), {"vllm_version": "0.20.1"})
    assert flag["async_scheduling"] is False
    assert version_defaults({"vllm_version": "v0.19"})["async_scheduling"] is True


# -- properties ------------------------------------------------------------------------------
@st.composite
def workload(draw):
    n = draw(st.integers(1, 25))
    prompts = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 3.0]), min_size=n, max_size=n))
    rows = [(f"r{i}", float(t), p, o) for i, (t, p, o)
            in enumerate(zip(np.cumsum(gaps), prompts, outputs))]
    block = draw(st.sampled_from([1, 4, 16]))
    need = max(p + o for p, o in zip(prompts, outputs))
    capacity = need + block + draw(st.integers(0, 800))
    params = {"chunked_prefill": True, "max_batched_tokens": draw(st.integers(16, 300)),
              "max_num_seqs": draw(st.sampled_from([1, 2, 5, 64])),
              "preemption": draw(st.sampled_from(["recompute", "restart"]))}
    return rows, capacity, block, params


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload(), st.booleans(), st.booleans())
def test_every_request_completes_in_order_of_events(case, gate, lag):
    rows, capacity, block, params = case
    r = run(rows, capacity, block, reserve_full_isl=gate, async_scheduling=lag, **params)
    df = r.records
    assert (df["generated_tokens"] == df["output_tokens"]).all()
    assert (df["first_scheduled_s"] >= df["arrival_s"]).all()
    assert (df["first_token_s"] > df["first_scheduled_s"]).all()
    assert (df["finish_s"] >= df["first_token_s"]).all()
    assert (r.steps["kv_used_tokens"] <= capacity).all()
    again = run(rows, capacity, block, reserve_full_isl=gate, async_scheduling=lag, **params)
    assert again.records.equals(df) and again.steps.equals(r.steps)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload())
def test_switches_change_nothing_where_they_cannot_bind(case):
    rows, _, block, params = case
    # every request at t = 0 and admitted at once (slots, blocks and token budget for all):
    # no arrival to delay, no slot or block to wait for
    rows = [(i, 0.0, p, o) for i, _, p, o in rows]
    params = dict(params, max_num_seqs=64,
                  max_batched_tokens=sum(p for _, _, p, _ in rows) + len(rows))
    roomy = sum(p + o + block for _, _, p, o in rows) + block
    base = run(rows, roomy, block, **params)
    for switches in ({"reserve_full_isl": True}, {"async_scheduling": True}):
        other = run(rows, roomy, block, **params, **switches)
        assert other.records.equals(base.records)
