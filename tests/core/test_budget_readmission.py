"""Admission is re-checked where vLLM's per-iteration scheduler would re-check it: a waiting
request blocked only by the token budget of a step's first iteration (its prompt chunks use
the budget up) gets in at the next iteration, when every row of the step decodes one token,
instead of waiting for the step's multi-iteration run to end. vLLM 0.19.0
vllm/v1/core/sched/scheduler.py `Scheduler.schedule` runs admission every iteration
(`while (self.waiting or self.skipped_waiting) and token_budget > 0`).

Hand-computed with the toy cost model (coretoy: iteration = 1 + 0.5 rows + 0.125 prompt
tokens); then a property: steps of many iterations give the same records as steps of one
iteration (the per-iteration scheduler), in both engines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqsched.app.run import simulate

from tests.core.coretoy import FixedPredictor, rec, small_kv_config, toy_executor, trace

ENGINES = ("baseline", "fast")


def run(rows, engine, **params):
    cfg = small_kv_config(100_000, policy="fcfs", policy_params=params, engine=engine)
    return simulate(trace(rows), cfg, predictor=FixedPredictor([r[3] for r in rows]),
                    executor=toy_executor())


def test_a_budget_used_up_exactly_frees_at_the_next_iteration():
    # budget 16: a's 16-token prompt uses it all (0 -> 1 + 0.5 + 2 = 3.5), b waits. At 3.5
    # a decodes one token and b's 8 fit: 1 + 1 + 1 = 3 -> 6.5; then both decode (2.0 each):
    # 8.5, 10.5 (b's third, done); a alone 1.5 -> 12.0 (its fifth)
    rows = [("a", 0.0, 16, 5), ("b", 0.0, 8, 3)]
    for engine in ENGINES:
        r = run(rows, engine, chunked_prefill=True, max_batched_tokens=16)
        a, b = rec(r, "a"), rec(r, "b")
        assert b["first_scheduled_s"] == 3.5, engine
        assert b["first_token_s"] == 6.5 and b["finish_s"] == 10.5, engine
        assert a["first_token_s"] == 3.5 and a["finish_s"] == 12.0, engine


def test_a_prompt_that_did_not_fit_the_rest_of_the_budget_gets_in_next_iteration():
    # no chunked prefill, budget 16: a's 12 leave 4 < b's 8 (0 -> 1 + 0.5 + 1.5 = 3.0); at
    # 3.0 the budget is 16 - 1: b is admitted (1 + 1 + 1 -> 6.0), both decode 8.0, 10.0 (b
    # done), a alone -> 11.5
    rows = [("a", 0.0, 12, 5), ("b", 0.0, 8, 3)]
    for engine in ENGINES:
        r = run(rows, engine, chunked_prefill=False, max_batched_tokens=16)
        a, b = rec(r, "a"), rec(r, "b")
        assert b["first_scheduled_s"] == 3.0 and b["first_token_s"] == 6.0, engine
        assert b["finish_s"] == 10.0 and a["finish_s"] == 11.5, engine


def test_a_budget_that_stays_too_small_keeps_the_long_step():
    # budget 4, no chunking: a's 2-token prompt leaves 2, and a decoding alone leaves 3 -
    # b's 4 never fit while a runs, so a's whole run is one step (prefill + 5 decodes),
    # then b's: two steps, the common case's speed kept
    rows = [("a", 0.0, 2, 6), ("b", 0.0, 4, 2)]
    for engine in ENGINES:
        r = run(rows, engine, chunked_prefill=False, max_batched_tokens=4)
        assert len(r.steps) == 2, engine
        assert list(r.steps["iterations"]) == [6, 2], engine
        # a: 1 + 0.5 + 0.25 = 1.75, + 5 x 1.5 = 9.25; b: 9.25 + 1 + 0.5 + 0.5 + 1.5 = 12.75
        assert rec(r, "a")["finish_s"] == 9.25 and rec(r, "b")["finish_s"] == 12.75, engine


def test_a_pure_decode_first_iteration_keeps_the_long_step():
    # budget 3, no chunking: a and c (1-token prompts) prefill 0 -> 1 + 1 + 0.25 = 2.25; b
    # arrives at 0.25 and cuts that step there. From 2.25 a and c decode (budget left 1 at
    # every iteration): b's 2 tokens wait until c has left, in one step of 2 iterations
    rows = [("a", 0.0, 1, 6), ("c", 0.0, 1, 3), ("b", 0.25, 2, 2)]
    for engine in ENGINES:
        r = run(rows, engine, chunked_prefill=False, max_batched_tokens=3)
        assert list(r.steps["iterations"])[:2] == [1, 2], engine
        assert rec(r, "c")["finish_s"] == 2.25 + 2 * 2.0, engine
        assert rec(r, "b")["first_scheduled_s"] == 6.25, engine


# -- property: k iterations per event == one iteration per event --------------------------
@st.composite
def scenario(draw):
    n = draw(st.integers(1, 20))
    prompts = draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    if draw(st.booleans()):
        arrivals = [0.0] * n
    else:                         # binary fractions: ties with the toy model's step ends
        arrivals = sorted(q / 4 for q in draw(st.lists(st.integers(0, 120), min_size=n,
                                                        max_size=n)))
    chunked = draw(st.booleans())
    budget = (draw(st.integers(4, 160)) if chunked
              else max(prompts) + draw(st.integers(0, 120)))
    params = {"chunked_prefill": chunked, "max_batched_tokens": budget,
              "max_num_seqs": draw(st.sampled_from([1, 3, 8, 256])),
              "reserve_full_isl": draw(st.booleans()),
              "async_scheduling": draw(st.booleans()),
              "preemption": draw(st.sampled_from(["recompute", "restart"]))}
    policy = draw(st.sampled_from(["fcfs", "sjf", "srpt"]))
    # predictions off the true lengths: sjf/srpt rank (and pick victims) by them
    predicted = draw(st.lists(st.integers(1, 80), min_size=n, max_size=n))
    block = draw(st.sampled_from([1, 4, 16]))
    # a KV cache that forces preemption (one request always fits alone), or one that never
    # binds
    capacity = draw(st.sampled_from([max(p + o for p, o in zip(prompts, outputs)) + block
                                     + draw(st.integers(0, 400)), 100_000]))
    rows = [(f"r{i}", a, p, o) for i, (a, p, o) in enumerate(zip(arrivals, prompts, outputs))]
    return rows, policy, params, predicted, capacity, block


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_many_iterations_per_event_equal_one_iteration_per_event(case):
    """Cutting every step to one iteration is vLLM's per-iteration scheduler; the long steps
    must give the same records, in both engines, with or without preemption (a step that
    preempts for memory admits nothing, so where a victim or the waiting head fits the blocks
    left it is one iteration: vLLM tries them again at the next), with or without vLLM's
    async scheduling. The two engines also agree on the step log at each k."""
    rows, policy, params, predicted, capacity, block = case
    out = {}
    for engine in ENGINES:
        for k in (1, 4096):
            cfg = small_kv_config(capacity, policy=policy, engine=engine, block_size=block,
                                  policy_params={**params, "max_iterations": k})
            out[engine, k] = simulate(trace(rows), cfg, predictor=FixedPredictor(predicted),
                                      executor=toy_executor())
    ref = out["baseline", 1].records
    for engine, k in out:
        pd.testing.assert_frame_equal(ref, out[engine, k].records, check_exact=True)
        pd.testing.assert_frame_equal(out["baseline", k].steps, out["fast", k].steps,
                                      check_exact=True)
