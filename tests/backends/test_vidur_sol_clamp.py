"""The Vidur importer raises every GEMM time to its speed of light (aiconfigurator's
`clamp_gemm_grids_to_sol`, reused from backends/import_aiconfigurator.py): a point measured
below max(2 m n k / peak, 2 (m n + m k + n k) / bandwidth) moves up to it, every other point
stays. Hand-computed on the tiny model with a made-up slow GPU; and every built-in profile
loads (A100 TP2 Vidur profiles once shipped an all-reduce table whose rounded sizes repeated)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seqsched.backends.import_vidur import import_vidur
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.profile_registry import load_cost_profile
from seqsched.backends.specs import GPUSpec, get_model

from test_vidur_aiconf_import import write_vidur

TINY = get_model("tiny")        # d 64, 4 heads of 16, 2 KV heads, ffn 128
# 1 TFLOP/s and 1000 GB/s: a 1000-token GEMM of the tiny model is compute-bound past 11 us
SLOW = GPUSpec("slow", peak_tflops=1.0, bandwidth_gbs=1000.0, memory_gb=80.0, source="test",
               interconnect_gbs=100.0)


def test_points_below_the_floor_move_to_it_and_no_others(tmp_path):
    comp = write_vidur(tmp_path, allreduce_ms_per_gb=5.0)     # every op: 1.01, 2, 11 us (TP1)
    dense = import_vidur(comp, TINY, 1, SLOW)["dense"]
    assert dense["qkv_proj"]["tokens"] == [1, 100, 1000]
    # QKV: n = 64 + 2 x 32 = 128, k = 64; 1000 tokens: 2 x 1000 x 128 x 64 / 1e12 = 16.384 us
    assert dense["qkv_proj"]["us"] == [1.01, 2.0, 16.38]
    # O: n = k = 64: 8.192 us at 1000 tokens, below the measured 11 us: unchanged
    assert dense["o_proj"]["us"] == [1.01, 2.0, 11.0]
    # gated up: n = 2 x 128 = 256, k = 64: 3.2768 us at 100 tokens, 32.768 us at 1000
    assert dense["gate_up_proj"]["us"] == [1.01, 3.277, 32.77]
    # down: n = 64, k = 128: 16.384 us at 1000 tokens
    assert dense["down_proj"]["us"] == [1.01, 2.0, 16.38]
    # not GEMMs: as measured
    assert dense["add"]["us"] == dense["rotary_emb"]["us"] == [1.01, 2.0, 11.0]
    # TP2 halves n: QKV at 1000 tokens 8.192 us, above the measured 5.5 us (TP2 halves it)
    tp2 = import_vidur(comp, TINY, 2, SLOW)["dense"]
    assert tp2["qkv_proj"]["us"] == [0.505, 1.0, 8.192]


def test_all_reduce_sizes_equal_at_eight_digits_are_one_point(tmp_path):
    comp = write_vidur(tmp_path, allreduce_ms_per_gb=5.0)
    net = tmp_path / "vidur" / "network" / "a100_pairwise_nvlink" / "all_reduce.csv"
    pd.DataFrame([{"num_workers": 2, "size": s, "time_stats.all_reduce.median": ms}
                  for s, ms in ((2048, 0.01), (134217728, 0.7), (134217730, 0.8))]).to_csv(net)
    prof = import_vidur(comp, TINY, 2, SLOW)
    assert prof["allreduce"]["bytes"] == [2048.0, 134217730.0]
    assert prof["allreduce"]["us"] == [10.0, 750.0]            # the two averaged
    kernel_profile_from_dict(prof)                              # increasing: it loads


@pytest.mark.parametrize("name", sorted(json.loads(
    (BUILTIN_DIR / "index.json").read_text(encoding="utf-8"))))
def test_every_builtin_profile_loads(name):
    assert load_cost_profile(name).meta["name"] == name
