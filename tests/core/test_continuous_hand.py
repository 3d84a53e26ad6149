"""Continuous (iteration-level) batching, hand-computed with the toy cost model of coretoy.py:

    iteration = 1 + 0.5 * rows + 0.125 * (prompt tokens processed in it)
    a pure-decode iteration of r rows = 1 + 0.5 r

The prefill iteration produces the first output token (TTFT ends with it); a request with
output_tokens = n needs the prefill iteration plus n - 1 decode iterations. An event runs
until the first row finishes, and stops at the first iteration boundary at or after the next
arrival, which is admitted there.
"""

from __future__ import annotations

from coretoy import rec, run_toy, small_kv_config, toy_executor, trace, FixedPredictor
from seqsched.app.run import simulate


def times(result, rid):
    r = rec(result, rid)
    return r["first_scheduled_s"], r["first_token_s"], r["finish_s"]


def test_fcfs_mixed_batch_two_requests():
    res = run_toy([("r0", 0, 10, 3), ("r1", 0, 20, 2)], "fcfs")
    # event 1: both prefill: 1 + 0.5*2 + 0.125*30 = 5.75 (TTFT of both, token 1 each)
    #          runs until the first finish: min(3, 2) = 2 iterations: + (1 + 0.5*2) = 7.75
    #          r1 done (2 tokens) at 7.75
    # event 2: r0 decodes alone: 1 + 0.5 = 1.5 -> 9.25
    assert times(res, "r0") == (0.0, 5.75, 9.25)
    assert times(res, "r1") == (0.0, 5.75, 7.75)
    assert list(res.records["generated_tokens"]) == [3, 2]
    assert list(res.records["slot_tokens"]) == [3, 2]
    st = res.steps
    assert list(st["iterations"]) == [2, 1]
    assert list(st["rows"]) == [2, 1]
    assert list(st["prefill_tokens"]) == [30, 0]
    assert list(st["decode_tokens"]) == [2, 1]      # decode tokens beyond the prefill token
    assert list(st["end_s"]) == [7.75, 9.25]


def test_single_token_request_finishes_with_its_prefill():
    res = run_toy([("a", 0, 16, 1)], "fcfs")
    # 1 + 0.5 + 0.125*16 = 3.5, first token = last token
    assert times(res, "a") == (0.0, 3.5, 3.5)
    assert res.summary["tpot_s_mean"] != res.summary["tpot_s_mean"]   # NaN: no decode token


def test_arrival_mid_step_admitted_at_next_iteration_boundary():
    res = run_toy([("r0", 0, 8, 10), ("r1", 3.2, 8, 2)], "fcfs")
    # event 1: r0 alone, iteration ends 2.5, 4.0, 5.5 ...; r1 arrives at 3.2 -> stop at 4.0
    # event 2 at 4.0: r0 decode + r1 prefill: 1 + 1 + 0.125*8 = 3 -> 7.0 (r1 TTFT)
    #          min(10 - 2, 2) = 2 iterations: + 2 -> 9.0, r1 done
    # event 3 at 9.0: r0 has 4, needs 6 more: 6 * 1.5 = 9 -> 18.0
    assert times(res, "r0") == (0.0, 2.5, 18.0)
    assert times(res, "r1") == (4.0, 7.0, 9.0)
    assert list(res.steps["start_s"]) == [0.0, 4.0, 9.0]
    assert list(res.steps["iterations"]) == [2, 2, 6]


def test_arrival_exactly_on_an_iteration_boundary():
    # r1 arrives exactly when r0's second iteration ends (4.0): admitted there, same as above
    res = run_toy([("r0", 0, 8, 10), ("r1", 4.0, 8, 2)], "fcfs")
    assert times(res, "r0") == (0.0, 2.5, 18.0)
    assert times(res, "r1") == (4.0, 7.0, 9.0)


def test_idle_replica_starts_at_arrival():
    res = run_toy([("a", 0, 8, 2), ("b", 10.0, 8, 2)], "fcfs")
    # a: 2.5 + 1.5 = 4; idle until 10; b: 10 + 4 = 14
    assert times(res, "a") == (0.0, 2.5, 4.0)
    assert times(res, "b") == (10.0, 12.5, 14.0)
    assert res.summary["makespan_s"] == 14.0
    assert res.summary["busy_fraction"] == 8.0 / 14.0


def test_sjf_orders_by_prediction_fcfs_by_arrival():
    rows = [("r0", 0, 8, 4), ("r1", 0, 8, 2), ("r2", 0, 8, 3)]
    pred = [1, 9, 5]
    params = {"max_num_seqs": 1}
    sjf = run_toy(rows, "sjf", predicted=pred, policy_params=params)
    # sjf: r0 (pred 1): 2.5 + 3*1.5 = 7; r2 (pred 5): 7 + 2.5 + 2*1.5 = 12.5;
    #      r1 (pred 9): 12.5 + 2.5 + 1.5 = 16.5
    assert times(sjf, "r0") == (0.0, 2.5, 7.0)
    assert times(sjf, "r2") == (7.0, 9.5, 12.5)
    assert times(sjf, "r1") == (12.5, 15.0, 16.5)
    fcfs = run_toy(rows, "fcfs", predicted=pred, policy_params=params)
    # fcfs: r0 -> 7; r1 -> 7 + 4 = 11; r2 -> 11 + 5.5 = 16.5
    assert [rec(fcfs, i)["finish_s"] for i in ("r0", "r1", "r2")] == [7.0, 11.0, 16.5]


def test_sjf_late_short_request_jumps_the_queue():
    rows = [("r0", 0, 8, 6), ("r1", 0, 8, 9), ("r2", 1.0, 8, 1)]
    sjf = run_toy(rows, "sjf", policy_params={"max_num_seqs": 1})
    # r0 (6) runs first; r2 arrives at 1.0 -> the event stops at 2.5 but r0 keeps its seat
    # (no priority preemption): 5 more tokens * 1.5 -> 10.0
    # waiting r1 (9), r2 (1): sjf runs r2: 2.5 -> 12.5; then r1: 2.5 + 8*1.5 = 14.5 -> 27.0
    assert times(sjf, "r0") == (0.0, 2.5, 10.0)
    assert times(sjf, "r2") == (10.0, 12.5, 12.5)
    assert times(sjf, "r1") == (12.5, 15.0, 27.0)
    fcfs = run_toy(rows, "fcfs", policy_params={"max_num_seqs": 1})
    # fcfs: r1 at 10 -> 24.5; r2 at 24.5 -> 27.0
    assert times(fcfs, "r1") == (10.0, 12.5, 24.5)
    assert times(fcfs, "r2") == (24.5, 27.0, 27.0)


def test_chunked_prefill_ttft_at_the_iteration_completing_the_prompt():
    res = run_toy([("a", 0, 20, 2)], "fcfs",
                  policy_params={"chunked_prefill": True, "max_batched_tokens": 8})
    # chunks 8, 8, 4 (one iteration per event while the prompt is incomplete)
    #   2.5 -> 2.5; 2.5 -> 5.0; 1 + 0.5 + 0.125*4 = 2.0 -> 7.0 (TTFT), + decode 1.5 -> 8.5
    assert times(res, "a") == (0.0, 7.0, 8.5)
    assert list(res.steps["prefill_tokens"]) == [8, 8, 4]
    assert list(res.steps["iterations"]) == [1, 1, 2]


def test_chunked_prefill_shares_the_token_budget_with_decode_rows():
    res = run_toy([("r0", 0, 4, 6), ("r1", 0, 20, 2)], "fcfs",
                  policy_params={"chunked_prefill": True, "max_batched_tokens": 8})
    # e1: r0 chunk 4, r1 chunk 4 (budget 8): 1 + 1 + 0.125*8 = 3 -> 3.0 (r0 TTFT, r0 has 1)
    # e2: r0 decode (budget 7 left), r1 chunk 7: 1 + 1 + 0.875 = 2.875 -> 5.875 (r0 has 2)
    # e3: same: -> 8.75 (r0 has 3)
    # e4: r1 chunk 2 completes its prompt: 1 + 1 + 0.25 = 2.25 -> 11.0 (r1 TTFT)
    #     min(6 - 3, 2) = 2 iterations: + 2 -> 13.0, r1 done; r0 has 5
    # e5: r0 decode: 1.5 -> 14.5
    assert times(res, "r0") == (0.0, 3.0, 14.5)
    assert times(res, "r1") == (0.0, 11.0, 13.0)
    assert list(res.steps["prefill_tokens"]) == [8, 7, 7, 2, 0]
    assert list(res.steps["end_s"]) == [3.0, 5.875, 8.75, 13.0, 14.5]


def _preempt_run(policy, predicted=None, **params):
    # KV: 32 tokens in blocks of 4 -> 8 blocks; each request needs 8 + 12 = 20 tokens (5 blocks)
    cfg = small_kv_config(32, policy=policy, block_size=4, policy_params=params)
    t = trace([("r0", 0, 8, 12), ("r1", 0, 8, 12)])
    pred = FixedPredictor(predicted) if predicted is not None else None
    res = simulate(t, cfg, predictor=pred, executor=toy_executor())
    assert res.kv_capacity_tokens == 32
    return res


def test_preemption_by_recompute_hand_case():
    res = _preempt_run("fcfs")
    # e1: both admitted (3 blocks each for prompt + 1); prefill 1 + 1 + 0.125*16 = 4 (TTFT)
    #     KV bounds the event: 2 * blocks(8 + k) <= 8 -> k = 8 iterations: + 7 * 2 -> 18
    #     each row holds 16 tokens (8 generated), all 8 blocks used
    # e2: both need a 5th block, none free -> preempt the lowest priority (r1, later index);
    #     its 16 KV tokens are freed, its 8 output tokens kept (vLLM's recompute)
    #     r0 runs its last 4 tokens: 4 * 1.5 = 6 -> 24
    # e3: r1 resumes: its prompt + 8 kept tokens are one 16-token prefill, which produces
    #     token 9: 1 + 0.5 + 0.125*16 = 3.5 -> 27.5; 3 more decodes * 1.5 -> 32
    assert times(res, "r0") == (0.0, 4.0, 24.0)
    r1 = rec(res, "r1")
    assert (r1["first_scheduled_s"], r1["first_token_s"], r1["finish_s"]) == (0.0, 4.0, 32.0)
    assert (r1["attempts"], r1["preemptions"], r1["failed_attempts"]) == (2, 1, 0)
    assert (r1["wasted_tokens"], r1["recomputed_tokens"]) == (0, 16)
    assert (r1["generated_tokens"], r1["slot_tokens"], r1["slot_tokens_all"]) == (12, 12, 12)
    assert rec(res, "r0")["preemptions"] == 0 and rec(res, "r0")["recomputed_tokens"] == 0
    assert res.summary["preemptions"] == 1 and res.summary["recomputed_tokens"] == 16
    assert res.summary["wasted_tokens"] == 0
    st = res.steps
    assert list(st["end_s"]) == [18.0, 24.0, 32.0]
    assert list(st["prefill_tokens"]) == [16, 0, 16]
    assert list(st["decode_tokens"]) == [14, 4, 3]
    assert list(st["iterations"]) == [8, 4, 4]
    # KV held through each event's last iteration: 2 x 16, then 20 (8 + 12) each
    assert list(st["kv_used_tokens"]) == [32, 20, 20]


def test_preemption_restart_throws_the_output_away():
    res = _preempt_run("fcfs", preemption="restart")
    # e1 as above: 0 -> 18, both hold 16 tokens (8 generated) in 4 blocks each, 0 free
    # e2 at 18: r1 preempted (its 4 blocks freed, its 8 tokens thrown away); r0 takes a 5th
    #     block: 3 free. A step that preempts admits nothing (vLLM's `if not preempted_reqs`),
    #     but r1 restarts as its 8-token prompt, blocks(8 + 1) = 3 <= 3: vLLM admits it at the
    #     next iteration, so the step is one iteration: r0 decodes, 1.5 -> 19.5 (r0: 9 tokens)
    # e3 at 19.5: r0 decodes (blocks(18) = 5, held) + r1 prefills 8 from scratch (3 blocks,
    #     0 free): 1 + 1 + 0.125*8 = 3 -> 22.5 (r1's token 1); both decode, 2 each, blocks
    #     still held (r0 up to 20 tokens, r1 up to 12): 24.5, 26.5 = r0's 12th token, done
    # e4 at 26.5: r1 (3 tokens) decodes its last 9 alone: 9 * 1.5 = 13.5 -> 40
    assert times(res, "r0") == (0.0, 4.0, 26.5)
    r1 = rec(res, "r1")
    assert (r1["first_scheduled_s"], r1["first_token_s"], r1["finish_s"]) == (0.0, 4.0, 40.0)
    assert (r1["attempts"], r1["preemptions"], r1["failed_attempts"]) == (2, 1, 0)
    assert (r1["wasted_tokens"], r1["recomputed_tokens"]) == (8, 16)
    assert (r1["generated_tokens"], r1["slot_tokens"], r1["slot_tokens_all"]) == (12, 12, 20)
    st = res.steps
    assert list(st["end_s"]) == [18.0, 19.5, 26.5, 40.0]
    assert list(st["iterations"]) == [8, 1, 3, 9]
    assert list(st["prefill_tokens"]) == [16, 0, 8, 0]
    assert list(st["decode_tokens"]) == [14, 1, 5, 9]
    # blocks held in each step's last iteration x 4: 8; r0's 5; r0's 5 + r1's 3; r1's 5
    assert list(st["kv_used_tokens"]) == [32, 20, 32, 20]


def test_resumed_prefill_above_the_token_budget_is_split():
    # no chunked prefill, budget 12: both 6-token prompts fit one iteration; r1's resume
    # (6 + 10 kept = 16 tokens) never can: it is split (11 + 5) instead of waiting forever
    cfg = small_kv_config(32, policy="fcfs", block_size=4,
                          policy_params={"max_batched_tokens": 12})
    res = simulate(trace([("r0", 0, 6, 12), ("r1", 0, 6, 12)]), cfg, executor=toy_executor())
    # e1: both prefill: 1 + 1 + 0.125*12 = 3.5; KV: 2 * blocks(6 + k) <= 8 -> k = 10:
    #     + 9 * 2 -> 21.5; each row holds 16 tokens (10 generated) in 4 blocks
    # e2: both need a 5th block -> r1 preempted (16 KV tokens freed, 10 output kept), r0
    #     takes its 5th: 3 free. Nothing is admitted in a preempting step, but at the next
    #     iteration (budget 12 - 1 = 11) r1's 16-token resume is split to 11, blocks(11 + 1)
    #     = 3 <= 3: vLLM admits it there, so the step is one iteration: 1.5 -> 23 (r0: 11)
    # e3 at 23: r0 decodes (blocks(18) = 5, held) + r1's chunk of 11 (3 blocks, 0 free),
    #     no token: 1 + 1 + 0.125*11 = 3.375 -> 26.375, r0's 12th token (done)
    # e4 at 26.375: r1's chunk 5 (< 12) completes it and produces token 11 (blocks(17) = 5,
    #     2 more of the 5 r0 freed): 1 + 0.5 + 0.625 = 2.125 -> 28.5; token 12: 1.5 -> 30
    st = res.steps
    assert list(st["prefill_tokens"]) == [12, 0, 11, 5]
    assert list(st["iterations"]) == [10, 1, 1, 2]
    assert list(st["end_s"]) == [21.5, 23.0, 26.375, 30.0]
    assert times(res, "r0") == (0.0, 3.5, 26.375)
    assert times(res, "r1") == (0.0, 3.5, 30.0)
    r1 = rec(res, "r1")
    assert (r1["attempts"], r1["preemptions"], r1["recomputed_tokens"]) == (2, 1, 16)
    assert (r1["generated_tokens"], r1["wasted_tokens"]) == (12, 0)
    assert (st["kv_used_tokens"] <= 32).all()


def test_kv_used_is_logged_while_the_rows_still_hold_it():
    # regression: the step log read the KV after finished rows had freed their blocks, so
    # an event that ended with a completion logged 0 and KV utilisation read 0
    cfg = small_kv_config(32, policy="fcfs", block_size=4)
    res = simulate(trace([("a", 0, 8, 2)]), cfg, executor=toy_executor())
    # one event (prefill + 1 decode); a holds 8 + 2 = 10 tokens -> 3 blocks of 4 until the end
    assert list(res.steps["kv_used_tokens"]) == [12]
    assert res.summary["kv_peak_tokens"] == 12
    assert res.summary["kv_utilization"] == 12 / 32


def test_sjf_preempts_the_longest_predicted():
    res = _preempt_run("sjf", predicted=[20, 5])
    # same as above with the roles swapped: r0 (pred 20) is the victim
    assert times(res, "r1") == (0.0, 4.0, 24.0)
    assert times(res, "r0") == (0.0, 4.0, 32.0)
    assert rec(res, "r0")["preemptions"] == 1 and rec(res, "r1")["preemptions"] == 0


def test_max_num_seqs_limits_the_batch():
    res = run_toy([(f"r{i}", 0, 8, 2) for i in range(3)], "fcfs",
                  policy_params={"max_num_seqs": 2})
    # [r0, r1]: 1 + 1 + 2 = 4, + 2 -> 6; r2: 6 + 2.5 + 1.5 = 10
    assert res.records["finish_s"].tolist() == [6.0, 6.0, 10.0]
    assert rec(res, "r2")["first_scheduled_s"] == 6.0


def test_continuous_run_level_cap_truncates():
    res = run_toy([("a", 0, 8, 10)], "fcfs", max_new_tokens=4)
    a = rec(res, "a")
    assert (a["generated_tokens"], a["truncated"], a["output_tokens"]) == (4, True, 10)
    # 2.5 + 3 * 1.5 = 7
    assert a["finish_s"] == 7.0
