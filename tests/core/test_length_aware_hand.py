"""mlfq, gittins, srpt-expected, the starvation guard, TRAIL's limited preemption and
re-prediction, hand-computed with the toy cost model of coretoy.py:

    iteration = 1 + 0.5 * rows + 0.125 * (prompt tokens processed in it)

With max_num_seqs=1 one request runs at a time: an 8-token prefill alone costs 2.5 s (it
produces token 1), each decode 1.5 s. A displaced request is preempted by recompute: it keeps
its output and later prefills prompt + that output as one prompt.
"""

from __future__ import annotations

import numpy as np
import pytest

from coretoy import FixedPredictor, rec, run_toy, toy_executor, trace
from seqsched.app.run import RunConfig, simulate
from seqsched.policies import make_policy
from seqsched.policies.gittins import expected_remaining, gittins_rank
from seqsched.sim.sequence import Seq

ONE = {"max_num_seqs": 1}


def times(res, rid):
    r = rec(res, rid)
    return r["first_scheduled_s"], r["first_token_s"], r["finish_s"]


class DistPredictor(FixedPredictor):
    """Fixed point predictions plus a fixed length distribution per request."""

    def __init__(self, values, dists):
        super().__init__(values)
        self.dists = dists

    def predict_distribution(self, t, points):
        k = max(len(d) for d in self.dists)
        return np.array([np.resize(np.asarray(d, float), k) for d in self.dists])


# -- mlfq ---------------------------------------------------------------------------------
def test_mlfq_skip_join_and_demotion_levels():
    pol = make_policy("mlfq", levels="4,16,64", prompt_weight=1.0)
    lvl = lambda p, g: pol.level(Seq(0, "x", 0.0, p, 100, 1, generated=g))  # noqa: E731
    assert [lvl(3, g) for g in (0, 3, 4, 19, 20, 10_000)] == [0, 0, 1, 1, 2, 2]
    # an 8-token prompt's first iteration (8) exceeds Q1's quantum 4: it skip-joins Q2 and
    # is demoted after Q2's 16 tokens; one above every quantum joins the last queue
    assert [lvl(8, g) for g in (0, 15, 16)] == [1, 1, 2]
    assert lvl(65, 0) == 2
    # FastServe's geometric quanta
    assert make_policy("mlfq", quantum=3, quantum_ratio=2, num_queues=4).quanta == [3, 6, 12, 24]


def test_mlfq_demoted_request_is_preempted_by_a_fresh_one():
    rows = [("r0", 0, 8, 5), ("r1", 0, 8, 2)]
    res = run_toy(rows, "mlfq", policy_params={"levels": "2,4", "prompt_weight": 0, **ONE})
    # r0 first (Q1, earlier index); the batch stops at its demotion, after 2 tokens: 4.0
    # r0 is now in Q2 and r1 (Q1) displaces it: 2.5 + 1.5 -> r1 done at 8.0
    # r0 resumes: 10-token prefill (8 + 2 kept) 1 + 0.5 + 1.25 = 2.75 -> 10.75 (token 3),
    # then 2 decodes -> 13.75
    assert times(res, "r0") == (0.0, 2.5, 13.75)
    assert times(res, "r1") == (4.0, 6.5, 8.0)
    assert rec(res, "r0")["preemptions"] == 1 and rec(res, "r1")["preemptions"] == 0
    fcfs = run_toy(rows, "fcfs", policy_params=ONE)
    assert [rec(fcfs, r)["finish_s"] for r in ("r0", "r1")] == [8.5, 12.5]


def test_mlfq_skip_join_puts_a_long_prompt_behind_a_later_short_one():
    # r0's 24-token prompt joins Q2 (first iteration 24 > Q1's 16); r1 (8 tokens, Q1)
    # arrives at 3.0 and displaces it at the next iteration boundary
    rows = [("r0", 0, 24, 6), ("r1", 3.0, 8, 2)]
    res = run_toy(rows, "mlfq", policy_params={"levels": "16,32", "prompt_weight": 1.0, **ONE})
    # r0: prefill 1 + 0.5 + 3 = 4.5 (token 1) -> the arrival at 3.0 cut the event there
    # r1 displaces r0: 2.5 + 1.5 -> 8.5
    # r0 resumes: 25-token prefill 1 + 0.5 + 3.125 = 4.625 -> 13.125 (token 2), 4 decodes
    # -> 19.125
    assert times(res, "r1") == (4.5, 7.0, 8.5)
    assert times(res, "r0") == (0.0, 4.5, 19.125)


# -- gittins / srpt-expected ------------------------------------------------------------------
def test_gittins_rank_on_a_two_point_distribution():
    two = np.array([1.0, 10.0])
    # D = 1: E[min(Y,1)] / P(Y<=1) = 1 / 0.5 = 2; D = 10: 5.5 / 1 -> rank 2
    assert gittins_rank(two, 0) == 2.0
    assert expected_remaining(two, 0) == 5.5
    # past the short branch only 9 tokens are left
    assert gittins_rank(two, 1) == 9.0 and expected_remaining(two, 1) == 9.0
    # a point mass ranks by what is left; outliving every point: the largest point to go
    assert gittins_rank(np.array([4.0]), 1) == 3.0
    assert gittins_rank(two, 10) == expected_remaining(two, 12) == 10.0


def _dist_run(policy, **params):
    rows = [("A", 0, 8, 10), ("B", 0, 8, 4)]
    pred = DistPredictor([5, 4], [[1, 10], [4, 4]])
    cfg = RunConfig(policy=policy, policy_params={**ONE, **params})
    return simulate(trace(rows), cfg, predictor=pred, executor=toy_executor())


def test_gittins_serves_the_likely_short_request_first_srpt_expected_does_not():
    g = _dist_run("gittins")
    # A (rank 2) first: 2.5 + 9 * 1.5 = 16.0; then B: 16 + 2.5 + 3 * 1.5 = 23.0
    assert rec(g, "A")["finish_s"] == 16.0 and rec(g, "B")["finish_s"] == 23.0
    e = _dist_run("srpt-expected")
    # B (4) before A (5.5): 2.5 + 4.5 = 7.0; A: 7 + 2.5 + 13.5 = 23.0
    assert rec(e, "B")["finish_s"] == 7.0 and rec(e, "A")["finish_s"] == 23.0


def test_preemptive_gittins_drops_a_request_that_outlived_its_short_branch():
    res = _dist_run("gittins", preemptive=True)
    # A runs to its first point (1 token, 2.5 s); not done, its rank jumps to 9 > B's 4:
    # B displaces it: 2.5 + 4.5 -> 9.5; A resumes with a 9-token prefill 1 + 0.5 + 1.125 =
    # 2.625 -> 12.125 (token 2), 8 decodes -> 24.125
    assert times(res, "B") == (2.5, 5.0, 9.5)
    assert times(res, "A") == (0.0, 2.5, 24.125)
    assert rec(res, "A")["preemptions"] == 1


# -- shared: starvation guard, TRAIL's limited preemption, re-prediction ----------------------
@pytest.mark.parametrize("max_wait, r1_finish, r2_finish", [(0, 27.0, 12.5), (20.0, 27.0, 12.5),
                                                            (9.5, 24.5, 27.0)])
def test_max_wait_guard_promotes_the_starving_request(max_wait, r1_finish, r2_finish):
    rows = [("r0", 0, 8, 6), ("r1", 0, 8, 9), ("r2", 1.0, 8, 1)]
    res = run_toy(rows, "sjf", policy_params={"max_wait_s": max_wait, **ONE})
    # r0 ends at 10.0; sjf then runs r2 (1 token) before r1 (9) — unless r1, waiting since
    # 0, has waited 10 >= 9.5 s (r2 only 9): then r1 runs 10 -> 24.5 and r2 24.5 -> 27.0
    assert rec(res, "r0")["finish_s"] == 10.0
    assert rec(res, "r1")["finish_s"] == r1_finish and rec(res, "r2")["finish_s"] == r2_finish


@pytest.mark.parametrize("until, r0_finish, r1_finish", [(None, 21.25, 8.0), (0.5, 21.25, 8.0),
                                                         (0.1, 16.0, 20.0)])
def test_trail_limited_preemption(until, r0_finish, r1_finish):
    rows = [("r0", 0, 8, 10), ("r1", 3.2, 8, 2)]
    params = {"preemptive": True, "preempt_until": until, **ONE}
    res = run_toy(rows, "srpt", predicted=[10, 2], policy_params=params)
    # r0 has 2 tokens at 4.0 (the boundary after r1's arrival); r1 (2 left) outranks it (8)
    # displaced while 2 < c * 10: r1 4.0 -> 8.0; r0 resumes with a 10-token prefill 2.75 ->
    # 10.75, 7 decodes -> 21.25. With c = 0.1 it keeps running: 4 + 12 = 16; r1 -> 20.0
    assert rec(res, "r0")["finish_s"] == r0_finish and rec(res, "r1")["finish_s"] == r1_finish


def test_reprediction_cost_is_on_the_timeline():
    params = {"repredict_every": 2, "repredict_s": 0.25, **ONE}
    res = simulate(trace([("r0", 0, 8, 5)]), RunConfig(policy="srpt", policy_params=params),
                   predictor=DistPredictor([5], [[5]]), executor=toy_executor())
    # 2 tokens (2.5 + 1.5 = 4.0), re-predict 0.25 -> 4.25, 2 tokens (3.0) -> 7.25, re-predict
    # -> 7.5, the last token 1.5 -> 9.0 (finished: no re-prediction)
    st = res.steps
    assert list(st["kind"]) == ["generate", "repredict", "generate", "repredict", "generate"]
    assert list(st["end_s"]) == [4.0, 4.25, 7.25, 7.5, 9.0]
    assert rec(res, "r0")["finish_s"] == 9.0
    free = run_toy([("r0", 0, 8, 5)], "srpt", predicted=[5], policy_params={})
    assert rec(free, "r0")["finish_s"] == 8.5


def test_conditional_reprediction_updates_the_estimate_srpt_reads():
    # B's distribution {1, 10}: predicted 1 at first, re-predicted to 10 once it has
    # outlived its short branch; A (6 tokens, exact) then outranks it
    rows = [("B", 0, 8, 10), ("A", 1.0, 8, 6)]
    pred = DistPredictor([1, 6], [[1, 10], [6, 6]])
    cfg = RunConfig(policy="srpt", policy_params={**ONE, "preemptive": True,
                                                  "repredict_every": 1})
    res = simulate(trace(rows), cfg, predictor=pred, executor=toy_executor())
    # B: token 1 at 2.5 -> re-predicted 10 (9 left) > A's 6: A displaces B: 2.5 + 5 * 1.5
    # -> 12.5; B resumes: 9-token prefill 2.625 -> 15.125 (token 2), 8 decodes -> 27.125
    assert times(res, "A") == (2.5, 5.0, 12.5)
    assert times(res, "B") == (0.0, 2.5, 27.125)
    assert rec(res, "B")["predicted"] == 10
