"""Tensor parallelism in the roofline and KV sizing, MoE active experts, and GPU/model specs
from files (GPU TOML, Hugging Face config.json), with one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqsched.app.run import RunConfig, build_cost_model, describe_backend, simulate
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.spec_files import resolve_gpu, resolve_model
from seqsched.backends.specs import get_gpu, get_model, kv_bytes_per_gpu, kv_capacity_tokens
from seqsched.common.errors import UserError
from seqsched.traces.request import Request, Trace


def test_tp_halves_weight_bytes_and_splits_kv():
    g, m = get_gpu("H100-SXM"), get_model("llama-2-70b")
    one, two = RooflineCostModel(g, m), RooflineCostModel(g, m, tp=2)
    assert two._weight_bytes == pytest.approx(one._weight_bytes / 2)
    assert two._kv == pytest.approx(one._kv / 2)
    assert kv_bytes_per_gpu(m, 8) == 2 * 80 * 1 * 128 * 2          # 8 KV heads / 8 GPUs
    assert kv_bytes_per_gpu(m, 16) == kv_bytes_per_gpu(m, 8)       # a head is never split
    # 70B does not fit one 80 GB GPU; at TP2 each holds 69 GB / 2 of weights
    with pytest.raises(UserError, match="more --tp"):
        kv_capacity_tokens(g, m, 0.9)
    free = 80e9 * 0.9 - m.weight_bytes / 2
    assert kv_capacity_tokens(g, m, 0.9, tp=2) == int(free // (m.kv_bytes_per_token / 2))


def test_tp_decode_time_is_half_the_bytes_plus_two_allreduces_per_layer_and_the_gather():
    g, m = get_gpu("H100-SXM"), get_model("llama-3-8b")
    one, two = RooflineCostModel(g, m), RooflineCostModel(g, m, tp=2)
    rows, ctx = 8, 8 * 512
    t1, t2 = one.decode_times(rows, ctx, 1)[0], two.decode_times(rows, ctx, 1)[0]
    # memory-bound decode: bytes halve; all-reduce of 8 tokens x 4096 x 2 B over 450 GB/s
    ar = 2 * 32 * (2 * 0.5 * rows * 4096 * 2 / 450e9 + 5e-6)
    # and vLLM's logits all-gather of 8 rows x 128,256 vocab x 2 B, a ring over the same link
    gather = 0.5 * rows * 128256 * 2 / 450e9 + 5e-6
    assert t2 == pytest.approx(t1 / 2 + ar + gather, rel=1e-9)
    with pytest.raises(UserError, match="interconnect"):
        RooflineCostModel(resolve_gpu_toml_without_link(), m, tp=2)


def resolve_gpu_toml_without_link():
    from seqsched.backends.specs import GPUSpec
    return GPUSpec("x", 100.0, 1000.0, 40.0, "test")


def test_moe_counts_active_experts_for_flops_and_touched_experts_for_bytes():
    g, m = get_gpu("H100-SXM"), get_model("mixtral-8x7b")
    cost = RooflineCostModel(g, m)
    assert cost._flops_per_token == pytest.approx(2 * 32 * m.active_layer_params)
    # one token touches 2 of 8 experts; a large batch touches all 8
    w1, wbig = cost._weights(1.0), cost._weights(1e4)
    assert w1 == pytest.approx(cost._weight_bytes + cost._expert_bytes * 2)
    assert wbig == pytest.approx(cost._weight_bytes + cost._expert_bytes * 8)
    assert m.n_params / 1e9 == pytest.approx(46.7, abs=0.1)


def test_gpu_toml_and_hf_config(tmp_path):
    gpu = tmp_path / "g.toml"
    gpu.write_text('name = "my"\npeak_tflops = 100\nbandwidth_gbs = 1000\nmemory_gb = 48\n'
                   'interconnect_gbs = 50\n')
    g = resolve_gpu(str(gpu))
    assert (g.name, g.peak_flops, g.bandwidth, g.interconnect_gbs) == ("my", 1e14, 1e12, 50.0)
    cfg = {"hidden_size": 5120, "num_attention_heads": 64, "num_key_value_heads": 8,
           "head_dim": 128, "intermediate_size": 25600, "num_hidden_layers": 64,
           "vocab_size": 151936, "max_position_embeddings": 40960, "torch_dtype": "bfloat16"}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    m = resolve_model(str(tmp_path / "m"))
    q = get_model("qwen3-32b")
    assert (m.n_params, m.kv_bytes_per_token, m.q_dim) == (q.n_params, q.kv_bytes_per_token,
                                                           8192)
    bad = tmp_path / "bad.toml"
    bad.write_text("peak_tflops = 1\n")
    with pytest.raises(UserError, match="missing bandwidth_gbs"):
        resolve_gpu(str(bad))
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(UserError, match="hidden_size"):
        resolve_model(str(tmp_path / "c.json"))


def test_run_with_tp_and_builtin_profile_selection():
    trace = Trace.from_requests([Request(f"r{i}", 0.1 * i, 200, 20) for i in range(8)])
    cfg = RunConfig(gpu="H100-SXM", model="llama-2-70b", tp=2, profile="roofline")
    res = simulate(trace, cfg)
    # vLLM sizing (continuous policy): the per-GPU activation peak of the profile run (H100:
    # 8192 tokens, 1024 sequences) is reserved too
    from seqsched.backends.vllm_engine import activation_peak_bytes
    reserve = activation_peak_bytes(get_model("llama-2-70b"), 8192, 1024, tp=2) / 1e9
    assert res.kv_capacity_tokens == kv_capacity_tokens(
        get_gpu("H100-SXM"), get_model("llama-2-70b"), 0.9, reserve, tp=2) // 16 * 16
    assert describe_backend(cfg) == "H100-SXM / llama-2-70b / TP2, roofline"
    four = simulate(trace, RunConfig(gpu="H100-SXM", model="llama-2-70b", tp=4,
                                     profile="roofline"))
    assert four.records["finish_s"].max() < res.records["finish_s"].max()
    assert isinstance(build_cost_model(RunConfig(gpu="H100-SXM", model="llama-2-70b", tp=2,
                                                 profile="roofline")), RooflineCostModel)
    with pytest.raises(UserError, match="tp must be >= 1"):
        simulate(trace, RunConfig(tp=0))
    assert np.isfinite(res.summary["throughput_rps"])


def test_matching_builtin_kernel_profile_is_used_and_named():
    from seqsched.backends.kernel_profile import KernelProfileCostModel
    cfg = RunConfig(gpu="RTX-PRO-6000", model="llama-3.1-8b")
    assert describe_backend(cfg).endswith("built-in kernel profile rtxpro6000-llama-3.1-8b-tp1")
    assert isinstance(build_cost_model(cfg), KernelProfileCostModel)
    # a preset keeps its own cost model; "roofline" opts out
    assert "roofline" in describe_backend(RunConfig(gpu="RTX-PRO-6000", model="llama-3.1-8b",
                                                    profile="roofline"))


def test_roofline_uses_kernel_measured_efficiency_but_presets_keep_the_datasheet():
    from seqsched.backends.efficiency import achieved_efficiency
    fe, be = achieved_efficiency("H100-SXM")
    assert 0.5 < fe < 1.0 and 0.5 < be < 1.0
    cost = build_cost_model(RunConfig(gpu="H100-SXM", model="mistral-7b"))
    assert (cost.flops_efficiency, cost.bandwidth_efficiency) == (fe, be)
    assert achieved_efficiency("H100-PCIe") == (fe, be)           # the same chip's kernels
    assert achieved_efficiency("my-gpu") == (1.0, 1.0)             # no kernel data: datasheet
    preset = build_cost_model(RunConfig(backend="paper-a100"))
    assert (preset.flops_efficiency, preset.bandwidth_efficiency) == (1.0, 1.0)


def test_tp_that_vllm_cannot_split_heads_over_is_one_error_line():
    m = get_model("llama-3.1-70b")                       # 64 query heads, 8 KV heads
    with pytest.raises(UserError, match="64 attention heads cannot be split over tensor "
                                        "parallel size 3"):
        kv_bytes_per_gpu(m, 3)
    qwen = get_model("qwen2.5-7b")                       # 28 query heads, 4 KV heads
    with pytest.raises(UserError, match="4 KV heads cannot be split"):
        kv_bytes_per_gpu(qwen, 14)                       # 28 % 14 == 0, but 14 % 4 != 0
    assert kv_bytes_per_gpu(qwen, 2) == 2 * 28 * 2 * 128 * 2
    assert kv_bytes_per_gpu(m, 16) == 2 * 80 * 1 * 128 * 2    # 16 GPUs: 2 replicas per KV head
    with pytest.raises(UserError, match="tensor parallel size 3"):
        simulate(Trace.from_requests([Request("r", 0.0, 10, 5)]),
                 RunConfig(gpu="H100-SXM", model="llama-3.1-70b", tp=3))


def test_phi_mini_moe_has_its_model_cards_sizes():
    """7.6B parameters, 2.4B of them active per token (microsoft/Phi-mini-MoE-instruct's model
    card), from the config.json shape: 16 experts of ffn 960, 2 per token."""
    m = get_model("phi-mini-moe")
    assert m.n_params == pytest.approx(7.6e9, rel=0.01)
    embed = 2 * m.vocab_size * m.d_model
    assert embed + m.n_layers * m.active_layer_params == pytest.approx(2.4e9, rel=0.02)
    from seqsched.app.measured_cli import builtin_model
    assert builtin_model("microsoft/Phi-mini-MoE-instruct") == "phi-mini-moe"  # a run's name
