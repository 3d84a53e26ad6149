"""Derive the roofline's achieved-efficiency figures per GPU (backends/profiles/
roofline_efficiency.json) from public KERNEL measurements, never from end-to-end latencies:

- flops_efficiency: the median achieved share of the datasheet dense BF16 peak over large,
  compute-bound bf16 GEMMs (m >= 2048 tokens, n and k >= 4096);
- bandwidth_efficiency: the median achieved share of the datasheet memory bandwidth over
  skinny, weight-streaming GEMMs (m <= 16 tokens, n x k >= 4096 x 4096: the bytes are the
  weights plus the activations);
- decode_attention_bandwidth (reported, not used): KV bytes read per second by vLLM's decode
  attention at >= 1M cached positions per layer, as a share of the datasheet bandwidth.

Sources (../shared/data/serving/profiles/, README there):
- ai-dynamo/aiconfigurator @ 095f58a (Apache-2.0): gemm_perf / generation_attention_perf
  parquet, H100-SXM (vLLM 0.19.0) and A100-SXM-80GB (vLLM 0.14.0);
- casys-kaist/LLMServingSim @ 5daddb2 (MIT): dense.csv of Llama-3.1-8B TP1 (qkv_proj 4096 x
  6144, o_proj 4096 x 4096, gate_up_proj 4096 x 28672, down_proj 14336 x 4096), RTX 4090 and
  RTX PRO 6000, vLLM 0.19.0.

    .venv/bin/python scripts/derive_roofline_efficiency.py [--data ../shared/data/serving/profiles]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.specs import get_gpu

AICONF = {"H100-SXM": "h100_sxm", "A100-80GB": "a100_sxm"}
LSS = {"RTX-4090": "RTX4090", "RTX-PRO-6000": "RTXPRO6000"}
LLAMA31_8B = {"qkv_proj": (6144, 4096), "o_proj": (4096, 4096), "gate_up_proj": (28672, 4096),
              "down_proj": (4096, 14336)}      # (n, k) at TP1


def from_gemms(m, n, k, seconds, gpu) -> tuple[float, float]:
    m, n, k, s = (np.asarray(a, dtype=float) for a in (m, n, k, seconds))
    big = (m >= 2048) & (n >= 4096) & (k >= 4096)
    skinny = (m <= 16) & (n * k >= 4096 * 4096)
    flops = 2 * m * n * k / s / gpu.peak_flops
    nbytes = 2 * (n * k + m * (n + k)) / s / gpu.bandwidth
    return float(np.median(flops[big])), float(np.median(nbytes[skinny]))


def aiconf(folder: Path, gpu) -> dict:
    g = pd.read_parquet(next(folder.glob("gemm/vllm/*/gemm_perf.parquet")))
    g = g[g["gemm_dtype"] == "bfloat16"]
    fe, be = from_gemms(g["m"], g["n"], g["k"], g["latency"] * 1e-3, gpu)
    a = pd.read_parquet(next(folder.glob("attention/vllm/*/generation_attention_perf.parquet")))
    a = a[(a["kv_cache_dtype"] == "bfloat16") & (a.get("window_size", 0) == 0)]
    pos = a["batch_size"] * (a["step"] + 1)
    a = a[pos >= 2 ** 20]
    kv = 2 * a["num_key_value_heads"] * a["head_dim"] * 2 * a["batch_size"] * (a["step"] + 1)
    att = float(np.median(kv / (a["latency"] * 1e-3) / gpu.bandwidth))
    return {"flops_efficiency": round(fe, 3), "bandwidth_efficiency": round(be, 3),
            "decode_attention_bandwidth": round(att, 3),
            "source": f"aiconfigurator {folder.name}: bf16 GEMMs, generation attention"}


def llmservingsim(folder: Path, gpu) -> dict:
    d = pd.read_csv(folder / "tp1" / "dense.csv")
    d = d[d["layer"].isin(LLAMA31_8B)]
    n = d["layer"].map(lambda x: LLAMA31_8B[x][0])
    k = d["layer"].map(lambda x: LLAMA31_8B[x][1])
    fe, be = from_gemms(d["tokens"], n, k, d["time_us"] * 1e-6, gpu)
    return {"flops_efficiency": round(fe, 3), "bandwidth_efficiency": round(be, 3),
            "source": f"LLMServingSim {folder.parent.parent.parent.name} Llama-3.1-8B TP1 "
                      "dense.csv GEMMs (qkv, o, gate_up, down)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get(
        "SEQSCHED_SERVING_PROFILES", "../shared/data/serving/profiles"))
    data = Path(ap.parse_args().data)
    out = {}
    for name, sub in AICONF.items():
        out[name] = aiconf(data / "aiconfigurator" / sub, get_gpu(name))
    for name, hw in LSS.items():
        out[name] = llmservingsim(
            data / "llmservingsim/perf" / hw / "meta-llama/Llama-3.1-8B/bf16", get_gpu(name))
    path = BUILTIN_DIR / "roofline_efficiency.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for name, e in out.items():
        print(f"{name:<14} flops {e['flops_efficiency']:.3f}  bandwidth "
              f"{e['bandwidth_efficiency']:.3f}  ({e['source']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
