"""Arrival processes and transforms: hand-checked small cases plus property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqsched.traces import arrivals
from seqsched.traces.request import Trace, TraceError


def make(arrival, output=None, name="t", **extra) -> Trace:
    n = len(arrival)
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "arrival_s": arrival,
                       "prompt_tokens": np.arange(1, n + 1),
                       "output_tokens": output if output is not None else np.full(n, 10),
                       **extra})
    return Trace(df, name=name)


def test_offline_sets_all_to_zero():
    t = arrivals.offline(make([1.0, 2.0, 5.0]))
    assert t.arrival_s.tolist() == [0, 0, 0] and t.ids.tolist() == ["r0", "r1", "r2"]


def test_poisson_is_seeded_and_keeps_order():
    t = make(np.zeros(5))
    a = arrivals.poisson(t, rate=2.0, seed=1)
    b = arrivals.poisson(t, rate=2.0, seed=1)
    c = arrivals.poisson(t, rate=2.0, seed=2)
    assert a.arrival_s.tolist() == b.arrival_s.tolist() != c.arrival_s.tolist()
    expected = np.cumsum(np.random.default_rng(1).exponential(0.5, 5))
    np.testing.assert_allclose(a.arrival_s, expected)
    assert a.ids.tolist() == t.ids.tolist()


@settings(max_examples=15, deadline=None)
@given(rate=st.floats(0.1, 1000), seed=st.integers(0, 2**32 - 1))
def test_poisson_mean_rate(rate, seed):
    t = arrivals.poisson(make(np.zeros(20_000)), rate, seed)
    gaps = np.diff(np.concatenate([[0], t.arrival_s]))
    assert abs(gaps.mean() * rate - 1) < 0.05          # 20k gaps: sd of mean ~0.7%
    assert abs(gaps.std() / gaps.mean() - 1) < 0.06    # exponential: CV = 1


@settings(max_examples=15, deadline=None)
@given(rate=st.floats(0.5, 100), cv=st.floats(0.3, 4), seed=st.integers(0, 2**32 - 1))
def test_gamma_rate_and_cv(rate, cv, seed):
    t = arrivals.gamma(make(np.zeros(40_000)), rate, cv, seed)
    gaps = np.diff(np.concatenate([[0], t.arrival_s]))
    assert abs(gaps.mean() * rate - 1) < 0.1
    assert abs(gaps.std() / gaps.mean() / cv - 1) < 0.15


def test_replay_speedup_and_rescale():
    t = make([0.0, 1.0, 3.0, 7.0])
    assert arrivals.replay(t, 2.0).arrival_s.tolist() == [0.0, 0.5, 1.5, 3.5]
    assert arrivals.replay(t) is t
    assert arrivals.mean_rate(t) == pytest.approx(3 / 7)
    r = arrivals.rescale_rate(t, rate=3.0)             # 7x faster
    np.testing.assert_allclose(r.arrival_s, [0, 1 / 7, 3 / 7, 1.0])
    assert arrivals.mean_rate(r) == pytest.approx(3.0)
    s = arrivals.rescale_rate(make([10.0, 12.0]), factor=2)  # scaled about the first arrival
    assert s.arrival_s.tolist() == [10.0, 11.0]


def test_window_rebases_and_rows_slice():
    t = make([0.0, 5.0, 10.0, 15.0, 20.0])
    w = arrivals.window(t, 5, 15)
    assert w.ids.tolist() == ["r1", "r2"] and w.arrival_s.tolist() == [0.0, 5.0]
    assert arrivals.window(t, None, 10).ids.tolist() == ["r0", "r1"]
    assert arrivals.window(t, 12, None, rebase=False).arrival_s.tolist() == [15.0, 20.0]
    assert arrivals.slice_rows(t, 1, 3).ids.tolist() == ["r1", "r2"]
    assert arrivals.slice_rows(t, -2).ids.tolist() == ["r3", "r4"]
    with pytest.raises(TraceError, match="no request arrives"):
        arrivals.window(t, 21, 30)
    with pytest.raises(TraceError, match="END must exceed START"):
        arrivals.window(t, 10, 5)


def test_sample_seeded_ordered_and_replace():
    t = make(np.arange(100.0))
    a = arrivals.sample(t, 10, seed=3)
    assert a.ids.tolist() == arrivals.sample(t, 10, seed=3).ids.tolist()
    assert np.all(np.diff(a.arrival_s) > 0) and len(set(a.ids)) == 10
    b = arrivals.sample(make([0.0, 1.0]), 6, seed=0, replace=True)
    assert len(b) == 6 and len(set(b.ids)) == 6
    assert all(i.split("#")[0] in ("r0", "r1") for i in b.ids)
    with pytest.raises(TraceError, match="cannot sample 3 requests from 2"):
        arrivals.sample(make([0.0, 1.0]), 3)


def test_cap_output_caps_length_columns():
    t = make([0.0, 0.0, 0.0], output=[10, 600, 512], **{"len_t0.7": [700, 5, 513],
                                                      "max_of_samples": [900, 600, 512],
                                                      "other": [1000, 1000, 1000]})
    c = arrivals.cap_output(t, 512)
    assert c.output_tokens.tolist() == [10, 512, 512]
    assert c.df["len_t0.7"].tolist() == [512, 5, 512]
    assert c.df["max_of_samples"].tolist() == [512, 512, 512]
    assert c.df["other"].tolist() == [1000] * 3
    assert t.output_tokens.tolist() == [10, 600, 512]  # input untouched


def test_concat_merge_and_sequential():
    a = make([0.0, 2.0], name="a")
    b = make([1.0, 3.0], name="b")
    m = arrivals.concat([a, b])
    assert m.ids.tolist() == ["a/r0", "b/r0", "a/r1", "b/r1"]
    assert m.df["source"].tolist() == ["a", "b", "a", "b"]
    s = arrivals.concat([a, b], mode="sequential", gap_s=1.0)
    assert s.arrival_s.tolist() == [0.0, 2.0, 3.0, 5.0]
    assert s.df["source"].tolist() == ["a", "a", "b", "b"]
    u = arrivals.concat([make([0.0], name="x"), Trace(pd.DataFrame(
        {"id": ["z"], "arrival_s": [1.0], "prompt_tokens": [1], "output_tokens": [1]}))])
    assert u.ids.tolist() == ["r0", "z"]                # no collision: ids kept


def test_apply_arrival_defaults():
    recorded = make([0.0, 1.0, 2.0])
    offline = make([0.0, 0.0, 0.0])
    assert arrivals.apply_arrival(recorded).arrival_s.tolist() == [0.0, 1.0, 2.0]
    assert arrivals.apply_arrival(offline).arrival_s.tolist() == [0.0, 0.0, 0.0]
    p = arrivals.apply_arrival(offline, rate=5.0, seed=0)
    np.testing.assert_allclose(p.arrival_s, arrivals.poisson(offline, 5.0, 0).arrival_s)
    r = arrivals.apply_arrival(recorded, rate=4.0)       # replay rescaled to the rate
    assert arrivals.mean_rate(r) == pytest.approx(4.0)
    assert arrivals.apply_arrival(recorded, speedup=2).arrival_s.tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(TraceError, match="needs recorded timestamps"):
        arrivals.apply_arrival(offline, "replay")
    with pytest.raises(TraceError, match="--speedup only applies"):
        arrivals.apply_arrival(recorded, "poisson", rate=1, speedup=2)
    with pytest.raises(TraceError, match="must be a positive number"):
        arrivals.apply_arrival(offline, "poisson", rate=-1)


def test_transforms_preserve_invariants_on_large_trace():
    t = make(np.random.default_rng(0).uniform(0, 1000, 200_000))
    out = arrivals.cap_output(arrivals.sample(arrivals.window(t, 100, 900), 50_000, 1), 5)
    assert np.all(np.diff(out.arrival_s) >= 0)
    assert out.df.index.equals(pd.RangeIndex(len(out)))
    assert not out.df["id"].duplicated().any()
