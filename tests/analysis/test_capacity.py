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

from seqsched.analysis.saturation import (GROWTH_LIMIT, queue_growth,  # noqa: E402
                                          saturation_summary)
from seqsched.analysis.slo import parse_slos  # noqa: E402
from seqsched.app.capacity import (LowestRateFails, Probe, arrival_shape,  # noqa: E402
                                   make_evaluate, search)
from seqsched.app.run import RunConfig  # noqa: E402
from seqsched.common.errors import UserError  # noqa: E402

# Toy cost model (tests/core/coretoy.py), vanilla with batch 1: one request at a time, a
# prompt of 8 and 4 output tokens take 2.5 s (prefill: 1 + 0.5 + 0.125 * 8) + 3 decode
# iterations of 1.5 s = 7 s. Evenly spaced arrivals make a D/D/1 queue: capacity 1/7 req/s.
SERVICE_S = 7.0
N = 100


def one_row_steps(start, end) -> pd.DataFrame:
    """A step log of one-row steps on replica 0, in start order."""
    order = np.argsort(start, kind="stable")
    return pd.DataFrame({"replica": 0, "start_s": np.asarray(start)[order],
                         "end_s": np.asarray(end)[order], "kind": "generate", "rows": 1})


def dd1(rate: float, service: float, n: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records and step log of a D/D/1 queue: one request at a time, FIFO."""
    arrival = np.arange(n) / rate
    start = np.empty(n)
    t = 0.0
    for k in range(n):
        start[k] = max(t, arrival[k])
        t = start[k] + service
    recs = pd.DataFrame({"arrival_s": arrival, "first_scheduled_s": start,
                         "finish_s": start + service})
    return recs, one_row_steps(start, start + service)


def test_queue_growth_of_a_dd1_queue():
    # arrivals at r into a server of capacity c: the queue grows at r - c per second, a
    # share (r - c) / r of the arrival rate
    assert queue_growth(*dd1(2.0, 1.0)) == pytest.approx(0.5, abs=0.01)
    assert queue_growth(*dd1(1.25, 1.0)) == pytest.approx(0.2, abs=0.01)
    assert saturation_summary(*dd1(2.0, 1.0))["saturated"]
    # at or below capacity nobody waits
    assert queue_growth(*dd1(0.5, 1.0)) == pytest.approx(0.0, abs=1e-12)
    assert not saturation_summary(*dd1(1.0, 1.0))["saturated"]
    # the limit: arrivals > capacity / (1 - GROWTH_LIMIT)
    assert not saturation_summary(*dd1(1 / (1 - GROWTH_LIMIT / 2), 1.0))["saturated"]
    assert saturation_summary(*dd1(1 / (1 - 2 * GROWTH_LIMIT), 1.0))["saturated"]


def test_arrivals_within_a_nanosecond_have_no_rate():
    # hypothesis drew arrivals 0, 0, 5e-324 s (subnormal): the least-squares fit over a
    # window that short raised LinAlgError; such requests arrive at once, so NaN
    recs, steps = dd1(2.0, 1.0, n=3)
    for span in (5e-324, 1e-310, 1e-10):
        recs["arrival_s"] = [0.0, 0.0, span]
        assert np.isnan(queue_growth(recs, steps))
    recs["arrival_s"] = [0.0, 0.5, 1.0]
    assert np.isfinite(queue_growth(recs, steps))


def test_a_queue_starved_at_the_back_is_saturated():
    # a length-ordered server at r = 2c: half the requests (the "long" ones) are never
    # scheduled until arrivals stop, so later arrivals wait *less*; the queue still grows
    n, rate = 400, 2.0
    arrival = np.arange(n) / rate
    start = np.where(np.arange(n) % 2 == 0, arrival, arrival[-1] + np.arange(n) * 0.01)
    recs = pd.DataFrame({"arrival_s": arrival, "first_scheduled_s": start,
                         "finish_s": start + 0.5})
    steps = one_row_steps(start, start + 0.5)
    assert queue_growth(recs, steps) == pytest.approx(0.5, abs=0.02)
    assert saturation_summary(recs, steps)["saturated"]


def test_preempted_requests_count_as_waiting():
    # fcfs under overload admits a request, then preempts it: its first slot came early,
    # but it waits again. Two requests alternate on one row: the other one waits.
    recs = pd.DataFrame({"arrival_s": [0.0, 0.0, 4.0], "first_scheduled_s": [0.0, 1.0, 4.0],
                         "finish_s": [6.0, 6.0, 8.0]})
    steps = one_row_steps([0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0, 8.0])
    from seqsched.analysis.saturation import waiting
    np.testing.assert_allclose(waiting(recs, steps, np.array([0.5, 1.5, 4.5, 6.5])),
                               [1, 1, 2, 0])
    offline = pd.DataFrame({"arrival_s": [0.0] * 5, "first_scheduled_s": [0.0, 1, 2, 3, 4],
                            "finish_s": [1.0, 2, 3, 4, 5]})
    assert np.isnan(queue_growth(offline, one_row_steps([0.0, 1, 2, 3, 4], [1.0, 2, 3, 4, 5])))


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
    assert over.summary["queue_growth"] == pytest.approx(0.5, abs=0.03)    # (r - c) / r


def test_saturation_alone_bounds_a_search_without_slos():
    shape = trace([(f"r{k}", float(k), 8, 4) for k in range(N)])
    config = RunConfig(policy="vanilla", policy_params={"batch_size": 1})
    evaluate = make_evaluate(shape, config, (), None, executor=toy_executor(), keep=False)
    cap = search(evaluate, 0.01, 1.0, tolerance=0.01)
    # saturated once the queue grows at > 5% of the arrival rate: r > (1/7) / 0.95
    edge = (1 / SERVICE_S) / (1 - GROWTH_LIMIT)
    assert edge / 1.05 <= cap.capacity_rps <= edge * 1.05


def test_arrival_shape_keeps_timestamps_or_draws_poisson():
    timed = trace([("a", 0.0, 8, 4), ("b", 3.0, 8, 4), ("c", 4.0, 8, 4)])
    assert arrival_shape(timed) is timed
    offline = trace([("a", 0.0, 8, 4), ("b", 0.0, 8, 4), ("c", 0.0, 8, 4)])
    drawn = arrival_shape(offline, seed=3)
    assert (np.diff(drawn.arrival_s) > 0).all()
    with pytest.raises(UserError, match="at least 2"):
        arrival_shape(trace([("a", 0.0, 8, 4)]))
