"""The roofline's kernel-measured, shape-dependent efficiencies (backends/roofline_shape.py):
the GEMM curve at and between its grid points, a hand-computed step of a toy model, the
properties a scheduler relies on (positive, never cheaper with more work), the scalar decode
path giving the same doubles, and the shipped table's coverage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqsched.backends.efficiency import kernel_shape, roofline_measurements
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.roofline_shape import KernelShape
from seqsched.backends.roofline_steps import ShapeDecodeTimes, decode_times_for
from seqsched.backends.specs import GPUSpec, ModelSpec, get_gpu, get_model

MEASURED = ("A100-80GB", "H100-SXM", "H200", "RTX-PRO-6000", "RTX-4090")


def toy_shape(**kw) -> KernelShape:
    args = dict(gemm_m=(1, 4), gemm_efficiency=(0.5, 0.25), prefill_attention_efficiency=0.5,
                decode_attention_bandwidth=0.25, attention_floor_us=1000.0,
                kernel_floor_us=100.0, elementwise_bandwidth=0.5)
    args.update(kw)
    return KernelShape(**args)


def test_gemm_curve_exact_at_grid_points_log_linear_between_constant_outside():
    s = KernelShape((1, 4, 16), (0.8, 0.6, 0.9), 0.5, 0.5, 1.0, 1.0, 0.5)
    assert (s.gemm(1), s.gemm(4), s.gemm(16)) == (0.8, 0.6, 0.9)
    assert s.gemm(2) == pytest.approx(0.7)        # log2 2 is halfway from log2 1 to log2 4
    assert s.gemm(8) == pytest.approx(0.75)       # halfway from 4 to 16
    assert s.gemm(0) == 0.8 and s.gemm(0.5) == 0.8 and s.gemm(1e6) == 0.9
    assert (s.below(0), s.below(1), s.below(15), s.below(16)) == (0, 1, 2, 3)


@pytest.mark.parametrize("bad", [dict(gemm_m=(4, 1), gemm_efficiency=(0.5, 0.5)),
                                 dict(gemm_efficiency=(0.5,)),
                                 dict(gemm_efficiency=(0.5, 1.5)),
                                 dict(decode_attention_bandwidth=0.0),
                                 dict(kernel_floor_us=-1.0)])
def test_a_malformed_shape_is_refused(bad):
    with pytest.raises(ValueError):
        toy_shape(**bad)


def toy_model() -> RooflineCostModel:
    # 1 layer, d 4, 1 head of 4, d_ff 8, vocab 16, bf16: layer params 64 + 96 + 8 = 168,
    # n_params 2 x 64 + 168 + 4 = 300; streamed weights (300 - 64) x 2 = 472 bytes of which
    # 128 are the LM head; KV 16 bytes a token; GEMM activations (16 + 40) x 2 = 112 bytes a
    # token; elementwise bytes (32 + 16 + 24) x 2 = 144 a token. 1 kFLOP/s, 1 kB/s.
    gpu = GPUSpec("toy", 1e-9, 1e-6, 1.0, "test")
    model = ModelSpec("toy", 1, 4, 1, 1, 8, 16, 64)
    return RooflineCostModel(gpu, model, shape=toy_shape())


def test_hand_computed_decode_and_prefill_steps():
    cost = toy_model()
    # decode, 1 row at context 10: GEMMs max(336, 472 - 128 + 112) / 1e3 / eff(1) 0.5 = 0.912;
    # LM head max(128, 128) / 1e3 / 0.5 = 0.256; elementwise 144 / (1e3 x 0.5) = 0.288;
    # floors (4 + 2) x 100 us + 1000 us = 0.0016; attention 10 x 16 FLOPs / (1e3 x 0.5) =
    # 0.32; KV (10 + 1) x 16 / (1e3 x 0.25) = 0.704
    want = 0.912 + 0.256 + 0.288 + 0.0016 + 0.32 + 0.704
    assert cost.prefill_time([], [], 1, 10) == pytest.approx(want, rel=1e-12)
    assert cost.decode_times(1, 10, 1)[0] == pytest.approx(want, rel=1e-12)
    # prefill of 4 tokens: GEMMs max(4 x 336, 344 + 4 x 112) / 1e3 / eff(4) 0.25 = 5.376;
    # LM head 0.256 (one row); elementwise 4 x 0.288; floors 0.0016; attention 4 x 2.5 = 10
    # positions: 0.32; KV 4 x 16 / 250 = 0.256
    want = 5.376 + 0.256 + 4 * 0.288 + 0.0016 + 0.32 + 0.256
    assert cost.prefill_time([4], [0]) == pytest.approx(want, rel=1e-12)
    # 2 tokens: eff(2) = 0.375 halfway in log2; GEMMs max(0.672, 0.568) / 0.375
    want = 0.672 / 0.375 + 0.256 + 2 * 0.288 + 0.0016 + 3 * 16 / 500 + 2 * 16 / 250
    assert cost.prefill_time([2], [0]) == pytest.approx(want, rel=1e-12)


def test_qwen3_q_k_norm_is_one_more_elementwise_kernel():
    # q/k RMSNorm reads and writes q and k: elementwise bytes (32 + 2 x 16 + 24) x 2 = 176 a
    # token, 176 / (1e3 x 0.5) = 0.352 s; 7 floors of 100 us instead of 6
    base = toy_model()
    cost = RooflineCostModel(base.gpu, dataclasses.replace(base.model, qk_norm=True),
                             shape=toy_shape())
    want = 0.912 + 0.256 + 0.352 + 0.0017 + 0.32 + 0.704
    assert cost.prefill_time([], [], 1, 10) == pytest.approx(want, rel=1e-12)


def test_a_gemm_over_more_tokens_never_costs_less():
    # eff rises 0.25 -> 1.0 from 4 to 8 tokens, faster than the bound: 8 tokens would be
    # 4 x 336 x 2 / 1e3 / 1.0 = 2.688 s against 5.376 s at 4; the time holds at 4's
    cost = RooflineCostModel(toy_model().gpu, toy_model().model,
                             shape=toy_shape(gemm_m=(1, 4, 8), gemm_efficiency=(0.5, 0.25, 1.0)))
    assert cost._gemm_raw(8.0) == pytest.approx(2.688)
    assert cost._base(8.0, 1.0) - 8 * cost._elem_s == pytest.approx(
        cost._base(4.0, 1.0) - 4 * cost._elem_s)


@settings(max_examples=60, deadline=None)
@given(gpu=st.sampled_from(MEASURED), model=st.sampled_from(
           ["llama-3.1-8b", "qwen3-32b", "mixtral-8x7b", "llama-2-70b"]),
       tp=st.sampled_from([1, 2, 8]), tokens=st.integers(1, 20000), extra=st.integers(1, 600),
       rows=st.integers(1, 512), ctx=st.integers(0, 4000))
def test_positive_and_monotone_in_tokens_rows_and_context(gpu, model, tp, tokens, extra, rows,
                                                          ctx):
    cost = RooflineCostModel(get_gpu(gpu), get_model(model), tp=tp,
                             **roofline_measurements(gpu, tp))
    a, b = cost.prefill_time([tokens], [0]), cost.prefill_time([tokens + extra], [0])
    assert 0 < a <= b
    d = cost.decode_times(rows, rows * ctx, 50)
    assert d[0] > 0 and np.all(np.diff(d) > 0)
    assert cost.prefill_time([], [], rows, rows * ctx) <= cost.prefill_time(
        [], [], rows + extra, (rows + extra) * ctx)


def test_scalar_decode_steps_are_the_vectorised_models_doubles():
    for gpu, model, tp in (("RTX-PRO-6000", "qwen3-32b", 2), ("H100-SXM", "mixtral-8x7b", 2),
                           ("A100-80GB", "llama-3.1-8b", 1)):
        cost = RooflineCostModel(get_gpu(gpu), get_model(model), tp=tp, token_overhead_s=1e-4,
                                 **roofline_measurements(gpu, tp))
        fast = decode_times_for(cost)
        assert isinstance(fast, ShapeDecodeTimes)
        first = fast.first(37, 37 * 900)
        assert first == cost.prefill_time([], [], 37, 37 * 900)
        assert fast.prefill([300, 20], 5, 2000, [0, 100]) == cost.prefill_time(
            [300, 20], [0, 100], 5, 2000)
        for k in (1, 5, 40, 200):
            ends = np.cumsum(np.concatenate(([first], cost.decode_times(37, 37 * 900, k - 1))))
            assert fast.run(first, 37, 37 * 900, k, None) == (k, ends[-1])
            stop = float(ends[k // 2])
            n, end = fast.run(first, 37, 37 * 900, k, stop)
            assert n == min(int(np.searchsorted(ends, stop)) + 1, k) and end == ends[n - 1]


def test_every_measured_builtin_gpu_has_a_curve_and_the_rest_keep_the_datasheet():
    for gpu in MEASURED:
        s = kernel_shape(gpu)
        assert s is not None and len(s.gemm_m) >= 12 and s.gemm_m[0] == 1
        assert all(0.3 < e <= 1.0 for e in s.gemm_efficiency)
        assert 1.0 < s.kernel_floor_us < 10.0 and 5.0 < s.attention_floor_us < 30.0
    assert kernel_shape("my-gpu") is None and roofline_measurements("my-gpu")["shape"] is None


def test_an_unmeasured_builtin_gpu_borrows_its_siblings_curves_and_says_so():
    from seqsched.backends.efficiency import SIBLINGS, achieved_efficiency, borrowed_from
    from seqsched.backends.specs import GPUS
    for gpu, (donor, why) in SIBLINGS.items():
        assert gpu in GPUS and donor in MEASURED and gpu not in MEASURED
        own, theirs = kernel_shape(gpu), kernel_shape(donor)
        assert own.gemm_efficiency == theirs.gemm_efficiency
        assert own.kernel_floor_us == theirs.kernel_floor_us
        assert achieved_efficiency(gpu) == achieved_efficiency(donor)
        assert borrowed_from(gpu).startswith(f"measured on {donor} ({why}")
        assert own.source.startswith(borrowed_from(gpu)) and theirs.source in own.source
    assert borrowed_from("H100-SXM") == "" and borrowed_from("my-gpu") == ""
    # the efficiency is a share of each GPU's own peak: the PCIe card's roofline bound is
    # the SXM card's scaled by their datasheets, the same share achieved
    pcie, sxm = (RooflineCostModel(GPUS[g], get_model("llama-3.1-8b"),
                                   **roofline_measurements(g)) for g in ("H100-PCIe", "H100-SXM"))
    t_pcie, t_sxm = (c.decode_times(64, 64 * 1024, 1)[0] for c in (pcie, sxm))
    ratio = GPUS["H100-SXM"].bandwidth_gbs / GPUS["H100-PCIe"].bandwidth_gbs
    assert t_sxm * 1.2 < t_pcie <= t_sxm * ratio * 1.0001


def test_array_engine_reproduces_the_object_engine_on_shape_rooflines():
    # ShapeDecodeTimes serves tensor-parallel and MoE rooflines too (their per-step base
    # holds the all-reduce and expert terms): both engines give the same records and steps
    import pandas as pd

    from seqsched.app.run import RunConfig, simulate
    from seqsched.traces.synthetic import generate
    t = generate("azure-conv", 150, seed=1, rate=8.0)
    for extra in ({"tp": 2, "model": "llama-2-7b", "gpu": "A100-80GB"},
                  {"tp": 2, "model": "mixtral-8x7b", "gpu": "H100-SXM"},
                  {"model": "qwen3-32b", "gpu": "RTX-PRO-6000", "tp": 2}):
        cfg = RunConfig(policy="fcfs", profile="roofline", **extra)
        a, b = (simulate(t, dataclasses.replace(cfg, engine=e)) for e in ("baseline", "fast"))
        assert len(a.steps) > 50 and int(a.steps["iterations"].sum()) > 500
        pd.testing.assert_frame_equal(a.steps, b.steps, check_exact=True)
        pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)


def test_ga102_cards_have_their_own_gemm_curves_and_the_a100s_attention():
    """RTX A6000 / RTX 3090: GEMMs from LLMServingSim's v0 tables of the card itself (GDDR6
    streams weights at a larger share of its datasheet than the A100's HBM2e), attention and
    kernel floors from the A100 (v0's attention is not vLLM's), said in the description."""
    from seqsched.backends.efficiency import achieved_efficiency, borrowed_from
    a100 = kernel_shape("A100-80GB")
    for gpu in ("RTX-A6000", "RTX-3090"):
        own = kernel_shape(gpu)
        assert own.gemm_m[:12] == a100.gemm_m[:12] and own.gemm_efficiency != a100.gemm_efficiency
        assert all(0.3 < e <= 1.0 for e in own.gemm_efficiency)
        assert achieved_efficiency(gpu)[1] > achieved_efficiency("A100-80GB")[1] + 0.1
        assert (own.prefill_attention_efficiency, own.decode_attention_bandwidth,
                own.attention_floor_us, own.kernel_floor_us) == (
            a100.prefill_attention_efficiency, a100.decode_attention_bandwidth,
            a100.attention_floor_us, a100.kernel_floor_us)
        assert borrowed_from(gpu).startswith("attention kernels measured on A100-80GB")
        assert "v0" in own.source and own.source.startswith(borrowed_from(gpu))
