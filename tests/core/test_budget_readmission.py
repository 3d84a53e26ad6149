"""Admission is re-checked where vLLM's per-iteration scheduler would re-check it: a waiting
request blocked only by the token budget of a step's first iteration (its prompt chunks use
the budget up) gets in at the next iteration, when every row of the step decodes one token,
instead of waiting for the step's multi-iteration run to end. vLLM 0.19.0
vllm/v1/core/sched/scheduler.py `Scheduler.schedule` runs admission every iteration
(`while (self.waiting or self.skipped_waiting) and token_budget > 0`). An iteration that
preempts for memory admits nothing (`if not preempted_reqs`); the next one tries the victims
and the waiting head again (here: the preempting step is one iteration where one would fit).

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


# -- admission after a preemption: vLLM admits nothing in the iteration that preempts, and
# tries the victims and the waiting head again at the next one -----------------------------
def times(result, rid):
    r = rec(result, rid)
    return r["first_scheduled_s"], r["first_token_s"], r["finish_s"]


def _srpt_restart_run(policy, r2_arrival, preemption="restart"):
    cfg = small_kv_config(32, policy=policy, block_size=4,
                          policy_params={"preemption": preemption})
    t = trace([("r0", 0, 8, 12), ("r1", 0, 8, 12), ("r2", r2_arrival, 4, 2)])
    return simulate(t, cfg, predictor=FixedPredictor([12, 12, 6]), executor=toy_executor())


def test_srpt_restart_forgets_the_output():
    # with restart the preempted request has generated 0 again: its key is its prediction
    # (12), so srpt decides as sjf. e1 as above (0 -> 18; 8 tokens each, 0 blocks free).
    # e2 at 18: r1 preempted (keys 12 - 8 = 4 tie: the later index), its output thrown
    #   away; r0 takes a 5th block: 3 free. The step admits nothing, but r1's restart (8-token
    #   prompt, blocks(9) = 3) fits the 3 blocks at the next iteration: one iteration, r0
    #   decodes -> 19.5 (r0: 9 tokens, 5 blocks)
    # r2 arrives at 20.0 (after the plan of 19.5): at 19.5 r1 prefills again beside r0's
    #   decode (3 blocks, 0 free): 1 + 1 + 1 = 3 -> 22.5 (r1 token 1), stopped by r2's arrival.
    # 22.5: r2 (blocks(5) = 2) does not fit 0 free blocks; r0 (10) and r1 (1) decode, both
    #   within their blocks: 24.5, 26.5 = r0's 12th token.
    # 26.5: r0's 5 blocks free; r2's prefill beside r1's decode: 1 + 1 + 0.5 = 2.5 -> 29.0
    #   (r2 TTFT), + 2 -> 31.0 (r2 done; r1: 5 tokens); r1's last 7 alone: 10.5 -> 41.5
    res = _srpt_restart_run("srpt", 20.0)
    assert times(res, "r0") == (0.0, 4.0, 26.5)
    assert times(res, "r1") == (0.0, 4.0, 41.5)
    assert times(res, "r2") == (26.5, 29.0, 31.0)
    assert list(res.steps["end_s"]) == [18.0, 19.5, 22.5, 26.5, 31.0, 41.5]
    assert rec(res, "r1")["wasted_tokens"] == 8 and res.summary["preemptions"] == 1
    pd.testing.assert_frame_equal(_srpt_restart_run("sjf", 20.0).records, res.records)
    # r2 waiting at 18 (arrived at that step's end): at 19.5 it (key 6) goes before the
    # restarted r1 (key 12, as sjf orders them): blocks(5) = 2 of the 3 free; r1's 3 do not fit
    # the 1 left. r0 decode + r2 prefill: 1 + 1 + 0.5 = 2.5 -> 22.0 (r2 TTFT), + 2 -> 24.0
    early = _srpt_restart_run("srpt", 18.0)
    assert times(early, "r2") == (19.5, 22.0, 24.0)
    pd.testing.assert_frame_equal(_srpt_restart_run("sjf", 18.0).records, early.records)
    # with recompute r1 keeps its 8 tokens: key 12 - 8 = 4 puts it first, and its 16-token
    # resume (blocks(17) = 5) does not fit 3 free blocks, so r2 waits behind it until r0's
    # last 3 tokens are out: 19.5 + 3 * 1.5 = 24.0
    kept = _srpt_restart_run("srpt", 18.0, preemption="recompute")
    assert rec(kept, "r2")["first_scheduled_s"] == 24.0


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
