"""The rate search on a toy cost model whose capacity is known in closed form, saturation on
a D/D/1 queue, and the search's own edges."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from coretoy import toy_executor, trace  # noqa: E402

from seqsched.analysis.saturation import GROWTH_LIMIT, queue_growth, saturation_summary  # noqa: E402
from seqsched.analysis.slo import parse_slos  # noqa: E402
from seqsched.app.capacity import (LowestRateFails, Probe, arrival_shape, make_evaluate,  # noqa: E402
                                   search)
from seqsched.app.run import RunConfig  # noqa: E402
from seqsched.common.errors import UserError  # noqa: E402

# Toy cost model (tests/core/coretoy.py), vanilla with batch 1: one request at a time, a
# prompt of 8 and 4 output tokens take 2.5 s (prefill: 1 + 0.5 + 0.125 * 8) + 3 decode
# iterations of 1.5 s = 7 s. Evenly spaced arrivals make a D/D/1 queue: capacity 1/7 req/s.
SERVICE_S = 7.0
N = 100


def dd1_records(rate: float, service: float, n: int = 400) -> pd.DataFrame:
    arrival = np.arange(n) / rate
    start = np.empty(n)
    t = 0.0
    for k in range(n):
        start[k] = max(t, arrival[k])
        t = start[k] + service
    return pd.DataFrame({"arrival_s": arrival, "first_scheduled_s": start,
                         "finish_s": start + service})


def test_queue_growth_of_a_dd1_queue():
    # arrivals at r into a server of capacity c: request k waits k/c - k/r, a slope of
    # r/c - 1 seconds per second of arrivals
    assert queue_growth(dd1_records(2.0, 1.0)) == pytest.approx(1.0)
    assert queue_growth(dd1_records(1.25, 1.0)) == pytest.approx(0.25)
    assert saturation_summary(dd1_records(2.0, 1.0))["saturated"]
    # at or below capacity nobody waits
    assert queue_growth(dd1_records(0.5, 1.0)) == pytest.approx(0.0, abs=1e-12)
    assert not saturation_summary(dd1_records(1.0, 1.0))["saturated"]
    # the limit: arrivals > (1 + GROWTH_LIMIT) x capacity
    assert not saturation_summary(dd1_records(1 + GROWTH_LIMIT / 2, 1.0))["saturated"]
    assert saturation_summary(dd1_records(1 + 2 * GROWTH_LIMIT, 1.0))["saturated"]
    offline = pd.DataFrame({"arrival_s": [0.0] * 5, "first_scheduled_s": [0.0, 1, 2, 3, 4],
                            "finish_s": [1.0, 2, 3, 4, 5]})
    assert np.isnan(queue_growth(offline))


def test_search_finds_a_threshold_within_tolerance():
    calls = []

    def evaluate(rate):
        calls.append(rate)
        return Probe(rate, rate <= 3.7, {})
    cap = search(evaluate, 0.5, 100.0, tolerance=0.01)
    assert cap.bounded and cap.capacity_rps <= 3.7 < cap.failing_rps
    assert (cap.failing_rps - cap.capacity_rps) <= 0.01 * cap.capacity_rps
    assert calls[:4] == [0.5, 1.0, 2.0, 4.0]              # bracketing by doubling
    assert len(calls) == len(cap.probes) < 15
    with pytest.raises(LowestRateFails) as e:
        search(evaluate, 5.0, 100.0)
    assert e.value.probe.rate == 5.0 and len(calls) == len(cap.probes) + 1   # no loop
    unbounded = search(evaluate, 0.5, 3.0)
    assert not unbounded.bounded and unbounded.capacity_rps == 3.0
    for bad in ({"rate_min": 0.0}, {"rate_max": 0.1}, {"tolerance": 1.5}):
        kw = {"rate_min": 0.5, "rate_max": 10.0, "tolerance": 0.02} | bad
        with pytest.raises(UserError):
            search(evaluate, kw["rate_min"], kw["rate_max"], kw["tolerance"])


def test_capacity_of_a_toy_dd1_server_matches_the_closed_form():
    shape = trace([(f"r{k}", float(k), 8, 4) for k in range(N)])    # evenly spaced
    config = RunConfig(policy="vanilla", policy_params={"batch_size": 1})
    # e2e within 1% of the bare service time: at rate r > 1/7 request k waits k (7 - 1/r)
    # s, so 90% of requests meet it only while r < (1/7)(1 + 0.01/89): capacity = 1/7
    slos = parse_slos([f"e2e_p90={SERVICE_S * 1.01}s"])
    evaluate = make_evaluate(shape, config, slos, None, executor=toy_executor(), keep=False)
    tol = 0.01
    cap = search(evaluate, 0.01, 1.0, tolerance=tol)
    true = 1 / SERVICE_S
    assert cap.bounded
    assert true / (1 + tol) <= cap.capacity_rps <= true * (1 + 0.01 / 89) + 1e-12
    assert cap.failing_rps > true
    # the passing probe at capacity: every request within the bound, nothing saturated
    best = cap.best.summary
    assert best["slo_attainment"] >= 0.9 and not best["saturated"]
    # far above capacity the run is flagged saturated (the wait keeps growing), not just slow
    over = evaluate(2.0 * true)
    assert over.summary["saturated"] and not over.passed
    assert over.summary["queue_growth"] == pytest.approx(1.0, abs=0.03)    # r/c - 1


def test_saturation_alone_bounds_a_search_without_slos():
    shape = trace([(f"r{k}", float(k), 8, 4) for k in range(N)])
    config = RunConfig(policy="vanilla", policy_params={"batch_size": 1})
    evaluate = make_evaluate(shape, config, (), None, executor=toy_executor(), keep=False)
    cap = search(evaluate, 0.01, 1.0, tolerance=0.01)
    # saturated once the queueing delay grows by > GROWTH_LIMIT s/s: r > (1/7) x 1.05
    edge = (1 / SERVICE_S) * (1 + GROWTH_LIMIT)
    assert edge / 1.05 <= cap.capacity_rps <= edge * 1.05


def test_arrival_shape_keeps_timestamps_or_draws_poisson():
    timed = trace([("a", 0.0, 8, 4), ("b", 3.0, 8, 4), ("c", 4.0, 8, 4)])
    assert arrival_shape(timed) is timed
    offline = trace([("a", 0.0, 8, 4), ("b", 0.0, 8, 4), ("c", 0.0, 8, 4)])
    drawn = arrival_shape(offline, seed=3)
    assert (np.diff(drawn.arrival_s) > 0).all()
    with pytest.raises(UserError, match="at least 2"):
        arrival_shape(trace([("a", 0.0, 8, 4)]))
