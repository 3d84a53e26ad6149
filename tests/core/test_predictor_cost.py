"""A predictor's cost is a model of the serving hardware (issue #16): a side model's roofline
time on its device, charged on the served GPU (blocking) or beside it on the host CPU; nothing
charged for a policy that never reads predictions. Hand-computed with the toy cost model
(coretoy: an iteration costs 1 + 0.5 rows + 0.125 prompt tokens)."""

from __future__ import annotations

import numpy as np
import pytest

from coretoy import rec, toy_executor, trace
from seqsched.app.run import RunConfig, simulate
from seqsched.backends.specs import get_gpu
from seqsched.predictors import make_predictor
from seqsched.predictors.basic import FixedPredictor
from seqsched.sim.prediction import Device, EncoderShape, PredictorCost

# MiniLM-L6 (all-MiniLM-L6-v2's config.json): 6 layers, hidden 384, MLP 1536, vocab 30522
MINILM = EncoderShape("MiniLM-L6", layers=6, d_model=384, d_ff=1536, vocab_size=30522,
                      max_position=512)
# a toy encoder: 6 dense weights (4 d^2 + 2 d d_ff at d = d_ff = 1), so a padded batch of r
# rows x w tokens costs 12 r w + 4 r w^2 FLOPs; on a 4 FLOP/s device that is (3 w + w^2) r s
TOY = EncoderShape("toy", layers=1, d_model=1, d_ff=1, vocab_size=1, max_position=1)
SLOW = Device("toy", flops=4.0, bandwidth=1e30)
ROWS = [("r0", 0.0, 8, 3), ("r1", 0.0, 8, 2)]


def side(on: str, batch_size: int = 128, overhead_s: float = 0.0) -> PredictorCost:
    return PredictorCost(on=on, batch_size=batch_size, encoder=TOY,
                         encoder_tokens=np.array([2, 1]), device=SLOW, overhead_s=overhead_s)


def run(policy: str, cost: PredictorCost, **params):
    pred = FixedPredictor(np.array([3, 2]), cost, "side")
    return simulate(trace(ROWS), RunConfig(policy=policy, policy_params=params),
                    predictor=pred, executor=toy_executor())


def spans(res, kind: str) -> list[tuple[float, float]]:
    st = res.steps[res.steps["kind"] == kind]
    return list(zip(st["start_s"].tolist(), st["end_s"].tolist()))


def test_minilm_shape_and_modelled_cost_on_an_a100_by_hand():
    # parameters: embeddings (30522 + 512 + 2) x 384 + LayerNorm 768 = 11,918,592; a layer
    # 4 (384^2 + 384) + (384 x 1536 + 1536) + (1536 x 384 + 384) + 2 x 768 = 1,774,464;
    # pooler 384^2 + 384 = 147,840: 22,713,216 (the model card's 22.7M)
    assert MINILM.params == 11_918_592 + 6 * 1_774_464 + 147_840 == 22_713_216
    assert MINILM.dense_params == 6 * (4 * 384 ** 2 + 2 * 384 * 1536) == 10_616_832
    a100 = PredictorCost(encoder=MINILM, encoder_tokens=np.full(128, 64)).on_served(
        get_gpu("A100-80GB"))
    assert a100.device.flops == 312e12 and a100.device.bandwidth == 2039e9
    # 128 prompts padded to 64 tokens: 2 x 10,616,832 x 8192 + 4 x 6 x 384 x 8192 x 64 FLOPs
    flops = 2 * 10_616_832 * 8192 + 4 * 6 * 384 * 8192 * 64
    assert flops == 178_778_013_696
    assert a100.batch_seconds(list(range(128))) == pytest.approx(flops / 312e12, rel=1e-12)
    assert a100.batch_seconds(list(range(128))) == pytest.approx(5.730e-4, rel=1e-3)
    # one 1-token prompt is bound by streaming the fp16 dense weights once
    assert a100.batch_seconds([0]) == pytest.approx(10_616_832 * 2 / 2039e9, rel=1e-12)
    h100 = PredictorCost(encoder=MINILM, encoder_tokens=np.full(128, 64)).on_served(
        get_gpu("H100-SXM"))
    assert h100.batch_seconds(list(range(128))) == pytest.approx(flops / 989e12, rel=1e-12)


def test_side_model_on_the_gpu_blocks_the_replica():
    # one batch of both rows padded to 2 tokens: (3 x 2 + 4) x 2 = 20 s, + 1 s overhead; then
    # the sorted batch: prefill 1 + 0.5 x 2 + 0.125 x 16 = 4, two decodes of 1 + 0.5 x 2 = 2
    res = run("sorted", side("gpu", overhead_s=1.0))
    assert spans(res, "predict") == [(0.0, 21.0)]
    assert spans(res, "generate") == [(21.0, 29.0)]
    assert rec(res, "r0")["finish_s"] == 29.0 and rec(res, "r0")["first_scheduled_s"] == 21.0
    # batches of one: r0 (2 tokens) 10 s, then r1 (1 token) 4 s
    assert spans(run("sorted", side("gpu", batch_size=1)), "predict") == [(0.0, 10.0),
                                                                          (10.0, 14.0)]


def test_side_model_on_the_cpu_runs_beside_the_gpu():
    # cpu: r0 [0, 10], r1 [10, 14]. gpu: r0 prefills at 10 (2.5 s) and decodes (1.5 s) until
    # r1's prediction is ready at 14; r1 joins (prefill 8 + r0's decode: 1 + 1 + 1 = 3 s) and
    # r0 finishes at 17; r1 decodes its last token alone (1.5 s): 18.5
    res = run("sjf", side("cpu", batch_size=1))
    assert spans(res, "predict-cpu") == [(0.0, 10.0), (10.0, 14.0)]
    assert spans(res, "generate") == [(10.0, 14.0), (14.0, 17.0), (17.0, 18.5)]
    assert spans(res, "predict") == []
    r0, r1 = rec(res, "r0"), rec(res, "r1")
    assert (r0["first_scheduled_s"], r0["finish_s"]) == (10.0, 17.0)
    assert (r1["first_scheduled_s"], r1["finish_s"]) == (14.0, 18.5)
    # busy time counts the GPU only: 8.5 of 18.5 s
    assert res.summary["busy_fraction"] == pytest.approx(8.5 / 18.5, rel=1e-12)


def test_free_placement_and_policies_that_never_read_predictions_pay_nothing():
    assert side("free").is_free
    free = run("sorted", side("free"))
    assert spans(free, "predict") == [] and spans(free, "generate") == [(0.0, 8.0)]
    for policy, params in (("vanilla", {}), ("fcfs", {})):
        paid, none = run(policy, side("gpu"), **params), run(policy, PredictorCost(), **params)
        assert spans(paid, "predict") == []
        assert paid.steps.equals(none.steps) and paid.records.equals(none.records)
    # fcfs with predicted admission reads them, and pays
    assert spans(run("fcfs", side("gpu"), admission="predicted"), "predict") == [(0.0, 20.0)]


def test_reads_predictions_attribute():
    from seqsched.policies import make_policy

    reads = {name: make_policy(name).reads_predictions
             for name in ("vanilla", "sorted", "binned", "fcfs", "sjf", "srpt", "ltr")}
    assert reads == {"vanilla": False, "sorted": True, "binned": True, "fcfs": False,
                     "sjf": True, "srpt": True, "ltr": True}
    assert make_policy("fcfs", admission="predicted").reads_predictions


@pytest.mark.parametrize("policy", ["vanilla", "fcfs"])
def test_an_llm_length_query_leaves_vanilla_and_fcfs_unchanged(policy):
    rows = [(f"r{i}", 0.25 * i, 30 + i, 5 + 3 * i) for i in range(12)]
    t = trace(rows)
    runs = {}
    for name, params in (("none", {}), ("noisy", {"query_tokens": 40, "batch_size": 4})):
        cfg = RunConfig(policy=policy, predictor=name, predictor_params=params,
                        backend="paper-a100", max_new_tokens=64, engine="baseline")
        runs[name] = simulate(t, cfg)
    a, b = runs["none"], runs["noisy"]
    assert (b.steps["kind"] != "predict").all()
    assert a.steps.equals(b.steps)
    assert a.records.drop(columns="predicted").equals(b.records.drop(columns="predicted"))
    drop = ("sim_wall_s",)
    assert {k: v for k, v in a.summary.items() if k not in drop} == \
        {k: v for k, v in b.summary.items() if k not in drop}
    # the same query does cost a policy that reads predictions
    sorted_run = simulate(t, RunConfig(policy="sjf" if policy == "fcfs" else "sorted",
                                       predictor="noisy", predictor_params={"query_tokens": 40},
                                       backend="paper-a100", max_new_tokens=64))
    assert (sorted_run.steps["kind"] == "predict").any()


def test_an_llm_query_cannot_run_on_the_cpu():
    with pytest.raises(ValueError, match="on=gpu or on=free"):
        PredictorCost(prompt_tokens=np.array([5]), on="cpu")
    with pytest.raises(ValueError, match="on must be one of"):
        PredictorCost(on="tpu")
    assert make_predictor("none").cost(trace(ROWS)).is_free


def test_fcfs_with_a_costly_predictor_still_runs_on_the_array_engine():
    import dataclasses

    from seqsched.common.errors import UserError

    t = trace([(f"r{i}", 0.25 * i, 30 + i, 5 + 3 * i) for i in range(12)])
    cfg = RunConfig(policy="fcfs", predictor="noisy", predictor_params={"query_tokens": 40},
                    backend="paper-a100", max_new_tokens=64, engine="fast")
    fast, base = simulate(t, cfg), simulate(t, dataclasses.replace(cfg, engine="baseline"))
    assert fast.records.equals(base.records) and fast.steps.equals(base.steps)
    with pytest.raises(UserError, match="charges its queries"):      # sjf reads them: it pays
        simulate(t, dataclasses.replace(cfg, policy="sjf"))
