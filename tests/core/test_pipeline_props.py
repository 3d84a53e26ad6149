"""Pipeline parallelism, properties over random small traces (toy cost model of
tests/core/coretoy.py over PP stages of one layer each, 0.25 s per transfer): every request
finishes with its tokens, every token pays a whole pass through the stages, the step log's
micro-batches never overlap, and the busiest stage bounds the makespan."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqsched.app import pipeline_setup

from tests.core.coretoy import run_toy
from tests.core.test_pipeline import SEND, toy_timing

requests = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 24), st.integers(1, 6)),
                    min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(requests, st.integers(2, 4), st.booleans(), st.sampled_from([8, 16, 64]))
def test_pipeline_runs_conserve_and_respect_the_stages(monkeypatch, reqs, pp, asynchronous,
                                                       budget):
    monkeypatch.setattr(pipeline_setup, "pipeline_timing",
                        lambda gpu, model, n, tp=1: toy_timing(n))
    rows = [(f"r{i}", a / 4, p, o) for i, (a, p, o) in enumerate(sorted(reqs))]
    res = run_toy(rows, "fcfs", pp=pp, policy_params={"async_scheduling": asynchronous,
                                                       "max_batched_tokens": budget})
    r, s = res.records.set_index("id"), res.steps
    out = np.array([o for _, _, _, o in rows])
    assert (r.loc[[x[0] for x in rows], "generated_tokens"].to_numpy() == out).all()
    assert s["prefill_tokens"].sum() == sum(p for _, _, p, _ in rows)
    assert s["decode_tokens"].sum() == out.sum() - len(rows)
    # a token needs the whole model (>= 1.5 s of toy time for one row, split over the
    # stages) and the transfers between them: pp - 1 sends in sync mode, pp link latencies
    # (the sends and the token broadcast) in async mode
    per_token = 1.5 + (pp - 1 if not asynchronous else pp) * SEND
    e2e = (r["finish_s"] - r["arrival_s"]).to_numpy()
    assert (e2e >= r["generated_tokens"].to_numpy() * per_token - 1e-9).all()
    assert (r["first_token_s"] - r["arrival_s"] >= per_token - 1e-9).all()
    assert (s["start_s"].iloc[1:].to_numpy() >= s["end_s"].iloc[:-1].to_numpy() - 1e-9).all()
    if not asynchronous:
        # stage 0 runs every micro-batch's share: >= 1/pp of each one's toy time (>= 1 s)
        assert s["end_s"].max() >= len(s) / pp - 1e-9
        assert (s["iterations"] == 1).all()
