"""The mixed-decode-context (skew) correction on hand-computed tiny profiles: bucket lookup,
t_mean + alpha (t_max - t_mean) per iteration, the pooled fallback, and both engines passing
the longest and shortest context."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.kernel_profile import FORMAT, kernel_profile_from_dict
from seqsched.backends.skew import apply_skew, bucket, skew_section
from seqsched.traces.request import Trace

AXES = {"n_bins": [0, 2, 4, 1000], "n_labels": ["n<=2", "n<=4", "n>4"],
        "skew_rate_bins": [-0.01, 0.4, 1.01], "skew_rate_labels": ["sr<=40%", "sr>40%"],
        "kv_big_bins": [0, 1024, 10 ** 9], "kv_big_labels": ["kvB<=1k", "kvB>1k"],
        "kp_bins": [-1, 0, 10 ** 9], "kp_labels": ["kp=0", "kp>0"]}
FIT = pd.DataFrame({"pc": [0, 0, 100], "n_label": ["n<=4"] * 3,
                    "skew_rate_label": ["sr<=40%", "sr>40%", "sr<=40%"],
                    "kv_big_label": ["kvB<=1k"] * 3, "kp_label": ["kp=0"] * 3,
                    "alpha": [0.25, 0.5, 0.1]})


def tiny(skew: bool = True) -> dict:
    """1 layer, no dense/head cost worth noting (1 us flat each). Attention per layer:
    pure decode 4 rows: 4 + 0.04 us per history token; mixed chunk 100 + 4 rows:
    30 + 0.05 us per history token."""
    p = {"format": FORMAT, "version": 1, "name": "tiny-skew", "gpu": "G", "model": "tiny",
         "tp": 1, "dtype": "bf16",
         "dense": {"mlp": {"count": 1, "tokens": [1, 10000], "us": [1, 1]}},
         "per_sequence": {"lm_head": {"count": 1, "sequences": [1, 100], "us": [1, 1]}},
         "attention": {"kind": "grid4", "count": 1, "slices": [
             {"pc": 0, "nd": 1, "rows": [{"kp": 0, "kd": [0, 1000], "us": [2, 12]}]},
             {"pc": 0, "nd": 4, "rows": [{"kp": 0, "kd": [0, 1000], "us": [4, 44]}]},
             {"pc": 100, "nd": 0, "rows": [{"kp": 0, "kd": [0], "us": [20]}]},
             {"pc": 100, "nd": 4, "rows": [{"kp": 0, "kd": [0, 1000], "us": [30, 80]}]}]}}
    if skew:
        p["attention"]["skew"] = skew_section(0.05, AXES, FIT)
    return p


def attn_us(seconds):
    return seconds * 1e6 - 2.0          # minus the flat dense (1) and lm_head (1)


def test_bucket_is_right_inclusive_and_clamps_above():
    edges = [2, 4, 1000]                 # n<=2, n<=4, n>4 (LLMServingSim's _bucket_label)
    assert bucket(edges, [1, 2, 3, 4, 5, 10 ** 7]).tolist() == [0, 0, 1, 1, 2, 2]


def test_decode_skew_is_mean_plus_alpha_of_the_gap_per_iteration():
    m = kernel_profile_from_dict(tiny())
    # histories 100, 100, 100, 500 (contexts one more): mean 200, sr = 100/400 = 0.25
    # -> alpha 0.25; t_mean 4 + 8 = 12, t_max 4 + 20 = 24 -> 15
    t = m.decode_times(4, 804, 2, context_max=501, context_min=101)
    assert attn_us(t[0]) == pytest.approx(15.0, rel=1e-12)
    # next iteration every history + 1: t_mean 12.04, t_max 24.04, same sr -> 15.04
    assert attn_us(t[1]) == pytest.approx(15.04, rel=1e-12)
    # histories 100, 500, 500, 500: mean 400, sr = 0.75 -> alpha 0.5: 20 + 0.5 * 4
    t = m.decode_times(4, 1604, 1, context_max=501, context_min=101)
    assert attn_us(t[0]) == pytest.approx(22.0, rel=1e-12)
    # without the spread (or without a skew table): the uniform lookup at the mean
    assert attn_us(m.decode_times(4, 804, 1)[0]) == pytest.approx(12.0, rel=1e-12)
    plain = kernel_profile_from_dict(tiny(skew=False))
    assert not plain.wants_decode_spread and m.wants_decode_spread
    assert attn_us(plain.decode_times(4, 804, 1, context_max=501, context_min=101)[0]) == \
        pytest.approx(12.0, rel=1e-12)


def test_a_bucket_the_fit_lacks_falls_back_to_the_pooled_alpha():
    m = kernel_profile_from_dict(tiny())
    # histories 100 x 3 and 1024: mean 331, sr 0.25; iteration 0 kv_big 1024 (<=1k: 0.25),
    # iteration 1 kv_big 1025 (>1k: not fitted -> pooled 0.05)
    t = m.decode_times(4, 1328, 2, context_max=1025, context_min=101)
    assert attn_us(t[0]) == pytest.approx(17.24 + 0.25 * (44.96 - 17.24), rel=1e-12)
    assert attn_us(t[1]) == pytest.approx(17.28 + 0.05 * (45.0 - 17.28), rel=1e-12)


def test_uniform_or_single_rows_get_no_correction():
    m = kernel_profile_from_dict(tiny())
    t = m.decode_times(4, 804, 1, context_max=201, context_min=201)
    assert attn_us(t[0]) == pytest.approx(12.0, rel=1e-12)
    one = m.prefill_time(np.zeros(0), np.zeros(0), 1, 501, decode_max=501, decode_min=501)
    assert attn_us(one) == pytest.approx(2 + 0.01 * 500, rel=1e-12)
    # t_max at or below t_mean (a grid edge): no negative correction
    assert apply_skew(np.array([5.0]), np.array([4.0]), 0.5, 4, np.array([False]))[0] == 5.0


def test_mixed_batch_uses_the_profiled_chunk_and_kp_buckets():
    m = kernel_profile_from_dict(tiny())
    # chunk 100 at kp 0, decode histories 100, 100, 100, 500: alpha (pc 100) 0.1
    # t_mean 30 + 10 = 40, t_max 30 + 25 = 55 -> 41.5
    got = m.prefill_time(np.array([100]), np.array([0]), 4, 804, decode_max=501,
                         decode_min=101)
    assert attn_us(got) == pytest.approx(41.5, rel=1e-12)
    # cached prompt tokens (kp > 0): a bucket the fit lacks -> pooled 0.05
    got = m.prefill_time(np.array([100]), np.array([50]), 4, 804, decode_max=501,
                         decode_min=101)
    assert attn_us(got) == pytest.approx(40.0 + 0.05 * 15.0, rel=1e-12)


def test_both_engines_pass_the_spread_and_agree(tmp_path):
    from seqsched.app.run import RunConfig, simulate
    rng = np.random.default_rng(3)
    n = 40
    trace = Trace(pd.DataFrame({"id": [f"r{i}" for i in range(n)],
                                "arrival_s": np.sort(rng.uniform(0, 0.02, n)),
                                "prompt_tokens": rng.integers(5, 300, n),
                                "output_tokens": rng.integers(2, 60, n)}), name="t")
    cfg = RunConfig(policy="fcfs", gpu="RTX-PRO-6000", model="llama-3.1-8b", engine="fast",
                    policy_params={"max_num_seqs": 4, "max_batched_tokens": 256,
                                   "chunked_prefill": True})
    runs = {}
    for label, skew in (("skew", True), ("plain", False)):
        for engine in ("fast", "baseline"):
            cost = kernel_profile_from_dict(tiny(skew))
            res = simulate(trace, dataclasses.replace(cfg, engine=engine),
                           executor=CostModelExecutor(cost))
            runs[label, engine] = res.records["finish_s"].to_numpy()
    assert np.array_equal(runs["skew", "fast"], runs["skew", "baseline"])
    assert np.array_equal(runs["plain", "fast"], runs["plain", "baseline"])
    # rows of different lengths run slower than the uniform lookup, never faster (alpha > 0)
    assert runs["skew", "fast"].sum() > runs["plain", "fast"].sum()
