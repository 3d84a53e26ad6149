"""Static-batch metrics on hand cases, against the Sequence Scheduling paper's definitions
(Zheng et al. 2023, src/benchmark.py + src/generate.py):

    throughput            = requests / wall time
    average length        = sum(length) / requests,  length = padded tokens of the batch that
                            produced the request's final output (+1 in the paper's script:
                            `length = output_ids.shape[0] - l_input_ids + 1`)
    effective token ratio = sum(output tokens) / sum(length)
    failure ratio         = requests recomputed by FCR / requests
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seqsched.analysis.metrics import summarize
from coretoy import run_toy
from seqsched.sim.engine import RECORD_COLUMNS, STEP_COLUMNS

FCR_ROWS = [("r0", 0, 8, 30), ("r1", 0, 8, 70), ("r2", 0, 8, 120), ("r3", 0, 8, 100)]
FCR_PRED = [30, 40, 120, 140]


@pytest.fixture(scope="module")
def fcr_run():
    # the hand case of test_static_hand.py: batches [r0, r1] cap 50 (0 -> 102, r1 fails),
    # [r2, r3] cap 150 (102 -> 344, n = 120), recompute [r1] at 512 (344 -> 450, n = 70)
    return run_toy(FCR_ROWS, "binned", predicted=FCR_PRED,
                   policy_params={"batch_size": 2, "vbs": False, "fcr": True})


def test_fcr_hand_case_summary(fcr_run):
    s = fcr_run.summary
    # final-attempt batch lengths 50, 70, 120, 120; useful 30 + 70 + 120 + 100 = 320
    assert s["requests"] == 4
    assert s["makespan_s"] == 450.0
    assert s["throughput_rps"] == pytest.approx(4 / 450)
    assert s["output_tokens_per_s"] == pytest.approx(320 / 450)
    # the paper's length = generated + 1 per request
    assert s["avg_processed_length"] == pytest.approx(91.0)
    assert s["effective_token_ratio"] == pytest.approx(320 / 364)
    # all attempts: 50 + (50 + 70) + 120 + 120 = 410 slots
    assert s["compute_token_ratio"] == pytest.approx(320 / 410)
    assert s["fcr_recompute_ratio"] == 0.25
    assert s["wasted_tokens"] == 50
    assert s["preemptions"] == 0 and s["truncated"] == 0
    assert s["batches"] == 3 and s["events"] == 3
    assert s["e2e_s_mean"] == pytest.approx((102 + 450 + 344 + 344) / 4)
    assert s["ttft_s_mean"] == pytest.approx((4 + 4 + 106 + 106) / 4)
    assert s["queue_s_mean"] == pytest.approx((0 + 0 + 102 + 102) / 4)
    assert s["busy_fraction"] == pytest.approx(1.0)
    tpot = [(102 - 4) / 29, (450 - 4) / 69, (344 - 106) / 119, (344 - 106) / 99]
    assert s["tpot_s_mean"] == pytest.approx(np.mean(tpot))
    assert s["e2e_s_p50"] == pytest.approx(344.0)
    # KV: padded reservations rows x (8 + n): 116 for 102 s, 256 for 242 s, 78 for 106 s
    cap = fcr_run.kv_capacity_tokens
    assert s["kv_peak_tokens"] == 256
    assert s["kv_utilization"] == pytest.approx((116 * 102 + 256 * 242 + 78 * 106) / (450 * cap))


def test_vanilla_hand_case_summary():
    res = run_toy([("r0", 0, 10, 4), ("r1", 0, 20, 2), ("r2", 0, 8, 3)], "vanilla",
                  policy_params={"batch_size": 2})
    s = res.summary
    # batches [r0, r1] n = 4 (0 -> 13), [r2] n = 3 (13 -> 18.5)
    assert s["throughput_rps"] == pytest.approx(3 / 18.5)
    assert s["avg_processed_length"] == pytest.approx((5 + 5 + 4) / 3)
    assert s["effective_token_ratio"] == pytest.approx((4 + 2 + 3) / 14)
    assert s["compute_token_ratio"] == pytest.approx(9 / 11)
    assert s["fcr_recompute_ratio"] == 0.0


def test_summarize_on_handmade_records():
    rec = pd.DataFrame({
        "id": ["a", "b"], "replica": [0, 0], "arrival_s": [1.0, 2.0],
        "prompt_tokens": [5, 5], "output_tokens": [10, 3], "predicted": [10, 3],
        "generated_tokens": [10, 3], "first_scheduled_s": [1.0, 3.0],
        "first_token_s": [2.0, 4.0], "finish_s": [11.0, 6.0], "attempts": [1, 3],
        "preemptions": [0, 1], "failed_attempts": [0, 1], "wasted_tokens": [0, 7],
        "slot_tokens": [10, 5], "slot_tokens_all": [10, 12], "truncated": [False, False],
    }, columns=RECORD_COLUMNS)
    steps = pd.DataFrame([(0, 1.0, 6.0, "generate", 2, 5, 10, 5, 100),
                          (0, 6.0, 11.0, "generate", 1, 5, 0, 5, 50)], columns=STEP_COLUMNS)
    s = summarize(rec, steps, kv_capacity_tokens=200)
    assert s["makespan_s"] == 10.0                       # 11 - 1
    assert s["throughput_rps"] == 0.2
    assert s["output_tokens_per_s"] == 1.3
    assert s["avg_processed_length"] == 8.5
    assert s["effective_token_ratio"] == 13 / 17
    assert s["compute_token_ratio"] == 13 / 22
    assert s["fcr_recompute_ratio"] == 0.5
    assert s["wasted_tokens"] == 7 and s["preemptions"] == 1
    assert s["e2e_s_mean"] == 7.0                        # (10 + 4) / 2
    assert s["ttft_s_mean"] == 1.5 and s["queue_s_mean"] == 0.5
    assert s["tpot_s_mean"] == pytest.approx((9 / 9 + 2 / 2) / 2)
    assert s["kv_utilization"] == pytest.approx((100 * 5 + 50 * 5) / (10 * 200))
    assert s["busy_fraction"] == 1.0
    assert s["batches"] == 2


def test_paper_average_length_counts_iterations_plus_one(fcr_run):
    s = fcr_run.summary
    lengths = np.array([50, 70, 120, 120]) + 1
    assert s["avg_processed_length"] == pytest.approx(lengths.mean())
    assert s["effective_token_ratio"] == pytest.approx(320 / lengths.sum())


def test_throughput_is_requests_over_makespan_from_first_arrival():
    res = run_toy([("a", 5.0, 8, 2), ("b", 6.0, 8, 2)], "fcfs")
    # a alone from 5: iteration ends 7.5, 9.0; b arrives at 6 -> event stops at 7.5
    # 7.5: a decode + b prefill: 1 + 1 + 1 = 3 -> 10.5 (a done: min(1, 2) = 1 iteration)
    # 10.5: b decode 1.5 -> 12.0
    assert res.records["finish_s"].tolist() == [10.5, 12.0]
    s = res.summary
    assert s["makespan_s"] == 7.0                 # 12 - first arrival (5), not 12
    assert s["throughput_rps"] == 2 / 7.0
    assert s["ttft_s_mean"] == pytest.approx(((7.5 - 5) + (10.5 - 6)) / 2)
    assert s["busy_fraction"] == 1.0
