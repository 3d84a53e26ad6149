"""Pipeline parallelism: vLLM's layer split, KV capacity per stage, and the batch queue's
timing by hand with the toy cost model (tests/core/coretoy.py: iteration = 1 + 0.5 rows +
0.125 prompt tokens) over two stages of one layer each, no LM head, 0.25 s per transfer."""

from __future__ import annotations

import numpy as np
import pytest

from seqsched.app import pipeline_setup
from seqsched.app.run import RunConfig, execute, prepare, simulate
from seqsched.backends.pipeline import (PipelineTiming, pp_kv_capacity_tokens, stage_layers,
                                        stage_weight_bytes)
from seqsched.backends.specs import GPUSpec, ModelSpec, get_gpu, get_model
from seqsched.common.errors import UserError
from seqsched.traces.synthetic import azure_conv

from tests.core.coretoy import rec, run_toy

SEND = 0.25


def toy_timing(pp: int, send: float = SEND) -> PipelineTiming:
    return PipelineTiming((1,) * pp, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, send)


@pytest.fixture
def toy_stages(monkeypatch):
    monkeypatch.setattr(pipeline_setup, "pipeline_timing",
                        lambda gpu, model, pp, tp=1: toy_timing(pp))


@pytest.mark.parametrize("layers, pp, split", [
    (80, 4, [20, 20, 20, 20]), (32, 3, [11, 11, 10]), (10, 4, [2, 3, 3, 2]),
    (7, 2, [4, 3]), (5, 5, [1] * 5), (32, 1, [32])])
def test_layers_split_as_vllm_get_pp_indices(layers, pp, split):
    assert stage_layers(layers, pp) == split


def test_more_stages_than_layers_is_bad_input():
    with pytest.raises(UserError, match="1 to 5 stages"):
        stage_layers(5, 6)


def test_kv_capacity_is_the_smallest_stages_blocks():
    # 4 layers, d 64, 4 heads of 16 (2 KV heads), ff 128, vocab 1000, fp16
    m = ModelSpec("toy", 4, 64, 4, 2, 128, 1000, 4096)
    gpu = GPUSpec("toy-gpu", 1.0, 1.0, 0.01, "test")          # 10 MB
    layer = m.layer_params * 2
    table = 1000 * 64 * 2
    assert stage_weight_bytes(m, 2) == [2 * layer + table, 2 * layer + table + 64 * 2]
    kv_token = 2 * 2 * 2 * 16 * 2                               # 2 layers x K,V x 2 heads x 16
    last = 0.9e7 - (2 * layer + table + 128) - 1000             # the last stage has the head
    assert pp_kv_capacity_tokens(gpu, m, 0.9, 1000, 1, 2, 16) == int(last // (kv_token * 16)) * 16


def test_pp_holds_more_kv_per_replica_than_one_gpu():
    gpu, m = get_gpu("H100-SXM"), get_model("llama-3.1-70b")
    with pytest.raises(UserError, match="stage 0 .* PP2"):
        pp_kv_capacity_tokens(gpu, m, 0.85, 0, 1, 2)
    two = pp_kv_capacity_tokens(gpu, m, 0.9, 0, 2, 2)          # PP2 x TP2: 4 GPUs
    four = pp_kv_capacity_tokens(gpu, m, 0.9, 0, 4, 2)         # PP2 x TP4: 8 GPUs
    assert four > 2 * two                                      # weights per GPU halve too


def test_stage_times_split_by_layers_and_the_head_goes_last():
    t = PipelineTiming((1, 3), 0.0, 4.0, 1.0, 2.0, 0.0, 1.0, 0.0)   # head: 4 B at 2 B/s = 2 s
    assert np.allclose(t.stage_times(10.0, 5), [2.0, 8.0])       # (10 - 2) x 1/4, x 3/4 + 2
    assert np.allclose(t.stage_times(1.0, 5), [0.0, 1.0])        # the head never exceeds the step


def test_one_request_passes_both_stages_and_a_transfer_per_token(toy_stages):
    rows = [("a", 0, 8, 3)]
    plain = rec(run_toy(rows, "fcfs"), "a")
    assert (plain["first_token_s"], plain["finish_s"]) == (2.5, 5.5)
    r = rec(run_toy(rows, "fcfs", pp=2), "a")
    # prefill 2.5 s = 1.25 per stage + 0.25 transfer; decodes 1.5 s = 0.75 + 0.25 + 0.75
    assert (r["first_token_s"], r["finish_s"]) == (2.75, 2.75 + 2 * 1.75)


def test_pipeline_fills_with_two_micro_batches_and_drains(toy_stages):
    rows = [("a", 0, 8, 2), ("b", 0, 8, 2)]
    res = run_toy(rows, "fcfs", pp=2, policy_params={"max_batched_tokens": 8})
    a, b = rec(res, "a"), rec(res, "b")
    # mb1 a's prompt: stage 0 [0, 1.25], stage 1 [1.5, 2.75]; mb2 b's prompt enters stage 0
    # at 1.25 (the queue holds 2), stage 1 [2.75, 4.0]; a's decode at 2.75: stage 0 [2.75,
    # 3.5], stage 1 waits for b until 4.0 -> 4.75; b's decode at 4.0: [4.0, 4.75], [5.0, 5.75]
    assert (a["first_token_s"], a["finish_s"]) == (2.75, 4.75)
    assert (b["first_token_s"], b["finish_s"]) == (4.0, 5.75)
    steps = res.steps
    assert steps["start_s"].tolist() == [0.0, 2.75, 4.0, 4.75]    # no overlapping rows
    assert steps["end_s"].tolist() == [2.75, 4.0, 4.75, 5.75]
    assert steps["iterations"].tolist() == [1, 1, 1, 1]


def test_async_scheduling_runs_the_stages_one_after_another(toy_stages):
    rows = [("a", 0, 8, 3)]
    r = rec(run_toy(rows, "fcfs", pp=2, policy_params={"async_scheduling": True}), "a")
    # whole step + one transfer + the token broadcast (one link latency)
    assert (r["first_token_s"], r["finish_s"]) == (2.5 + 0.5, 3.0 + 2 * (1.5 + 0.5))


@pytest.mark.parametrize("pp, asynchronous", [(2, False), (4, False), (3, True)])
def test_conservation_with_preemption(pp, asynchronous):
    t = azure_conv(120, seed=3, rate=20)
    cfg = RunConfig(policy="fcfs", gpu="H100-SXM", model="llama-3-8b", pp=pp, kv_blocks=600,
                    max_new_tokens=400, policy_params={"async_scheduling": asynchronous})
    run = prepare(t, cfg)
    res = execute(run)
    r, s = res.records, res.steps
    assert len(r) == 120 and (r["generated_tokens"].to_numpy() == np.minimum(
        t.output_tokens, 400)).all()
    assert (r["first_token_s"] > r["arrival_s"]).all()
    assert (r["finish_s"] >= r["first_token_s"]).all()
    kv = run.engine.replicas[0].kv
    assert kv.used_blocks == 0 and s["kv_used_tokens"].max() <= 600 * 16
    assert r["preemptions"].sum() > 0
    if not asynchronous:                 # micro-batches: one iteration each, log rows in order
        assert (s["iterations"] == 1).all()
        assert (s["start_s"].iloc[1:].to_numpy() >= s["end_s"].iloc[:-1].to_numpy()).all()
    assert res.summary["gpus"] == pp


def test_tokens_conserved_without_preemption():
    t = azure_conv(80, seed=5, rate=10)
    res = simulate(t, RunConfig(policy="sjf", gpu="H100-SXM", model="llama-3-8b", pp=2,
                                max_new_tokens=300))
    s, target = res.steps, np.minimum(t.output_tokens, 300)
    assert s["prefill_tokens"].sum() == t.prompt_tokens.sum()
    assert s["decode_tokens"].sum() == target.sum() - len(t)


def test_pp_one_is_the_plain_engine():
    t = azure_conv(60, seed=2, rate=8)
    a = simulate(t, RunConfig(gpu="H100-SXM", model="llama-3-8b", engine="baseline"))
    b = simulate(t, RunConfig(gpu="H100-SXM", model="llama-3-8b", engine="baseline", pp=1))
    assert a.records.equals(b.records) and a.steps.equals(b.steps)


@pytest.mark.parametrize("changes, match", [
    ({"pp": 64}, "does not fit a model of 32 layers"),
    ({"pp": 2, "policy": "binned"}, "continuous policy"),
    ({"pp": 2, "dp_lockstep": 2, "replicas": 2}, "--dp-lockstep"),
    ({"pp": 0}, "pipeline-parallel-size must be >= 1")])
def test_bad_pipeline_settings_are_one_error(changes, match):
    cfg = RunConfig(**{"gpu": "H100-SXM", "model": "llama-3-8b", **changes})
    with pytest.raises(UserError, match=match):
        simulate(azure_conv(10, seed=1, rate=5), cfg)


def test_a_prompts_next_chunk_follows_while_the_previous_is_in_flight(toy_stages):
    res = run_toy([("a", 0, 16, 2)], "fcfs", pp=2, policy_params={"max_batched_tokens": 8})
    a = rec(res, "a")
    # chunk 1 (2.5 s): stage 0 [0, 1.25], stage 1 [1.5, 2.75]; chunk 2 is scheduled at once
    # (vLLM counts scheduled tokens as computed): stage 0 [1.25, 2.5], stage 1 [2.75, 4.0];
    # the decode then waits for that output: [4.0, 4.75], [5.0, 5.75]
    assert (a["first_token_s"], a["finish_s"]) == (4.0, 5.75)
    assert res.steps["prefill_tokens"].tolist() == [8, 8, 0]


def test_async_pp_plans_n_minus_one_steps_ahead(toy_stages):
    # PP 4 async: a step costs the whole model + 3 transfers + the broadcast (1 s here); the
    # batch queue of 4 plans steps 1-4 at t = 0, so b (0.1 s) first joins step 5, planned
    # when step 1 ends: a's prefill [0, 3.5], decodes [3.5, 6], [6, 8.5], [8.5, 11]; b's
    # prompt [11, 14.5]. With a one-step lag it would have joined step 3 ([6, 10]).
    res = run_toy([("a", 0, 8, 4), ("b", 0.1, 8, 1)], "fcfs", pp=4,
                  policy_params={"async_scheduling": True})
    a, b = rec(res, "a"), rec(res, "b")
    assert (a["first_token_s"], a["finish_s"]) == (3.5, 11.0)
    assert (b["first_token_s"], b["finish_s"]) == (14.5, 14.5)


def test_only_the_last_stage_holds_back_the_sampler_peak():
    # 32 layers over 3 stages: 11, 11, 10; the last stage has fewer layers but the LM head and
    # the sampler's activation peak (vLLM's profile run samples on the last rank only)
    from seqsched.backends.vllm_engine import activation_peaks, kv_cache_tokens
    gpu, m = get_gpu("H100-SXM"), get_model("llama-3-8b")
    dense, sampler = activation_peaks(m, 8192, 1024)
    assert sampler > dense
    got = kv_cache_tokens(gpu, m, 0.9, 8192, 1024, 16, pp=3)
    want = pp_kv_capacity_tokens(gpu, m, 0.9, [dense, dense, sampler], 1, 3, 16)
    assert got == want and got > pp_kv_capacity_tokens(gpu, m, 0.9, sampler, 1, 3, 16)
