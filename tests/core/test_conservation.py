"""Conservation laws, as hypothesis properties over random small traces x every policy.

For every run: each request finishes exactly once; generated = min(output, cap) and the sum
over requests matches; arrival <= first_scheduled <= first_token <= finish; token slots add
up (slot_tokens_all = slot_tokens + wasted_tokens); the step log accounts for every token the
records claim; steps of one replica never overlap; KV use never exceeds the capacity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coretoy import small_kv_config, toy_executor, trace
from seqsched.policies import STATIC_POLICIES
from seqsched.app.run import RunConfig, execute, prepare, simulate

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def small_traces(draw, max_n=8, max_prompt=64, max_output=64):
    n = draw(st.integers(1, max_n))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.5, 3.0]),
                         min_size=n, max_size=n))
    arrivals = np.cumsum(gaps)
    prompts = draw(st.lists(st.integers(1, max_prompt), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, max_output), min_size=n, max_size=n))
    return trace([(f"q{i}", float(a), p, o)
                  for i, (a, p, o) in enumerate(zip(arrivals, prompts, outputs))])


def static_params(draw, policy):
    p = {"batch_size": draw(st.integers(1, 4))}
    if policy == "sorted":
        p["pool_size"] = draw(st.integers(1, 8))
    if policy == "binned":
        p.update(vbs=draw(st.booleans()), fcr=draw(st.booleans()),
                 bin_width=draw(st.sampled_from([4, 8, 16, 50])),
                 pool_size=draw(st.integers(1, 8)),
                 vbs_table=draw(st.sampled_from(["paper", "memory"])),
                 max_batch_size=draw(st.integers(1, 8)))
    return p


def continuous_params(draw, small_kv=False):
    chunked = draw(st.booleans())
    return {"max_num_seqs": draw(st.integers(1, 4)),
            "chunked_prefill": chunked,
            # without chunked prefill every prompt must fit the token budget
            "max_batched_tokens": draw(st.integers(8, 96)) if chunked else
            draw(st.integers(64, 200)),
            "max_iterations": draw(st.sampled_from([1, 3, 4096])),
            "preemption": draw(st.sampled_from(["recompute", "restart", "swap"])),
            "async_scheduling": draw(st.booleans())}


@st.composite
def runs(draw, policy, small_kv=False):
    t = draw(small_traces())
    params = (static_params(draw, policy) if policy in STATIC_POLICIES
              else continuous_params(draw, small_kv))
    cap = draw(st.one_of(st.none(), st.integers(1, 80)))
    predictor = draw(st.sampled_from(["oracle", "noisy"]))
    pparams = {}
    if predictor == "noisy":
        pparams = {"scale": draw(st.sampled_from([5.0, 30.0])), "seed": draw(st.integers(0, 9)),
                   "query_tokens": draw(st.sampled_from([0, 0, 4])), "batch_size": 3}
    common = dict(policy=policy, policy_params=params, predictor=predictor,
                  predictor_params=pparams, max_new_tokens=cap,
                  replicas=draw(st.integers(1, 2)),
                  router=draw(st.sampled_from(["round-robin", "least-loaded", "random"])),
                  seed=draw(st.integers(0, 3)),
                  # room for a few victims, or for none (a full space recomputes)
                  swap_space=draw(st.sampled_from([4.0, 2e-5])))
    if small_kv:
        # 128..400 tokens of KV in 16-token blocks; every request (<= 64 + 64) fits in whole
        # blocks, so only contention (preemption) limits it
        cfg = small_kv_config(draw(st.integers(128, 400)), **common)
    else:
        cfg = RunConfig(model="tiny", **common)
    toy = draw(st.booleans())
    return t, cfg, (toy_executor() if toy else None)


def check_conservation(t, cfg, res):
    rec, steps = res.records, res.steps
    n = len(t)
    # every request finishes exactly once
    assert len(rec) == n
    assert sorted(rec["id"]) == sorted(t.ids.tolist())
    assert rec["id"].is_unique
    assert list(rec["id"]) == t.ids.tolist()            # in trace order
    # tokens: generated = min(output, cap) per request and in sum
    static = cfg.policy in STATIC_POLICIES
    cap = cfg.max_new_tokens if cfg.max_new_tokens is not None else (512 if static else None)
    out = t.output_tokens
    want = np.minimum(out, cap) if cap is not None else out
    np.testing.assert_array_equal(rec["output_tokens"].to_numpy(), out)
    np.testing.assert_array_equal(rec["generated_tokens"].to_numpy(), want)
    assert rec["generated_tokens"].sum() == want.sum()
    np.testing.assert_array_equal(rec["truncated"].to_numpy(), out > want)
    # time order
    a, s, f1, fin = (rec[c].to_numpy(dtype=float) for c in
                     ("arrival_s", "first_scheduled_s", "first_token_s", "finish_s"))
    assert not np.isnan(np.stack([s, f1, fin])).any()
    assert (s >= a).all() and (f1 >= s).all() and (fin >= f1).all()
    assert (fin > a).all()
    # attempts and slots
    assert (rec["attempts"] >= 1).all()
    assert (rec["attempts"] == 1 + rec["preemptions"] + rec["failed_attempts"]).all()
    assert (rec["failed_attempts"] >= 0).all() and (rec["wasted_tokens"] >= 0).all()
    np.testing.assert_array_equal(rec["slot_tokens_all"].to_numpy(),
                                  (rec["slot_tokens"] + rec["wasted_tokens"]).to_numpy())
    assert (rec["slot_tokens"] >= rec["generated_tokens"]).all()
    gen = steps[steps["kind"] == "generate"]
    if static:
        assert (rec["preemptions"] == 0).all()
        fcr = cfg.policy == "binned" and cfg.policy_params.get("fcr", True)
        if not fcr:
            assert (rec["failed_attempts"] == 0).all() and (rec["wasted_tokens"] == 0).all()
        else:
            # FCR: a row fails at most once (the recompute runs at the full cap), having run
            # exactly its bin's cap (a multiple of the bin width, below the full cap) and
            # needing more; the rest waste nothing
            failed = rec["failed_attempts"] > 0
            assert (rec["failed_attempts"] <= 1).all()
            assert (rec.loc[~failed, "wasted_tokens"] == 0).all()
            w = rec.loc[failed, "wasted_tokens"]
            assert (w % cfg.policy_params.get("bin_width", 50) == 0).all()
            assert (w < cap).all() and (w > 0).all()
            assert (w < rec.loc[failed, "generated_tokens"]).all()
        # every row of every batch is one attempt and holds `iterations` token slots
        assert gen["rows"].sum() == rec["attempts"].sum()
        assert (gen["rows"] * gen["iterations"]).sum() == rec["slot_tokens_all"].sum()
    else:
        assert (rec["failed_attempts"] == 0).all()
        assert (rec["slot_tokens"] == rec["generated_tokens"]).all()
        assert (rec["wasted_tokens"] <= rec["slot_tokens_all"]).all()
        # every generated token (kept or thrown away) is in the step log: one per prefill
        # completion (one per attempt) plus the logged decode tokens
        decoded = gen["decode_tokens"].sum()
        restart = cfg.policy_params.get("preemption", "recompute") == "restart"
        swap = cfg.policy_params.get("preemption") == "swap"
        # prefix caching: a prefill skips its cached tokens
        cached = rec["cached_tokens"].sum() if "cached_tokens" in rec else 0
        params = cfg.policy_params
        # without chunked prefill a prefill runs whole in one iteration, unless a resumed
        # request's prompt + kept output exceeds the token budget (then it is split)
        # (a request swapped back in after its prefill decodes on with no prefill token)
        whole = not swap and not params.get("chunked_prefill") and (
            restart or (rec["prompt_tokens"] + rec["generated_tokens"]).max()
            <= params.get("max_batched_tokens", 8192))
        if restart:
            # a restart throws its output away; a recompute keeps it
            assert (rec["wasted_tokens"] == 0).sum() >= (rec["preemptions"] == 0).sum()
        else:
            assert (rec["wasted_tokens"] == 0).all()
            assert (rec["slot_tokens_all"] == rec["generated_tokens"]).all()
        moved = rec["recomputed_tokens"] + (rec["swapped_tokens"] if swap else 0)
        assert ((moved > 0) == (rec["preemptions"] > 0)).all()
        if swap:      # a swapped request's KV comes back: only a full swap space recomputes
            assert (gen["prefill_tokens"].sum()
                    == rec["prompt_tokens"].sum() + rec["recomputed_tokens"].sum() - cached)
        if whole:
            assert decoded + rec["attempts"].sum() == rec["slot_tokens_all"].sum()
            # ... and replica by replica: the `replica` of a record is where its tokens ran
            # (a disaggregated request runs on two: checked in sum only)
            if "prefill_replica" not in rec:
                by = rec.groupby("replica")[["attempts", "slot_tokens_all"]].sum()
                logged = gen.groupby("replica")["decode_tokens"].sum()
                np.testing.assert_array_equal(
                    logged.reindex(by.index, fill_value=0).to_numpy()
                    + by["attempts"].to_numpy(), by["slot_tokens_all"].to_numpy())
            # every attempt prefills its prompt (+ the kept output when resumed): the first
            # attempt's prompt plus the KV tokens each preemption discarded
            if restart:
                assert (gen["prefill_tokens"].sum()
                        == (rec["prompt_tokens"] * rec["attempts"]).sum() - cached)
            else:
                assert (gen["prefill_tokens"].sum() == rec["prompt_tokens"].sum()
                        + rec["recomputed_tokens"].sum() - cached)
        else:
            # an attempt preempted mid-prefill produced no token
            assert decoded + n <= rec["slot_tokens_all"].sum() <= decoded + rec["attempts"].sum()
            assert gen["prefill_tokens"].sum() >= rec["prompt_tokens"].sum() - cached
    # steps: positive iterations, no overlap within a replica, KV within capacity
    swaps = steps["kind"] == "swap"          # host copies of preemption=swap
    assert (steps.loc[~swaps, "iterations"] >= 1).all()
    assert (steps.loc[swaps, "iterations"] == 0).all() and (steps.loc[swaps, "rows"] >= 1).all()
    assert (steps["end_s"] >= steps["start_s"]).all()
    for _, g in steps.groupby("replica"):
        g = g.sort_values(["start_s", "end_s"])
        assert (g["start_s"].to_numpy()[1:] >= g["end_s"].to_numpy()[:-1] - 1e-12).all()
    assert (steps["kv_used_tokens"] <= res.kv_capacity_tokens).all()
    assert (steps["kv_used_tokens"] >= 0).all()
    assert res.summary["requests"] == n
    assert res.summary["makespan_s"] == fin.max() - a.min()
    # every request ran on one of the replicas, and a replica with steps served someone
    replicas = cfg.prefill_replicas + cfg.decode_replicas if cfg.prefill_replicas else \
        cfg.replicas
    assert rec["replica"].between(0, replicas - 1).all()
    ran = set(rec["replica"]) | set(rec.get("prefill_replica", pd.Series(dtype=int)))
    assert set(steps["replica"]) <= ran


def check_released(run) -> None:
    """At the end of a run (either engine) every KV block and every swap slot is back: a row
    that finishes, is preempted or is held by async scheduling must free what it took."""
    for r in getattr(run.engine, "replicas", []):
        kv = r.kv                         # both engines: a KVCache per replica
        assert kv.used_blocks == 0, f"replica {r.index}: {kv.used_blocks} KV blocks leaked"
        assert not r.waiting and not getattr(r, "running", ())
        if getattr(r, "swap", None) is not None:
            assert r.swap.used_tokens == 0


def _property(policy, small_kv=False):
    @SETTINGS
    @given(runs(policy, small_kv))
    def prop(case):
        t, cfg, executor = case
        run = prepare(t, cfg, executor=executor)
        check_conservation(t, cfg, execute(run))
        check_released(run)
    return prop


test_conservation_vanilla = _property("vanilla")
test_conservation_sorted = _property("sorted")
test_conservation_binned = _property("binned")
test_conservation_fcfs = _property("fcfs")
test_conservation_sjf = _property("sjf")
test_conservation_fcfs_small_kv = _property("fcfs", small_kv=True)
test_conservation_sjf_small_kv = _property("sjf", small_kv=True)


def test_conservation_larger_online_trace_every_policy():
    rng = np.random.default_rng(7)
    n = 200
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)],
                       "arrival_s": np.sort(rng.uniform(0, 20, n)),
                       "prompt_tokens": rng.integers(1, 300, n),
                       "output_tokens": rng.integers(1, 400, n)})
    from seqsched.traces.request import Trace
    t = Trace(df)
    for policy in ("vanilla", "sorted", "binned", "fcfs", "sjf"):
        cfg = RunConfig(policy=policy, predictor="noisy", predictor_params={"scale": 40.0})
        check_conservation(t, cfg, simulate(t, cfg))
