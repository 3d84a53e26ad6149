"""Static (padded) batching, hand-computed with the toy cost model of coretoy.py:

    static batch of r rows padded to width W running n iterations:
        prefill iteration  = C + D r + B r W = 1 + 0.5 r + 0.125 r W   (produces token 1)
        each later decode  = C + D r         = 1 + 0.5 r
        n = min(cap, longest target in the batch)
    every row returns at the batch end; first_token_s = batch start + prefill iteration.
"""

from __future__ import annotations

import pytest

from coretoy import rec, run_toy

CAP_DEFAULT = 512   # static policies' default max_new_tokens


def times(result, rid):
    r = rec(result, rid)
    return r["first_scheduled_s"], r["first_token_s"], r["finish_s"]


# --------------------------------------------------------------------------------- vanilla
def test_vanilla_batches_in_arrival_order_padded_to_longest_prompt():
    rows = [("r0", 0, 10, 4), ("r1", 0, 20, 2), ("r2", 0, 8, 3)]
    # predictions would reorder the batch if vanilla looked at them; it must not
    res = run_toy(rows, "vanilla", predicted=[100, 1, 50], policy_params={"batch_size": 2})
    # batch 1 = [r0, r1], W = 20, n = max(4, 2) = 4
    #   prefill 1 + 0.5*2 + 0.125*2*20 = 7 -> first token 7; + 3 decodes * (1 + 1) = 6 -> 13
    # batch 2 = [r2] at 13, W = 8, n = 3
    #   prefill 1 + 0.5 + 0.125*8 = 2.5 -> 15.5; + 2 * 1.5 = 3 -> 18.5
    assert times(res, "r0") == (0.0, 7.0, 13.0)
    assert times(res, "r1") == (0.0, 7.0, 13.0)     # finished at 2 tokens, returned at batch end
    assert times(res, "r2") == (13.0, 15.5, 18.5)
    r0, r1, r2 = rec(res, "r0"), rec(res, "r1"), rec(res, "r2")
    assert (r0["generated_tokens"], r1["generated_tokens"], r2["generated_tokens"]) == (4, 2, 3)
    assert (r0["slot_tokens"], r1["slot_tokens"], r2["slot_tokens"]) == (4, 4, 3)
    assert (r0["slot_tokens_all"], r1["slot_tokens_all"], r2["slot_tokens_all"]) == (4, 4, 3)
    assert not res.records["truncated"].any()
    assert (res.records["attempts"] == 1).all() and (res.records["wasted_tokens"] == 0).all()

    st = res.steps
    assert list(st["kind"]) == ["generate", "generate"]
    assert list(st["start_s"]) == [0.0, 13.0] and list(st["end_s"]) == [13.0, 18.5]
    assert list(st["rows"]) == [2, 1] and list(st["iterations"]) == [4, 3]
    assert list(st["prefill_tokens"]) == [2 * 20, 8]          # padded prompt slots
    assert list(st["decode_tokens"]) == [2 * 3, 1 * 2]        # rows x (n - 1)
    assert list(st["kv_used_tokens"]) == [2 * (20 + 4), 8 + 3]  # padded reservation


def test_vanilla_online_admits_only_when_idle_and_does_not_wait_to_fill():
    rows = [("r0", 0, 8, 4), ("r1", 1.0, 8, 2), ("r2", 1.5, 8, 2)]
    res = run_toy(rows, "vanilla", policy_params={"batch_size": 2})
    # t=0: only r0 waits -> batch [r0] alone: 2.5 + 3 * 1.5 = 7
    # t=7: r1, r2 wait -> batch [r1, r2], W=8, n=2: 1 + 1 + 0.125*16 = 4 -> 11; + 2 -> 13
    assert times(res, "r0") == (0.0, 2.5, 7.0)
    assert times(res, "r1") == (7.0, 11.0, 13.0)
    assert times(res, "r2") == (7.0, 11.0, 13.0)
    assert res.summary["queue_s_mean"] == pytest.approx((0 + 6.0 + 5.5) / 3)


def test_vanilla_truncates_at_its_cap():
    # policy max_new_tokens 3: the 5-token request stops at 3, truncated
    res = run_toy([("a", 0, 8, 5), ("b", 0, 8, 2)], "vanilla",
                  policy_params={"batch_size": 2, "max_new_tokens": 3})
    a, b = rec(res, "a"), rec(res, "b")
    assert (a["generated_tokens"], a["truncated"], a["slot_tokens"]) == (3, True, 3)
    assert (b["generated_tokens"], b["truncated"], b["slot_tokens"]) == (2, False, 3)
    # 4 + 2 * 2 = 8
    assert a["finish_s"] == b["finish_s"] == 8.0
    assert res.summary["truncated"] == 1


def test_run_level_max_new_tokens_clips_static_and_sets_policy_cap():
    res = run_toy([("a", 0, 8, 5), ("b", 0, 8, 2)], "vanilla", max_new_tokens=3,
                  policy_params={"batch_size": 2})
    assert list(res.records["generated_tokens"]) == [3, 2]
    assert list(res.records["truncated"]) == [True, False]
    assert res.records["finish_s"].tolist() == [8.0, 8.0]


# --------------------------------------------------------------------------------- sorted
def test_sorted_orders_pool_by_prediction():
    rows = [("r0", 0, 8, 8), ("r1", 0, 8, 2), ("r2", 0, 8, 6), ("r3", 0, 8, 3)]
    res = run_toy(rows, "sorted", policy_params={"batch_size": 2})
    # oracle order r1(2) r3(3) | r2(6) r0(8)
    # [r1, r3]: n=3: 1 + 1 + 0.125*16 = 4 -> 4; + 2*2 -> 8
    # [r2, r0] at 8: n=8: 4 -> 12; + 7*2 -> 26
    assert times(res, "r1") == (0.0, 4.0, 8.0)
    assert times(res, "r3") == (0.0, 4.0, 8.0)
    assert times(res, "r2") == (8.0, 12.0, 26.0)
    assert times(res, "r0") == (8.0, 12.0, 26.0)
    assert list(res.records["slot_tokens"]) == [8, 3, 8, 3]
    # the same trace under vanilla: [r0, r1] n=8 -> 18; [r2, r3] n=6 -> 18 + 4 + 5*2 = 32
    van = run_toy(rows, "vanilla", policy_params={"batch_size": 2})
    assert van.records["finish_s"].tolist() == [18.0, 18.0, 32.0, 32.0]
    assert res.summary["e2e_s_mean"] == 17.0 and van.summary["e2e_s_mean"] == 25.0


def test_sorted_sorts_within_each_pool_only():
    rows = [("r0", 0, 8, 8), ("r1", 0, 8, 2), ("r2", 0, 8, 6), ("r3", 0, 8, 3)]
    res = run_toy(rows, "sorted", policy_params={"batch_size": 1, "pool_size": 2})
    # pool [r0, r1] -> r1 (n=2: 2.5 + 1.5 = 4), r0 (n=8: 2.5 + 7*1.5 = 13 -> 17)
    # pool [r2, r3] -> r3 (n=3: 5.5 -> 22.5), r2 (n=6: 2.5 + 5*1.5 = 10 -> 32.5)
    assert [rec(res, i)["finish_s"] for i in ("r1", "r0", "r3", "r2")] == [4.0, 17.0, 22.5, 32.5]


def test_sorted_uses_predictions_not_truth():
    rows = [("r0", 0, 8, 2), ("r1", 0, 8, 8)]
    # predicted says r1 is short: it goes first
    res = run_toy(rows, "sorted", predicted=[9, 1], policy_params={"batch_size": 1})
    # r1 alone n=8: 2.5 + 10.5 = 13; r0 at 13: n=2: 4 -> 17
    assert rec(res, "r1")["finish_s"] == 13.0 and rec(res, "r0")["finish_s"] == 17.0


# --------------------------------------------------------------------------------- binned
FCR_ROWS = [("r0", 0, 8, 30), ("r1", 0, 8, 70), ("r2", 0, 8, 120), ("r3", 0, 8, 100)]
FCR_PRED = [30, 40, 120, 140]     # r1 under-predicted (bin 50, true 70)


def test_binned_fcr_without_vbs_recomputes_failed_row_after_pool():
    res = run_toy(FCR_ROWS, "binned", predicted=FCR_PRED,
                  policy_params={"batch_size": 2, "vbs": False, "fcr": True})
    # sorted by prediction: r0(30) r1(40) | r2(120) r3(140)
    # [r0, r1] cap = bin_up(40) = 50: n = min(50, 70) = 50
    #   4 + 49*2 = 102; r0 done (30 <= 50); r1 hits the cap unfinished -> fails, 50 wasted
    # [r2, r3] cap = bin_up(140) = 150: n = min(150, 120) = 120: 4 + 119*2 = 242 -> 344
    # recompute [r1] at the full cap 512, no FCR: n = 70: 2.5 + 69*1.5 = 106 -> 450
    assert times(res, "r0") == (0.0, 4.0, 102.0)
    assert times(res, "r2") == (102.0, 106.0, 344.0)
    assert times(res, "r3") == (102.0, 106.0, 344.0)
    r1 = rec(res, "r1")
    # first_scheduled/first_token keep the first attempt's values
    assert (r1["first_scheduled_s"], r1["first_token_s"], r1["finish_s"]) == (0.0, 4.0, 450.0)
    assert r1["generated_tokens"] == 70
    assert (r1["attempts"], r1["failed_attempts"], r1["preemptions"]) == (2, 1, 0)
    assert r1["wasted_tokens"] == 50                 # the cap iterations it ran
    assert r1["slot_tokens"] == 70                   # final attempt's batch length only
    assert r1["slot_tokens_all"] == 50 + 70          # every attempt
    assert not r1["truncated"]
    assert [rec(res, i)["slot_tokens"] for i in ("r0", "r2", "r3")] == [50, 120, 120]
    assert res.records["wasted_tokens"].sum() == 50
    assert list(res.steps["iterations"]) == [50, 120, 70]
    assert list(res.steps["rows"]) == [2, 2, 1]


def test_binned_fcr_recompute_happens_before_the_next_pool():
    res = run_toy(FCR_ROWS, "binned", predicted=FCR_PRED,
                  policy_params={"batch_size": 2, "vbs": False, "fcr": True, "pool_size": 2})
    # pool [r0, r1]: cap 50 -> 102, r1 fails; recompute r1 -> 102 + 106 = 208
    # pool [r2, r3]: 208 + 242 = 450
    assert rec(res, "r0")["finish_s"] == 102.0
    assert rec(res, "r1")["finish_s"] == 208.0
    assert rec(res, "r2")["finish_s"] == rec(res, "r3")["finish_s"] == 450.0


def test_binned_fcr_row_reaching_the_full_cap_is_truncated_not_recomputed():
    # regression: with the policy's cap (100) below a bin (150), a row that reached the cap
    # was failed by FCR and recomputed at the same cap: the same 100 tokens twice
    res = run_toy([("a", 0, 8, 150), ("b", 0, 8, 20)], "binned", predicted=[120, 20],
                  policy_params={"max_new_tokens": 100, "vbs": False, "batch_size": 1})
    # [b] cap 50: n = 20: 2.5 + 19 * 1.5 = 31; [a] cap min(150, 100): n = 100:
    #   31 + 2.5 + 99 * 1.5 = 182, truncated at its first attempt
    a, b = rec(res, "a"), rec(res, "b")
    assert (a["generated_tokens"], a["truncated"], a["attempts"]) == (100, True, 1)
    assert (a["wasted_tokens"], a["failed_attempts"], a["finish_s"]) == (0, 0, 182.0)
    assert b["finish_s"] == 31.0
    assert list(res.steps["iterations"]) == [20, 100]
    assert res.summary["fcr_recompute_ratio"] == 0.0


def test_binned_without_vbs_and_fcr_is_sorted_at_full_cap():
    res = run_toy(FCR_ROWS, "binned", predicted=FCR_PRED,
                  policy_params={"batch_size": 2, "vbs": False, "fcr": False})
    # [r0, r1] cap 512: n = 70: 4 + 69*2 = 142; [r2, r3]: n = 120: 4 + 119*2 = 242 -> 384
    assert res.records["finish_s"].tolist() == [142.0, 142.0, 384.0, 384.0]
    assert list(res.records["slot_tokens"]) == [70, 70, 120, 120]
    assert (res.records["attempts"] == 1).all() and res.records["wasted_tokens"].sum() == 0


def test_binned_vbs_paper_table_merges_short_leftover_into_next_bin():
    res = run_toy(FCR_ROWS, "binned", predicted=FCR_PRED, policy_params={"vbs": True,
                                                                         "fcr": True})
    # bins 50: [r0, r1], 150: [r2, r3]; bin 50's batch of 2 is < max(128 // 2, 16): it
    # joins bin 150 -> one batch of 4 rows, cap 150, n = min(150, 120) = 120 (r1 fits now)
    #   1 + 0.5*4 + 0.125*32 = 7; + 119 * 3 = 357 -> 364
    assert res.records["finish_s"].tolist() == [364.0] * 4
    assert res.records["first_token_s"].tolist() == [7.0] * 4
    assert list(res.steps["rows"]) == [4] and list(res.steps["iterations"]) == [120]
    assert (res.records["attempts"] == 1).all()


def test_binned_vbs_memory_table_batch_size_per_bin():
    rows = [(f"a{i:02d}", 0, 8, 40) for i in range(16)] + [("b0", 0, 8, 120), ("b1", 0, 8, 110)]
    pred = [40] * 16 + [120, 130]
    res = run_toy(rows, "binned", predicted=pred,
                  policy_params={"vbs": True, "vbs_table": "memory", "max_batch_size": 16})
    # bin 50: 16 rows, size min(fits, 16) = 16, not < max(8, 16) -> batch (16 rows, cap 50)
    #   1 + 8 + 0.125*128 = 25; n = 40: + 39 * 9 = 351 -> 376
    # bin 150: [b0, b1], the last bin -> batch cap 150, n = 120: 4 + 119*2 = 242 -> 618
    assert list(res.steps["rows"]) == [16, 2]
    assert list(res.steps["iterations"]) == [40, 120]
    assert set(res.records["finish_s"][:16]) == {376.0}
    assert rec(res, "b0")["finish_s"] == rec(res, "b1")["finish_s"] == 618.0
    assert rec(res, "b0")["first_scheduled_s"] == 376.0
    # the paper table (bin 50 -> 256) would merge the 16 rows into bin 150: one batch of 18
    paper = run_toy(rows, "binned", predicted=pred, policy_params={"vbs": True})
    # 1 + 9 + 0.125*144 = 28; + 119 * 10 = 1190 -> 1218
    assert list(paper.steps["rows"]) == [18]
    assert set(paper.records["finish_s"]) == {1218.0}


def test_static_step_is_one_event_per_batch():
    rows = [(f"r{i}", 0, 8, 200 + i) for i in range(4)]
    res = run_toy(rows, "vanilla", policy_params={"batch_size": 4})
    assert len(res.steps) == 1 and res.steps["iterations"].iloc[0] == 203
    # 1 + 2 + 0.125*32 = 7; + 202 * 3 = 606 -> 613
    assert res.records["finish_s"].tolist() == [613.0] * 4
