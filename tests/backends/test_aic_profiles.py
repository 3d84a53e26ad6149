"""aiconfigurator kernel-table profiles: the vLLM version read from a systems folder holding
several, the built-in RTX PRO 6000 ones selectable by name but never the default over a
per-layer bundle of the same setup."""

from __future__ import annotations

import pandas as pd
import pytest

from seqsched.backends import profile_registry
from seqsched.backends.import_aiconfigurator import import_aiconfigurator
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.profile_registry import builtin_index, load_cost_profile, match_builtin
from seqsched.backends.specs import get_gpu, get_model
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
                                      ("qwen3-32b", 1), ("qwen3-32b", 2)])
def test_builtin_rtx_pro_6000_aic_profiles(model, tp):
    name = f"rtxpro6000-{model}-tp{tp}-aic"
    entry = builtin_index()[name]
    assert (entry["gpu"], entry["model"], entry["tp"], entry["source"]) == \
        ("RTX-PRO-6000", model, tp, "aiconfigurator")
    assert match_builtin("RTX-PRO-6000", model, tp) == f"rtxpro6000-{model}-tp{tp}"
    cost = load_cost_profile(name)
    assert cost.meta["provenance"]["engine_version"] == "0.19.0"
    assert cost.meta["shape"]["n_layers"] == get_model(model).n_layers
    assert (cost.allreduce is not None) == (tp > 1)
    # a 128-row decode step at context 1,024 costs more than a 1-row one, all positive
    one, full = cost.decode_times(1, 1024, 1)[0], cost.decode_times(128, 128 * 1024, 1)[0]
    assert 0 < one < full
