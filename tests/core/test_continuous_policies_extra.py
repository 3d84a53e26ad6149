"""The continuous policies beyond fcfs/sjf (`srpt`, `ltr`) and length-aware admission
(`admission=predicted`), hand-computed with the toy cost model of coretoy.py:

    iteration = 1 + 0.5 * rows + 0.125 * (prompt tokens processed in it)
    a pure-decode iteration of r rows = 1 + 0.5 r

plus decisions on hand-built replica views, an ltr(aging=0) == sjf identity on a synthetic
trace, KV/conservation checks under noisy predictions, and hypothesis properties.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coretoy import FixedPredictor, rec, run_toy, small_kv_config, toy_executor, trace
from seqsched.policies import POLICIES, make_policy
from seqsched.policies.continuous import LTRPolicy, SJFPolicy, SRPTPolicy
from seqsched.common.errors import UserError
from seqsched.app.run import RunConfig, simulate
from test_conservation import SETTINGS, check_conservation, runs
from test_continuous_policy import seq, view
from test_kv_capacity import assert_kv_bounded, crowd
from seqsched.traces.arrivals import poisson
from seqsched.traces.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]
CONTINUOUS = ("fcfs", "sjf", "srpt", "ltr")


def times(result, rid):
    r = rec(result, rid)
    return r["first_scheduled_s"], r["first_token_s"], r["finish_s"]


def test_registered():
    assert POLICIES["srpt"] is SRPTPolicy and POLICIES["ltr"] is LTRPolicy
    assert make_policy("ltr").aging == 10.0
    for name in CONTINUOUS:
        assert make_policy(name).admission == "greedy"
        assert make_policy(name, admission="predicted").admission == "predicted"


# -- srpt -------------------------------------------------------------------------------
def test_srpt_preempts_the_most_remaining_work_sjf_the_longest_prediction():
    # three decode rows at 8 tokens (2 full blocks of 4), each needing a third block; 1 free
    a = seq(0, 1, 20, predicted=9, prefilled=1, generated=7, blocks=2)   # remaining 2
    b = seq(1, 7, 20, predicted=8, prefilled=7, generated=1, blocks=2)   # remaining 7
    c = seq(2, 4, 20, predicted=5, prefilled=4, generated=4, blocks=2)   # remaining 1
    sjf, srpt = SJFPolicy(), SRPTPolicy()
    assert sjf.schedule(view(sjf, [a, b, c], blocks=7)).preempt == [a]
    assert srpt.schedule(view(srpt, [a, b, c], blocks=7)).preempt == [b]


def test_srpt_admits_by_remaining_work():
    # a resumed request (kept 8 of its predicted 12 -> 4 left) goes before a fresh one
    # predicted at 6; sjf looks at the whole prediction and takes the fresh one first
    resumed = seq(0, 8, 20, arrival=0.0, predicted=12, generated=8, running=False)
    resumed.recomputed = 8
    fresh = seq(1, 8, 20, arrival=1.0, predicted=6, running=False)
    for pol, first in ((SRPTPolicy(), "s0"), (SJFPolicy(), "s1")):
        step = pol.schedule(view(pol, [], waiting=[resumed, fresh], blocks=64))
        assert step.seqs[0].id == first


def _srpt_run(policy):
    # KV: 32 tokens in blocks of 4 -> 8 blocks. r0 and r1 (8 + 12 tokens each) cannot both
    # finish in it; r2 arrives while the preempted r1 waits
    cfg = small_kv_config(32, policy=policy, block_size=4)
    t = trace([("r0", 0, 8, 12), ("r1", 0, 8, 12), ("r2", 20.0, 4, 2)])
    return simulate(t, cfg, predictor=FixedPredictor([12, 12, 6]), executor=toy_executor())


def test_srpt_resumes_the_preempted_request_before_a_shorter_fresh_one():
    # common start (every policy): e1 both prefill: 1 + 1 + 0.125*16 = 4 (TTFT), KV bounds
    #   the event to 8 iterations: + 7 * 2 -> 18; each holds 16 tokens (8 generated).
    # e2 at 18: r1 is preempted (equal keys: the later index goes), keeping its 8 tokens;
    #   r0 decodes alone, 1.5 each; r2 arrives at 20 -> the event stops at 21 (r0 has 10,
    #   holds 5 blocks; 3 free)
    srpt = _srpt_run("srpt")
    # srpt at 21: r1 has 12 - 8 = 4 left, r2 is predicted 6: r1 is the head but its resume
    #   (16-token prefill -> blocks(17) = 5) does not fit 3 free blocks; r2 waits behind it.
    #   r0's last 2 tokens: -> 24.
    # e4 at 24: r1 (16-token resume) + r2 (4): 1 + 1 + 0.125*20 = 4.5 -> 28.5 (r1 token 9,
    #   r2 TTFT); 2 iterations to r2's end: + 2 -> 30.5
    # e5: r1's last 2 tokens: + 3 -> 33.5
    assert times(srpt, "r0") == (0.0, 4.0, 24.0)
    assert times(srpt, "r1") == (0.0, 4.0, 33.5)
    assert times(srpt, "r2") == (24.0, 28.5, 30.5)
    assert list(srpt.steps["end_s"]) == [18.0, 21.0, 24.0, 30.5, 33.5]
    assert srpt.summary["preemptions"] == 1
    # sjf at 21: r2 (predicted 6) goes before r1 (12) and fits (blocks(5) = 2):
    #   r0 decode + r2 prefill: 1 + 1 + 0.5 = 2.5 -> 23.5; + 2 -> 25.5, both done.
    #   r1: 16-token resume 1 + 0.5 + 2 = 3.5 -> 29; 3 decodes -> 33.5
    sjf = _srpt_run("sjf")
    assert times(sjf, "r0") == (0.0, 4.0, 25.5)
    assert times(sjf, "r2") == (21.0, 23.5, 25.5)
    assert times(sjf, "r1") == (0.0, 4.0, 33.5)
    assert list(sjf.steps["end_s"]) == [18.0, 21.0, 25.5, 33.5]
    # fcfs puts r1 (arrived at 0) first too: here it decides as srpt
    fcfs = _srpt_run("fcfs")
    pd.testing.assert_frame_equal(fcfs.records, srpt.records)


# -- ltr --------------------------------------------------------------------------------
def _ltr_case(policy, t_b, **params):
    # r0 holds the only seat (max_num_seqs=1) until 2.5 + 9 * 1.5 = 16; meanwhile A (long,
    # predicted 10) arrives at 0.5 and B (short, predicted 4) at t_b
    rows = [("r0", 0, 8, 10), ("A", 0.5, 8, 4), ("B", t_b, 8, 2)]
    return run_toy(rows, policy, predicted=[1, 10, 4],
                   policy_params={"max_num_seqs": 1, **params})


A_FIRST = {"A": (16.0, 18.5, 23.0), "B": (23.0, 25.5, 27.0)}
B_FIRST = {"B": (16.0, 18.5, 20.0), "A": (20.0, 22.5, 27.0)}


@pytest.mark.parametrize("t_b, expect", [(3.0, B_FIRST), (3.5, A_FIRST), (4.0, A_FIRST)])
def test_ltr_aging_lets_an_old_long_request_overtake_exactly_when_due(t_b, expect):
    # aging 2 tokens/s: keys A = 10 + 2 * 0.5 = 11, B = 4 + 2 * t_b. B goes first iff
    # 4 + 2 t_b < 11, i.e. t_b < 3.5; at 3.5 the keys tie and the earlier arrival (A) wins.
    # A (P 8, 4 tokens): 2.5 + 3 * 1.5 = 7; B (P 8, 2 tokens): 2.5 + 1.5 = 4
    res = _ltr_case("ltr", t_b, aging=2.0)
    assert times(res, "r0") == (0.0, 2.5, 16.0)
    for rid, want in expect.items():
        assert times(res, rid) == want, rid


@pytest.mark.parametrize("t_b", [3.0, 3.5, 4.0, 15.0])
def test_ltr_without_aging_is_sjf_and_fcfs_ignores_predictions(t_b):
    ltr0 = _ltr_case("ltr", t_b, aging=0)
    sjf = _ltr_case("sjf", t_b)
    pd.testing.assert_frame_equal(ltr0.records, sjf.records)
    for rid, want in B_FIRST.items():
        assert times(sjf, rid) == want
    fcfs = _ltr_case("fcfs", t_b)
    for rid, want in A_FIRST.items():
        assert times(fcfs, rid) == want


def test_ltr_static_key_is_linear_aging_at_every_instant():
    # dyadic values: every score below is exact, so orders (ties included) compare exactly
    rng = np.random.default_rng(0)
    aging = 2.5
    pol = LTRPolicy(aging=aging)
    seqs = [seq(i, 8, 9, arrival=float(a) / 8, predicted=int(p), running=False)
            for i, (a, p) in enumerate(zip(rng.integers(0, 200, 60), rng.integers(1, 300, 60)))]
    by_key = sorted(seqs, key=pol.priority)
    latest = max(s.arrival_s for s in seqs)
    for t in (latest, latest + 0.5, latest + 37.25, latest + 1e4):
        aged = sorted(seqs, key=lambda s: (s.predicted - aging * (t - s.arrival_s),
                                           s.arrival_s, s.idx))
        assert aged == by_key


def test_ltr_preempts_the_highest_aged_key():
    # keys: a = 20 + 10 * 0 = 20, b = 5 + 10 * 3 = 35, c = 30 + 10 * 0.5 = 35 (ties: the
    # later arrival, b, is the lowest priority)
    a = seq(0, 4, 20, arrival=0.0, predicted=20, prefilled=4, generated=4, blocks=2)
    b = seq(1, 4, 20, arrival=3.0, predicted=5, prefilled=4, generated=4, blocks=2)
    c = seq(2, 4, 20, arrival=0.5, predicted=30, prefilled=4, generated=4, blocks=2)
    pol = LTRPolicy(aging=10.0)
    assert pol.schedule(view(pol, [a, b, c], blocks=7)).preempt == [b]
    sjf = SJFPolicy()
    assert sjf.schedule(view(sjf, [a, b, c], blocks=7)).preempt == [c]


@pytest.fixture(scope="module")
def synth200():
    return poisson(generate("alpaca-vicuna", 200, seed=5), 8.0, seed=5)


SMALL_13B = dict(model="llama-13b", gpu="A100-40GB", memory_fraction=0.72, predictor="noisy",
                 predictor_params={"seed": 1, "scale": 80.0})


def test_ltr_without_aging_equals_sjf_bit_for_bit(synth200):
    # KV of ~3.4k tokens: queueing and preemption both happen, so the order matters
    sjf = simulate(synth200, RunConfig(policy="sjf", **SMALL_13B))
    ltr = simulate(synth200, RunConfig(policy="ltr", policy_params={"aging": 0}, **SMALL_13B))
    assert sjf.summary["preemptions"] > 0
    pd.testing.assert_frame_equal(sjf.records, ltr.records)
    pd.testing.assert_frame_equal(sjf.steps, ltr.steps)
    assert sjf.records.to_csv().encode() == ltr.records.to_csv().encode()
    # and with aging the order does change
    aged = simulate(synth200, RunConfig(policy="ltr", policy_params={"aging": 10.0},
                                        **SMALL_13B))
    assert not aged.records["finish_s"].equals(sjf.records["finish_s"])


# -- admission=predicted ----------------------------------------------------------------
def test_predicted_admission_reserves_the_running_rows_predicted_output():
    # d: 4 + 1 tokens in 2 blocks, predicted 20 -> will hold blocks(24) = 6: reserves 4.
    # 8 blocks, 6 free; w (4-token prompt, predicted 8): now blocks(5) = 2, in the end
    # blocks(12) = 3. Greedy admits it; predicted: 2 + 1 > 6 - 4 -> waits.
    d = seq(0, 4, 30, predicted=20, prefilled=4, generated=1, blocks=2)
    w = seq(1, 4, 8, arrival=1.0, predicted=8, running=False)
    greedy, pred = SJFPolicy(), SJFPolicy(admission="predicted")
    assert greedy.schedule(view(greedy, [d], waiting=[w], blocks=8)).seqs == [d, w]
    assert pred.schedule(view(pred, [d], waiting=[w], blocks=8)).seqs == [d]
    # predicted 4 instead: it will never need more than the 2 blocks it takes now -> admitted
    w4 = seq(1, 4, 8, arrival=1.0, predicted=4, running=False)
    assert pred.schedule(view(pred, [d], waiting=[w4], blocks=8)).seqs == [d, w4]


def test_a_row_past_its_prediction_reserves_one_block():
    # d has generated 21 of a predicted 20: 25 tokens in 7 blocks, reserves 1 more.
    # 11 blocks, 4 free -> 3 left: w (blocks(5) = 2, predicted 4 -> blocks(8) = 2) fits,
    # then v (2 blocks now) does not; greedy takes both
    d = seq(0, 4, 40, predicted=20, prefilled=4, generated=21, blocks=7)
    w = seq(1, 4, 4, arrival=1.0, predicted=4, running=False)
    v = seq(2, 4, 4, arrival=2.0, predicted=4, running=False)
    pol = make_policy("fcfs", admission="predicted")
    assert pol.schedule(view(pol, [d], waiting=[w, v], blocks=11)).seqs == [d, w]
    greedy = make_policy("fcfs")
    assert greedy.schedule(view(greedy, [d], waiting=[w, v], blocks=11)).seqs == [d, w, v]


def test_a_prediction_above_the_whole_memory_still_runs_on_an_empty_replica():
    # 8 blocks; predicted 1000 tokens: never fits a reservation, admitted when alone
    w = seq(0, 4, 5, predicted=1000, running=False)
    v = seq(1, 4, 5, arrival=1.0, predicted=2, running=False)
    pol = make_policy("sjf", admission="predicted")
    step = pol.schedule(view(pol, [], waiting=[w, v], blocks=8))
    assert step.seqs == [v]                     # v (shorter) first, then w cannot reserve
    step = pol.schedule(view(pol, [], waiting=[w], blocks=8))
    assert step.seqs == [w]
    res = simulate(trace([("big", 0, 8, 12), ("small", 0, 8, 3)]),
                   small_kv_config(32, policy="fcfs", block_size=4,
                                   policy_params={"admission": "predicted"}),
                   predictor=FixedPredictor([1000, 3]), executor=toy_executor())
    assert res.records["generated_tokens"].tolist() == [12, 3]


def _two_in_small_kv(predicted, **params):
    # as test_continuous_hand._preempt_run: 8 blocks of 4, two requests of 8 + 12 tokens
    cfg = small_kv_config(32, policy="fcfs", block_size=4, policy_params=params)
    t = trace([("r0", 0, 8, 12), ("r1", 0, 8, 12)])
    return simulate(t, cfg, predictor=FixedPredictor(predicted), executor=toy_executor())


def test_predicted_admission_with_exact_predictions_never_preempts_hand_case():
    greedy = _two_in_small_kv([12, 12])
    assert greedy.summary["preemptions"] == 1           # r0 24, r1 32 (hand case)
    res = _two_in_small_kv([12, 12], admission="predicted")
    # r0: blocks(9) = 3 now, blocks(20) = 5 in the end -> reserves 2; r1 would need 5 of the
    # 8 - 3 - 2 = 3 left: waits. r0 alone: 1 + 0.5 + 1 = 2.5, + 11 * 1.5 -> 19; r1: 19 + 19
    assert times(res, "r0") == (0.0, 2.5, 19.0)
    assert times(res, "r1") == (19.0, 21.5, 38.0)
    assert res.summary["preemptions"] == 0 and res.summary["recomputed_tokens"] == 0
    assert list(res.steps["end_s"]) == [19.0, 38.0]
    assert res.records["generated_tokens"].sum() == greedy.records["generated_tokens"].sum()


def test_predicted_admission_under_prediction_falls_back_to_preemption():
    # predicted 4 of 12: each reserves blocks(12) - 3 = 0, both are admitted, and the run
    # is the greedy hand case exactly (r1 preempted at 18, r0 done 24, r1 32)
    res = _two_in_small_kv([4, 4], admission="predicted")
    greedy = _two_in_small_kv([4, 4])
    pd.testing.assert_frame_equal(res.records, greedy.records)
    assert times(res, "r0") == (0.0, 4.0, 24.0) and times(res, "r1") == (0.0, 4.0, 32.0)
    assert res.summary["preemptions"] == 1


@pytest.mark.parametrize("policy", CONTINUOUS)
def test_predicted_admission_with_the_oracle_removes_preemption(policy):
    t = crowd(n=16)
    runs_ = {a: simulate(t, small_kv_config(256, policy=policy, predictor="oracle",
                                            policy_params={"admission": a}))
             for a in ("greedy", "predicted")}
    assert runs_["greedy"].summary["preemptions"] > 0
    assert runs_["predicted"].summary["preemptions"] == 0
    for res in runs_.values():
        assert len(res.records) == len(t) and res.records["id"].is_unique
        np.testing.assert_array_equal(res.records["generated_tokens"], t.output_tokens)
        assert_kv_bounded(res)
    assert (runs_["predicted"].records["generated_tokens"].sum()
            == runs_["greedy"].records["generated_tokens"].sum() == t.output_tokens.sum())


def test_predicted_admission_with_noisy_predictions_stays_within_kv():
    preempted = 0
    for policy in CONTINUOUS:
        for seed in range(3):
            t = crowd(n=20, seed=seed, spread=3.0)
            cfg = small_kv_config(256, policy=policy, predictor="noisy",
                                  predictor_params={"scale": 40.0, "seed": seed},
                                  policy_params={"admission": "predicted"})
            res = simulate(t, cfg, executor=toy_executor())
            assert len(res.records) == len(t) and res.records["id"].is_unique
            assert sorted(res.records["id"]) == sorted(t.ids.tolist())
            np.testing.assert_array_equal(res.records["generated_tokens"], t.output_tokens)
            assert_kv_bounded(res)
            preempted += res.summary["preemptions"]
    assert preempted > 0            # under-predictions did run the memory out somewhere


# -- hypothesis: conservation and the KV bound ------------------------------------------
@st.composite
def extra_runs(draw, policy, small_kv, admission=None):
    t, cfg, executor = draw(runs(policy, small_kv))
    params = dict(cfg.policy_params,
                  admission=admission or draw(st.sampled_from(["greedy", "predicted"])))
    if policy == "ltr":
        params["aging"] = draw(st.sampled_from([0, 0.5, 10.0, 1000.0]))
    return t, dataclasses.replace(cfg, policy_params=params), executor


def _property(policy, small_kv=False, admission=None):
    @SETTINGS
    @given(extra_runs(policy, small_kv, admission))
    def prop(case):
        t, cfg, executor = case
        res = simulate(t, cfg, executor=executor)
        check_conservation(t, cfg, res)
        if cfg.policy_params["admission"] == "predicted" and cfg.predictor == "oracle":
            assert res.summary["preemptions"] == 0
    return prop


test_srpt_conservation = _property("srpt")
test_srpt_conservation_small_kv = _property("srpt", small_kv=True)
test_ltr_conservation = _property("ltr")
test_ltr_conservation_small_kv = _property("ltr", small_kv=True)
test_fcfs_predicted_admission_small_kv = _property("fcfs", small_kv=True, admission="predicted")
test_sjf_predicted_admission_small_kv = _property("sjf", small_kv=True, admission="predicted")


# -- bad parameters ---------------------------------------------------------------------
@pytest.mark.parametrize("policy, params, needle", [
    ("fcfs", {"admission": "maybe"}, "unknown admission 'maybe'; use greedy or predicted"),
    ("srpt", {"admission": 3}, "admission must be a word, got 3"),
    ("ltr", {"aging": "abc"}, "aging must be a number, got 'abc'"),
    ("ltr", {"aging": True}, "aging must be a number, got True"),
    ("ltr", {"aging": -1.0}, "aging must be a number >= 0"),
    ("ltr", {"aging": float("inf")}, "aging must be a number >= 0"),
    ("sjf", {"agin": 1.0}, "policy sjf has no parameter agin"),
    ("sjf", {"aging": -2}, "aging must be a number >= 0"),
])
def test_bad_parameters_are_user_errors(policy, params, needle):
    with pytest.raises(UserError) as e:
        simulate(trace([("a", 0, 8, 4)]), RunConfig(policy=policy, policy_params=params))
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("args", [
    ["simulate", "synth:alpaca-vicuna", "-n", "5", "--policy", "ltr", "--policy-param",
     "aging=abc"],
    ["compare", "synth:alpaca-vicuna", "-n", "5", "--policies", "fcfs",
     "sjf:admission=maybe"],
])
def test_cli_bad_parameter_is_one_line_exit_2(args, tmp_path):
    r = subprocess.run([sys.executable, "-m", "seqsched.app.cli", *args, "--out", str(tmp_path / "o")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqsched: error:"), r.stderr
    assert "aging" in lines[0] or "admission" in lines[0]
