"""The aiconfigurator and Vidur importers on small tables written here (multilinear values, so
interpolation reproduces them exactly and every number below is hand-computed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqsched.backends.import_aiconfigurator import import_aiconfigurator
from seqsched.backends.import_vidur import import_vidur
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.specs import get_gpu, get_model
from seqsched.common.errors import UserError

TINY = get_model("tiny")        # 2 layers, d 64, 4 heads (dim 16), 2 KV heads, ffn 128, vocab 512


def write_aiconf(root: Path) -> Path:
    def put(table, sub, df):
        d = root / sub / "vllm" / "0.19.0"
        d.mkdir(parents=True, exist_ok=True)
        df.assign(framework="VLLM").to_parquet(d / f"{table}.parquet")
    grid = [(m, n, k) for m in (1, 16, 1024, 32768) for n in (64, 128, 512, 1024)
            for k in (64, 128, 512, 1024)]
    put("gemm_perf", "gemm", pd.DataFrame(
        [{"gemm_dtype": "bfloat16", "m": m, "n": n, "k": k,
          "latency": 1e-3 * (1 + 1e-6 * m * n * k)} for m, n, k in grid]))
    heads = [{"num_heads": h, "num_key_value_heads": kv, "head_dim": 16,
              "kv_cache_dtype": "bfloat16", "window_size": 0} for h, kv in ((4, 2), (2, 1))]
    put("context_attention_perf", "attention", pd.DataFrame(
        [{**hd, "batch_size": 1, "isl": isl, "step": 0, "latency": 1e-3 * (10 + 0.01 * isl)}
         for hd in heads for isl in (1, 16, 256, 4096, 16384)]))
    put("generation_attention_perf", "attention", pd.DataFrame(
        [{**hd, "batch_size": b, "isl": 1, "step": c - 1,
          "latency": 1e-3 * (5 + 0.001 * b * c)}
         for hd in heads for b in (1, 4, 16) for c in (1, 1024, 4096) if (b, c) != (16, 4096)]))
    put("custom_allreduce_perf", "comm", pd.DataFrame(
        [{"num_gpus": 2, "message_size": s, "backend": "vllm_graph",
          "latency": 1e-3 * (4 + 1e-5 * s)} for s in (128, 1024, 1 << 20)]))
    return root


def test_aiconfigurator_profile_is_the_hand_sum(tmp_path):
    gpu = get_gpu("L4")
    prof = import_aiconfigurator(write_aiconf(tmp_path / "sys"), TINY, 1, gpu)
    m = kernel_profile_from_dict(prof)
    rows, ctx = 4, 1024
    gemm = sum(1 + 1e-6 * rows * n * k for n, k in ((128, 64), (64, 64), (256, 64), (64, 128)))
    bw = gpu.bandwidth
    # fused residual add + RMSNorm: input and residual read, both written (4 x 64 x 2 bytes)
    mem = {"layernorm": (4, 4 * 64 * 2), "rotary_emb": (2, 2 * (64 + 32) * 2),
           "act_fn": (2, 3 * 128 * 2), "embedding": (1, 2 * 64 * 2),
           "final_layernorm": (1, 4 * 64 * 2)}
    elementwise = sum(c * (3 + rows * b / bw * 1e6) for c, b in mem.values())
    head = 1 + 1e-6 * rows * 512 * 64
    sampler = 2 * 3 + rows * 512 * (2 + 4 + 4) / bw * 1e6     # float32 cast + argmax
    attn = 2 * (5 + 0.001 * rows * ctx)
    want = 2 * gemm + elementwise + head + sampler + attn
    assert m.decode_times(rows, rows * ctx, 1)[0] == pytest.approx(want * 1e-6, rel=1e-3)
    # unmeasured (16 rows, 4096) filled linearly in batch from 4 rows: (5 + 16.384) x 4
    dec = prof["attention"]["decode"]
    assert dec["us"][2][2] == pytest.approx((5 + 0.001 * 4 * 4096) * 4, rel=1e-3)
    # a 128-token chunk on 512 cached: the full 640-token prefill x its share of the scores
    share = 128 * (512 + 129 / 2) / (640 * 641 / 2)
    chunk = m.prefill_time(np.array([128]), np.array([512])) - \
        m.prefill_time(np.array([128]), np.array([0]))
    assert chunk == pytest.approx(2 * ((10 + 6.4) * share - (10 + 1.28)) * 1e-6, rel=1e-3)
    assert prof["provenance"]["engine_version"] == "0.19.0"
    assert any("modelled" in n for n in prof["provenance"]["notes"])


def test_aiconfigurator_errors(tmp_path):
    root = write_aiconf(tmp_path / "sys")
    with pytest.raises(UserError, match="needs --gpu"):
        import_aiconfigurator(root, TINY, 1, None)
    with pytest.raises(UserError, match="no rows for 1 query"):
        import_aiconfigurator(root, TINY, 4, get_gpu("L4"))
    with pytest.raises(UserError, match="no such folder"):
        import_aiconfigurator(tmp_path / "nope", TINY, 1, get_gpu("L4"))


OPS = ["emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
       "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add"]


def write_vidur(root: Path, allreduce_ms_per_gb: float) -> Path:
    comp = root / "vidur" / "compute" / "a100" / "org" / "tiny"
    comp.mkdir(parents=True)
    rows = []
    for tp in (1, 2):
        for t in (1, 100, 1000):
            row = {"num_tokens": t, "num_tensor_parallel_workers": tp, "n_embd": 64}
            row.update({f"time_stats.{op}.median": 1e-3 * (1 + 0.01 * t) / tp for op in OPS})
            rows.append(row)
    pd.DataFrame(rows).to_csv(comp / "mlp.csv", index=False)
    net = root / "vidur" / "network" / "a100_pairwise_nvlink"
    net.mkdir(parents=True)
    pd.DataFrame([{"num_workers": 2, "size": s, "time_stats.all_reduce.median":
                   0.01 + allreduce_ms_per_gb * s / 1e9} for s in (2048, 10 ** 6, 10 ** 8)]
                 ).to_csv(net / "all_reduce.csv")
    return comp


def test_vidur_ops_counts_allreduce_and_attention_source(tmp_path):
    comp = write_vidur(tmp_path, allreduce_ms_per_gb=5.0)     # 200 GB/s: NVLink-class
    write_aiconf(tmp_path / "aiconfigurator" / "a100_sxm")
    prof = import_vidur(comp, TINY, 2, get_gpu("A100-80GB"))
    assert prof["dense"]["qkv_proj"]["count"] == 2 and prof["dense"]["embedding"]["count"] == 1
    assert prof["dense"]["add"]["us"] == [0.505, 1.0, 5.5]      # ms -> us, TP2 halves
    assert prof["allreduce"]["bytes"][-1] == 1e8 and prof["allreduce"]["us"][-1] == 510.0
    assert any("aiconfigurator" in n for n in prof["provenance"]["notes"])
    m = kernel_profile_from_dict(prof)
    base = kernel_profile_from_dict({**prof, "allreduce": None})
    # 10 tokens x 64 x 2 bytes = 1280 B per all-reduce: below the first measured size (2048 B),
    # so its time (10.01 us); 2 all-reduces per layer x 2 layers
    diff = m.decode_times(10, 10 * 50, 1)[0] - base.decode_times(10, 10 * 50, 1)[0]
    assert diff == pytest.approx(4 * (10 + 5.0 * 2048 / 1e9 * 1e3) * 1e-6, rel=1e-4)  # 4 digits


def test_vidur_slow_table_and_no_aiconf_fall_back(tmp_path):
    comp = write_vidur(tmp_path, allreduce_ms_per_gb=500.0)   # 2 GB/s: PCIe-class at best
    with pytest.raises(UserError, match="at 4 tensor-parallel"):
        import_vidur(comp, TINY, 4, get_gpu("A100-80GB"))
    prof = import_vidur(comp, TINY, 1, get_gpu("A100-80GB"))  # no aiconfigurator: roofline
    assert any("roofline" in n for n in prof["provenance"]["notes"])
    slow = import_vidur(comp, TINY, 2, get_gpu("A100-80GB"))   # nothing better: Vidur's table
    assert "Vidur a100_pairwise_nvlink" in slow["allreduce"]["source"]
    write_aiconf(tmp_path / "aiconfigurator" / "a100_sxm")
    better = import_vidur(comp, TINY, 2, get_gpu("A100-80GB"))
    assert "aiconfigurator" in better["allreduce"]["source"]
    with pytest.raises(UserError, match="d_model 64"):
        import_vidur(comp, get_model("llama-2-7b"), 1, get_gpu("A100-80GB"))
