"""The array engine (`sim/fast/`) reproduces the object engine (`sim/replica.py`) exactly:
same records (frame and CSV bytes) and step log for random traces, policies, admission and
preemption modes, KV sizes that force preemption, token budgets, routers and arrival patterns
(ties included: the toy cost model's step ends fall on the arrivals' binary fractions)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqsched.app.run import RunConfig, prepare, simulate
from seqsched.common.errors import UserError
from seqsched.sim.engine import Engine
from seqsched.sim.fast.engine import FastEngine

from tests.core.coretoy import FixedPredictor, small_kv_config, toy_executor, trace


def both(rows, cfg, predicted, toy):
    out = {}
    for engine in ("baseline", "fast"):
        c = dataclasses.replace(cfg, engine=engine)
        out[engine] = simulate(trace(rows), c, predictor=FixedPredictor(predicted),
                               executor=toy_executor() if toy else None)
    return out["baseline"], out["fast"]


def assert_same(a, b):
    pd.testing.assert_frame_equal(a.steps, b.steps, check_exact=True)
    pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)
    assert a.records.to_csv(index=False).encode() == b.records.to_csv(index=False).encode()


@st.composite
def scenario(draw, capped=False):
    n = draw(st.integers(1, 30))
    prompts = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    kind = draw(st.sampled_from(["offline", "quarters", "poisson"]))
    if kind == "offline":
        arrivals = [0.0] * n
    elif kind == "quarters":     # exact binary fractions: ties with the toy model's step ends
        arrivals = sorted(q / 4 for q in draw(st.lists(st.integers(0, 200), min_size=n,
                                                        max_size=n)))
    else:
        rate = draw(st.sampled_from([0.5, 5.0, 50.0]))
        seed = draw(st.integers(0, 1000))
        arrivals = np.random.default_rng(seed).exponential(1 / rate, n).cumsum().tolist()
    predicted = [max(0, o + d) for o, d in zip(outputs, draw(st.lists(
        st.integers(-150, 150), min_size=n, max_size=n)))]
    cap = draw(st.one_of(st.none(), st.integers(1, 150)))
    block = draw(st.sampled_from([1, 4, 16]))
    target = [min(o, cap) if cap else o for o in outputs]
    need = max(p + t for p, t in zip(prompts, target))
    capacity = need + block + draw(st.integers(0, 1500))
    policy = draw(st.sampled_from(["fcfs", "sjf", "srpt", "ltr"]))
    chunked = draw(st.booleans())
    params = {"admission": draw(st.sampled_from(["greedy", "predicted"])),
              "preemption": draw(st.sampled_from(["recompute", "restart"])),
              "chunked_prefill": chunked,
              "max_batched_tokens": (draw(st.integers(8, 400)) if chunked
                                     else max(prompts) + draw(st.integers(0, 300))),
              "max_num_seqs": draw(st.sampled_from([1, 3, 8, 256])),
              "max_iterations": draw(st.sampled_from([1, 7, 4096])),
              "reserve_full_isl": draw(st.booleans()),
              "async_scheduling": draw(st.booleans())}
    if policy == "ltr":
        params["aging"] = draw(st.sampled_from([0.0, 10.0, 1000.0]))
    replicas = draw(st.integers(1, 3))
    router = draw(st.sampled_from(["round-robin", "least-loaded", "random"]))
    # vLLM bench's --max-concurrency (sim/client.py): a cap that binds or not
    limit = draw(st.integers(1, n + 1)) if capped else None
    cfg = small_kv_config(capacity, policy=policy, policy_params=params, replicas=replicas,
                          router=router, seed=draw(st.integers(0, 9)), max_new_tokens=cap,
                          block_size=block, max_concurrency=limit)
    rows = [(f"r{i}", a, p, o) for i, (a, p, o) in enumerate(zip(arrivals, prompts, outputs))]
    return rows, cfg, predicted, draw(st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_fast_engine_matches_the_object_engine(case):
    rows, cfg, predicted, toy = case
    a, b = both(rows, cfg, predicted, toy)
    assert_same(a, b)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(capped=True))
def test_a_capped_run_matches_the_object_engine(case):
    """The closed-loop client on both engines: sends (arrival_s), client_arrival_s, steps."""
    rows, cfg, predicted, toy = case
    a, b = both(rows, cfg, predicted, toy)
    assert b.records.columns[-1] == "client_arrival_s"
    assert_same(a, b)


def test_a_preempting_run_is_identical_and_really_preempts():
    rng = np.random.default_rng(4)
    n = 120
    rows = [(f"q{i}", float(t), int(p), int(o)) for i, (t, p, o) in enumerate(zip(
        rng.exponential(1e-5, n).cumsum(), rng.integers(20, 400, n), rng.integers(1, 300, n)))]
    for policy in ("fcfs", "sjf", "srpt", "ltr"):
        cfg = small_kv_config(1500, policy=policy)
        a, b = both(rows, cfg, (np.array([r[3] for r in rows]) * 0.7).astype(int), toy=False)
        assert a.summary["preemptions"] > 20
        assert_same(a, b)


def test_auto_picks_the_array_engine_only_where_it_is_exact():
    t = trace([("a", 0.0, 10, 5), ("b", 0.1, 20, 7)])
    assert isinstance(prepare(t, RunConfig(policy="sjf")).engine, FastEngine)
    assert isinstance(prepare(t, RunConfig(policy="sjf", engine="baseline")).engine, Engine)
    assert isinstance(prepare(t, RunConfig(policy="vanilla")).engine, Engine)
    charged = RunConfig(policy="sjf", predictor="noisy", predictor_params={"query_tokens": 30})
    assert isinstance(prepare(t, charged).engine, Engine)
    # fcfs never reads predictions: no prediction step, nothing charged (issue #16)
    unread = RunConfig(policy="fcfs", predictor="noisy", predictor_params={"query_tokens": 30})
    assert isinstance(prepare(t, unread).engine, FastEngine)
    with pytest.raises(UserError, match="engine fast does not cover"):
        prepare(t, RunConfig(policy="binned", engine="fast"))
    with pytest.raises(UserError, match="unknown engine"):
        prepare(t, RunConfig(policy="fcfs", engine="quick"))


def test_swap_preemption_falls_back_to_the_object_engine():
    t = trace([("a", 0.0, 10, 5), ("b", 0.1, 20, 7)])
    swap = RunConfig(policy="fcfs", policy_params={"preemption": "swap"})
    assert isinstance(prepare(t, swap).engine, Engine)


def test_tensor_parallel_and_moe_roofline_runs_are_identical():
    # the scalar decode timing has no all-reduce or expert term: such models take the
    # vectorised cost model (they used to get the wrong step times)
    from seqsched.traces.synthetic import generate
    t = generate("azure-conv", 200, seed=0, rate=5.0)
    for extra in ({"tp": 2, "model": "llama-2-7b", "gpu": "A100-80GB"},
                  {"tp": 2, "model": "mixtral-8x7b", "gpu": "H100-SXM"}):
        cfg = RunConfig(policy="fcfs", backend="roofline", **extra)
        a, b = (simulate(t, dataclasses.replace(cfg, engine=e)) for e in ("baseline", "fast"))
        assert_same(a, b)
