"""SLO parsing, per-request attainment and goodput, hand-computed on small record sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seqsched.analysis.slo import (SLO, check_target, meets, parse_slo, parse_slos, passes,
                                   request_latencies, slo_summary)
from seqsched.common.errors import UserError


def records(rows):
    """rows: (arrival, first_scheduled, first_token, finish, generated)."""
    a, s, f, e, g = zip(*rows)
    return pd.DataFrame({"arrival_s": a, "first_scheduled_s": s, "first_token_s": f,
                         "finish_s": e, "generated_tokens": g})


# r0: ttft 1,   tpot (3-1)/4 = 0.5,   e2e 3, queue 0
# r1: ttft 2,   tpot none (1 token),  e2e 4, queue 1
# r2: ttft 0.5, tpot (10-2.5)/5 = 1.5, e2e 8, queue 0
# r3: ttft 3,   tpot (8-7)/2 = 0.5,   e2e 4, queue 2
RECS = records([(0, 0, 1, 3, 5), (1, 2, 3, 5, 1), (2, 2, 2.5, 10, 6), (4, 6, 7, 8, 3)])


def test_parse_units_and_percentiles():
    assert parse_slo("ttft_p99=2s") == SLO("ttft", 99.0, 2.0)
    assert parse_slo("tpot_p90=100ms") == SLO("tpot", 90.0, 0.1)
    assert parse_slo("e2e_p50=30") == SLO("e2e", 50.0, 30.0)
    s = parse_slo("queue_p99.9=1.5s")
    assert (s.metric, s.target, s.bound_s, s.name) == ("queue", pytest.approx(0.999), 1.5,
                                                       "queue_p99.9")
    assert parse_slo("TTFT_P100=2S").target == 1.0


@pytest.mark.parametrize("text, words", [
    ("itl_p99=2s", "unknown metric 'itl'"),
    ("ttft_p99=-2s", "positive"),
    ("ttft_p99=0ms", "positive"),
    ("ttft_p0=2s", "outside (0, 100]"),
    ("ttft_p101=2s", "outside (0, 100]"),
    ("ttft_p99=2h", "not a time"),
    ("ttft=2s", "METRIC_pQ"),
    ("ttft_p99", "METRIC_pQ=BOUND"),
])
def test_bad_slo_is_one_user_error(text, words):
    with pytest.raises(UserError, match=None) as e:
        parse_slo(text)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_twice_and_target():
    with pytest.raises(UserError, match="twice"):
        parse_slos(["ttft_p99=2s", "ttft_p99=3s"])
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(UserError, match=r"\(0, 1\]"):
            check_target(bad)
    assert check_target(1.0) == 1.0 and check_target(None) is None


def test_latencies_by_hand():
    lat = request_latencies(RECS)
    np.testing.assert_allclose(lat["ttft"], [1, 2, 0.5, 3])
    np.testing.assert_allclose(lat["tpot"], [0.5, np.nan, 1.5, 0.5])
    np.testing.assert_allclose(lat["e2e"], [3, 4, 8, 4])
    np.testing.assert_allclose(lat["queue"], [0, 1, 0, 2])


def test_attainment_and_goodput_by_hand():
    slos = parse_slos(["ttft_p50=2s", "tpot_p90=1s"])
    ok = meets(RECS, slos)
    # the bound is inclusive (r1's TTFT is exactly 2 s); a one-token response meets any TPOT
    assert ok["ttft_p50"].tolist() == [True, True, True, False]
    assert ok["tpot_p90"].tolist() == [True, True, False, True]
    assert ok["all"].tolist() == [True, True, False, False]
    s = slo_summary(RECS, slos)
    assert s["slo_ttft_p50_attainment"] == 0.75
    assert s["slo_tpot_p90_attainment"] == 0.75
    assert s["slo_attainment"] == 0.5
    assert s["goodput_rps"] == pytest.approx(2 / 10)     # 2 good requests over 0..10 s
    assert s["slo_targets_met"] is False                 # tpot: 75% < 90%
    assert not passes(s, slos, None)
    loose = parse_slos(["ttft_p75=2s", "e2e_p50=4s"])    # 75% and 75% (r0, r1, r3)
    s2 = slo_summary(RECS, loose)
    assert s2["slo_targets_met"] is True and s2["slo_attainment"] == 0.5
    assert passes(s2, loose, 0.5) and not passes(s2, loose, 0.6)
    assert slo_summary(RECS, ()) == {}


def test_simulate_adds_slo_columns_at_the_end():
    from tests.core.coretoy import run_toy
    from seqsched.app.run import RunConfig, simulate
    from tests.core.coretoy import toy_executor, trace
    rows = [("a", 0.0, 8, 4), ("b", 0.5, 8, 2), ("c", 9.0, 8, 3)]
    plain = run_toy(rows, "fcfs")
    slos = parse_slos(["ttft_p90=3s", "e2e_p50=20s"])
    judged = simulate(trace(rows), RunConfig(policy="fcfs"), executor=toy_executor(),
                      slos=slos)
    keys = list(plain.summary)
    assert list(judged.summary)[:len(keys)] == keys
    assert list(judged.summary)[len(keys):] == [
        "slo_ttft_p90_attainment", "slo_e2e_p50_attainment", "slo_attainment",
        "slo_targets_met", "goodput_rps"]
    ttft = (plain.records["first_token_s"] - plain.records["arrival_s"]).to_numpy()
    e2e = (plain.records["finish_s"] - plain.records["arrival_s"]).to_numpy()
    assert judged.summary["slo_ttft_p90_attainment"] == float(np.mean(ttft <= 3))
    good = np.sum((ttft <= 3) & (e2e <= 20))
    assert math.isclose(judged.summary["goodput_rps"], good / plain.summary["makespan_s"])
