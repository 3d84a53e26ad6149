"""The length-aware policies under hypothesis (conservation, KV capacity, determinism) and
their bad input: one UserError line naming the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from coretoy import small_kv_config, toy_executor, trace
from seqsched.app.run import RunConfig, simulate
from seqsched.common.errors import UserError
from seqsched.policies import make_policy
from seqsched.traces.request import Trace

ROOT = Path(__file__).resolve().parents[2]

SPECS = [("mlfq", {"levels": "4,8,32", "prompt_weight": 0.05}, "oracle"),
         ("mlfq", {"quantum": 2, "max_wait_s": 3.0}, "noisy"),
         ("gittins", {"preemptive": True}, "noisy"),
         ("srpt-expected", {"preemptive": True, "preempt_until": 0.5}, "noisy"),
         ("sjf", {"preemptive": True, "aging": 5.0, "max_wait_s": 2.0}, "noisy"),
         ("srpt", {"repredict_every": 3, "repredict_s": 0.01, "repredict": "sharpen",
                   "preemptive": True}, "noisy"),
         ("gittins", {"repredict_every": 5, "preemptive": True}, "noisy")]


@st.composite
def workloads(draw):
    n = draw(st.integers(3, 14))
    rows = draw(st.lists(st.tuples(st.floats(0, 4), st.integers(4, 40), st.integers(1, 40)),
                         min_size=n, max_size=n))
    rows.sort(key=lambda r: r[0])
    return Trace(pd.DataFrame({"id": [f"r{i}" for i in range(n)],
                               "arrival_s": [r[0] for r in rows],
                               "prompt_tokens": [r[1] for r in rows],
                               "output_tokens": [r[2] for r in rows]}))


@pytest.mark.parametrize("policy, params, predictor", SPECS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=workloads(), seqs=st.integers(1, 4), mode=st.sampled_from(["recompute", "restart"]),
       tokens=st.sampled_from([None, 8, 16]))
def test_everyone_finishes_once_within_kv(policy, params, predictor, t, seqs, mode, tokens):
    budget = {} if tokens is None else {"max_batched_tokens": tokens, "chunked_prefill": True}
    cfg = small_kv_config(160, policy=policy, predictor=predictor, block_size=4,
                          predictor_params={"scale": 10.0} if predictor == "noisy" else {},
                          policy_params={**params, "max_num_seqs": seqs, "preemption": mode,
                                         **budget})
    res = simulate(t, cfg, executor=toy_executor())
    r = res.records
    assert len(r) == len(t) and r["id"].is_unique
    np.testing.assert_array_equal(r["generated_tokens"], t.output_tokens)
    assert (r["finish_s"] >= r["first_token_s"]).all()
    assert (r["first_token_s"] >= r["first_scheduled_s"]).all()
    assert (r["first_scheduled_s"] >= r["arrival_s"]).all()
    assert (r["attempts"] == r["preemptions"] + 1).all()
    assert (res.steps["kv_used_tokens"] <= res.kv_capacity_tokens).all()
    gen = res.steps[res.steps["kind"] == "generate"]
    assert (gen["rows"] <= seqs).all()
    again = simulate(t, cfg, executor=toy_executor())
    pd.testing.assert_frame_equal(res.records, again.records)


@pytest.mark.parametrize("policy, params, needle", [
    ("mlfq", {"quantum": 0}, "quantum must be a whole number of tokens > 0"),
    ("mlfq", {"quantum": -4}, "quantum must be a whole number of tokens > 0"),
    ("mlfq", {"levels": ""}, "levels must list at least one quantum"),
    ("mlfq", {"levels": "32,16"}, "levels must be sorted ascending"),
    ("mlfq", {"levels": "8,0"}, "every quantum in levels must be > 0"),
    ("mlfq", {"quantum_ratio": 0.5}, "quantum-ratio must be a number >= 1"),
    ("sjf", {"repredict_every": 0}, "repredict-every must be a whole number of tokens > 0"),
    ("gittins", {"repredict": "magic"}, "unknown repredict 'magic'"),
    ("srpt", {"max_wait_s": -1}, "max-wait-s must be a number >= 0"),
    ("srpt", {"preempt_until": -0.5}, "preempt-until must be a number >= 0"),
])
def test_bad_parameters(policy, params, needle):
    with pytest.raises(UserError) as e:
        make_policy(policy, **params)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("policy, params", [("gittins", {}), ("srpt-expected", {}),
                                            ("sjf", {"repredict_every": 4})])
def test_distribution_policy_without_a_distribution_names_the_predictors_that_have_one(
        policy, params):
    cfg = RunConfig(policy=policy, predictor="none", policy_params=params)
    with pytest.raises(UserError) as e:
        simulate(trace([("a", 0, 8, 4)]), cfg, executor=toy_executor())
    msg = str(e.value)
    assert "predictor none gives none" in msg and "oracle" in msg and "noisy" in msg
    assert "proxy" in msg and "\n" not in msg


def test_cli_bad_levels_is_one_line_exit_2():
    p = subprocess.run([sys.executable, "-m", "seqsched.app.cli", "simulate", "synth:alpaca-vicuna",
                        "-n", "20", "--policy", "mlfq", "--policy-param", "levels=64,16"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert p.stderr.startswith("seqsched: error: ") and "sorted ascending" in p.stderr


def test_a_displaced_row_hands_back_its_token_budget():
    """One slot, an 8-token budget: the running prompt's chunk takes the whole budget. When a
    shorter request displaces it, the victim's chunk must go back to admission, or the step
    admits nothing, preempts nothing and the replica stalls ("scheduled nothing")."""
    t = Trace(pd.DataFrame({"id": ["long", "short"], "arrival_s": [0.0, 0.5],
                            "prompt_tokens": [40, 4], "output_tokens": [30, 2]}))
    cfg = small_kv_config(400, policy="sjf", predictor="oracle", block_size=4,
                          policy_params={"preemptive": True, "max_num_seqs": 1,
                                         "max_batched_tokens": 8, "chunked_prefill": True})
    r = simulate(t, cfg, executor=toy_executor()).records.set_index("id")
    assert r.loc["short", "preemptions"] == 0 and r.loc["long", "preemptions"] == 1
    assert r.loc["short", "finish_s"] < r.loc["long", "first_token_s"]
    np.testing.assert_array_equal(r.loc[["long", "short"], "generated_tokens"], [30, 2])
