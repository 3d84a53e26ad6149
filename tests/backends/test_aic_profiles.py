"""aiconfigurator kernel-table profiles: the vLLM version read from a systems folder holding
several, the built-in RTX PRO 6000 ones selectable by name but never the default over a
per-layer bundle of the same setup, and the cost terms composed as aiconfigurator composes a
vLLM iteration (speed-of-light clamps) or vLLM runs it (q/k norm, sampler), hand-computed."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from seqsched.backends import profile_registry
from seqsched.backends.import_aiconfigurator import import_aiconfigurator
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.profile_registry import builtin_index, load_cost_profile, match_builtin
from seqsched.backends.spec_files import model_from_hf_config
from seqsched.backends.specs import GPUSpec, get_gpu, get_model
from seqsched.common.errors import UserError
from tests.backends.test_vidur_aiconf_import import TINY, write_aiconf


def add_version(root, version: str, scale: float) -> None:
    """A copy of the 0.19.0 tables under `version`, every GEMM `scale` times slower."""
    for sub in ("gemm", "attention", "comm"):
        src = root / sub / "vllm" / "0.19.0"
        dst = root / sub / "vllm" / version
        dst.mkdir(parents=True)
        for f in src.glob("*.parquet"):
            df = pd.read_parquet(f)
            if f.stem == "gemm_perf":
                df = df.assign(latency=df["latency"] * scale)
            df.to_parquet(dst / f.name)


def one_row_gemm_us(prof) -> float:
    return kernel_profile_from_dict(prof).per_sequence[0].seconds(1) * 1e6


def test_the_newest_version_by_number_unless_one_is_pinned(tmp_path):
    root = write_aiconf(tmp_path / "sys")
    add_version(root, "0.9.0", 2.0)      # older than 0.19.0, though it sorts after it as text
    add_version(root, "0.24.0", 3.0)
    gpu = get_gpu("L4")
    newest = import_aiconfigurator(root, TINY, 1, gpu)
    assert newest["provenance"]["engine_version"] == "0.24.0"
    pinned = import_aiconfigurator(root, TINY, 1, gpu, version="0.19.0")
    assert pinned["provenance"]["engine_version"] == "0.19.0"
    # the LM head at one row: 1 + 1e-6 x 1 x 512 x 64 us, x 3 in 0.24.0
    assert one_row_gemm_us(pinned) == pytest.approx(1 + 512 * 64e-6, rel=1e-3)
    assert one_row_gemm_us(newest) == pytest.approx(3 * (1 + 512 * 64e-6), rel=1e-3)
    with pytest.raises(UserError, match=r"vLLM 0\.22\.0 \(measured: 0\.19\.0, 0\.24\.0, 0\.9\.0\)"):
        import_aiconfigurator(root, TINY, 1, gpu, version="0.22.0")


def test_a_bundle_profile_is_matched_before_an_aic_one(monkeypatch):
    index = {"a-setup-aic": {"gpu": "L4", "model": "tiny", "tp": 1, "source": "aiconfigurator"},
             "b-setup": {"gpu": "L4", "model": "tiny", "tp": 1, "source": "llmservingsim"},
             "c-only-aic": {"gpu": "L4", "model": "tiny", "tp": 2, "source": "aiconfigurator"}}
    monkeypatch.setattr(profile_registry, "builtin_index", lambda: index)
    assert match_builtin("L4", "tiny", 1) == "b-setup"         # not the alphabetical first
    assert match_builtin("L4", "tiny", 2) == "c-only-aic"      # the only one: still used
    assert match_builtin("L4", "tiny", 4) is None


@pytest.mark.parametrize("model,tp", [("llama-3.1-8b", 1), ("llama-3.1-8b", 2),
                                      ("qwen3-32b", 1), ("qwen3-32b", 2),
                                      ("qwen3-30b-a3b", 1)])
def test_builtin_rtx_pro_6000_aic_profiles(model, tp):
    name = f"rtxpro6000-{model}-tp{tp}-aic"
    entry = builtin_index()[name]
    assert (entry["gpu"], entry["model"], entry["tp"], entry["source"]) == \
        ("RTX-PRO-6000", model, tp, "aiconfigurator")
    assert entry["auto"] is False                   # `profile list`: by name only
    assert match_builtin("RTX-PRO-6000", model, tp) == f"rtxpro6000-{model}-tp{tp}"
    cost = load_cost_profile(name)
    assert cost.meta["provenance"]["engine_version"] == "0.19.0"
    assert cost.meta["shape"]["n_layers"] == get_model(model).n_layers
    assert (cost.allreduce is not None) == (tp > 1)
    assert (cost.moe is not None) == bool(get_model(model).n_experts)
    # a 128-row decode step at context 1,024 costs more than a 1-row one, all positive
    one, full = cost.decode_times(1, 1024, 1)[0], cost.decode_times(128, 128 * 1024, 1)[0]
    assert 0 < one < full


SLOW = GPUSpec("slow", peak_tflops=1e-3, bandwidth_gbs=1.0, memory_gb=1.0, source="test")


def test_measured_gemm_and_decode_attention_are_raised_to_their_speed_of_light(tmp_path):
    # on a GPU of 1 GFLOP/s and 1 GB/s every measurement of the fixture is below its speed of
    # light, so the profile holds aiconfigurator's clamp max(FLOPs / peak, bytes / bandwidth)
    prof = import_aiconfigurator(write_aiconf(tmp_path / "sys"), TINY, 1, SLOW)
    m = kernel_profile_from_dict(prof)
    # the LM head (n 512, k 64) is clamped at the measured m (1 and 16), then interpolated:
    # m 1: max(2 x 512 x 64 FLOPs = 65.536 us, 2 (512 + 64 + 512 x 64) bytes = 66.688 us);
    # m 16: max(1,048.576 us, 83.968 us); 4 rows: 66.688 + 3/15 x (1,048.576 - 66.688)
    head = m.per_sequence[0]
    assert head.seconds(1) == pytest.approx(66.688e-6, rel=1e-3)
    assert head.seconds(4) == pytest.approx((66.688 + 0.2 * (1048.576 - 66.688)) * 1e-6,
                                            rel=1e-3)
    # a measured node of the QKV GEMM (m 16, n 128, k 64): 2 x 16 x 128 x 64 / 1e9 s
    qkv = next(op for op in m.dense if op.name == "qkv_proj")
    assert qkv.seconds(16) == pytest.approx(2 * 2 * 16 * 128 * 64 / 1e9, rel=1e-3)
    # decode attention, 4 rows at context 1024 (4 query, 2 KV heads of 16 per layer): bytes
    # 4 (4 x 4 x 16 + 4 x 2 x 1023 x 16) = 524,800 -> 524.8 us; FLOPs 4 x 4 x 4 x 16 x 1023
    # = 1,047,552 -> 1,047.552 us (the larger), x 2 layers
    attn = m.decode_grid(4.0, np.array([1024.0]))[0]
    assert attn == pytest.approx(4 * 4 * 4 * 16 * 1023 / 1e9 * 1e6, rel=1e-3)
    assert any("speed of light" in n for n in prof["provenance"]["notes"])


def test_qk_norm_and_sampler_are_exact_memory_ops(tmp_path):
    gpu = get_gpu("L4")
    root = write_aiconf(tmp_path / "sys")
    plain = import_aiconfigurator(root, TINY, 1, gpu)
    assert "qk_norm" not in plain["dense"]
    qk = import_aiconfigurator(root, dataclasses.replace(TINY, qk_norm=True), 1, gpu)
    op = qk["dense"]["qk_norm"]
    assert op["count"] == 2                      # one per layer
    # 16 tokens: q (64) and k (32) read and written in bf16: 16 x 2 x 96 x 2 bytes at 300 GB/s
    # plus one 3 us launch
    want = 3 + 16 * 2 * (64 + 32) * 2 / 300e9 * 1e6
    assert np.interp(16, op["tokens"], op["us"]) == pytest.approx(want, rel=1e-3)
    sampler = plain["per_sequence"]["sampler"]
    # 128 rows x 512 logits x (2 + 4 + 4) bytes at 300 GB/s + two 3 us launches
    assert np.interp(128, sampler["sequences"], sampler["us"]) == \
        pytest.approx(6 + 128 * 512 * 10 / 300e9 * 1e6, rel=1e-3)
    assert sampler["modelled"] and op["modelled"]


def test_qwen3_specs_and_configs_carry_their_qk_norm(tmp_path):
    assert get_model("qwen3-32b").qk_norm and get_model("qwen3-30b-a3b").qk_norm
    assert not get_model("llama-3.1-8b").qk_norm
    cfg = {"model_type": "qwen3", "hidden_size": 64, "num_attention_heads": 4,
           "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2,
           "vocab_size": 512}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert model_from_hf_config(tmp_path / "config.json").qk_norm
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    assert not model_from_hf_config(tmp_path / "config.json").qk_norm
