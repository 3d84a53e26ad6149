"""Derive the roofline's achieved-efficiency figures per GPU (backends/profiles/
roofline_efficiency.json) from public KERNEL measurements, never from end-to-end latencies.
Shares are of the datasheet peak (backends/specs.py); fields (backends/roofline_shape.py):

- gemm_m / gemm_efficiency: per token count m (powers of two), the median over measured bf16
  GEMMs with min(n, k) >= 1024 and max(n, k) >= 4096 (the per-GPU shapes of 7B-70B models at
  TP 1-8) of roofline bound / measured time, bound = max(2mnk / peak, 2 (nk + m (n + k)) /
  bandwidth). Up to the ridge m (peak / bandwidth) a GEMM streams its weights, and more tokens
  cannot stream them faster: the curve is made non-increasing there (cumulative minimum);
- flops_efficiency: the median over those GEMMs with m >= 2048 (reported; the one-max roofline
  of GPUs without a curve); bandwidth_efficiency: the same with m <= 16, the skinny
  weight-streaming GEMMs (also the elementwise kernels' bandwidth share);
- decode_attention_bandwidth: KV bytes read per second by decode attention with >= 1M cached
  positions per layer (beyond any L2 cache); attention_floor_us: median time of decode
  attention reading < 1 MB of KV (one kernel's fixed cost);
- prefill_attention_efficiency: achieved FLOP share of causal prefill attention with >= 1e12
  FLOPs per kernel (4 heads x head_dim x tokens x (tokens + 1) / 2 per sequence);
- kernel_floor_us: median time of the smallest kernels measured (GEMMs with m <= 16 and
  n x k <= 1M; LLMServingSim: its elementwise kernels at <= 16 tokens).

Sources:
- ai-dynamo/aiconfigurator @ 095f58a (Apache-2.0), `aic-core/src/aiconfigurator_core/
  systems/data/<system>/{gemm,attention}/vllm/<version>/{gemm_perf,context_attention_perf,
  generation_attention_perf}.parquet` (bf16 rows, vLLM flash-attention): A100-80GB (a100_sxm,
  vLLM 0.14.0), H100-SXM, H200 (h200_sxm), RTX PRO 6000 (rtx_pro_6000_server; vLLM 0.19.0).
  H200's context-attention table is not used: its GQA rows run at up to 8x the datasheet peak
  and its MHA rows at a third of H100's on the same GH100 die and clocks, so H200 takes
  H100-SXM's prefill-attention share. aiconfigurator measured no kernels of the other built-in
  GPUs (a100_pcie, h100_pcie, l4 are empty there): L4, H100-PCIe, A100-40GB and TOML GPUs keep
  the datasheet (1.0) and the one-max roofline.
- casys-kaist/LLMServingSim @ 5daddb2 (MIT), RTX 4090 Llama-3.1-8B TP1 bf16 bundle
  (`perf/RTX4090/meta-llama/Llama-3.1-8B/bf16/tp1/{dense,attention}.csv`, vLLM 0.19.0, eager):
  the GEMM curve over its four GEMMs (qkv 4096 x 6144, o 4096 x 4096, gate_up 4096 x 28672,
  down 14336 x 4096), attention from its (prefill chunk, decode rows, KV) table.
- the same repository's older tables, `profiler/v0/perf_models/{A6000,RTX3090}/meta-llama/
  Llama-3.1-8B/tp1/layers.csv` (Hugging Face transformers layers timed by the PyTorch
  profiler): the GEMM curve of the RTX A6000 and RTX 3090 over the GEMMs vLLM runs the same way
  (q, o, gate, up, down; HF's separate k and v are 1024 wide where vLLM fuses them into qkv).
  Its attention and small kernels are not vLLM's (FlashAttention-2 without split-KV, unfused
  fp32 norms: RESULTS.md "H100 calibration report"), so those two GPUs keep the attention
  figures and floors of their sibling A100-80GB (`attention_from`). The check that v0's GEMMs
  carry over: on H100, where both v0 and aiconfigurator measured, this script prints the two
  curves side by side.

    .venv/bin/python scripts/derive_roofline_efficiency.py --aiconfigurator-repo PATH
        [--data ../shared/data/serving/profiles]

PATH is a checkout of aiconfigurator @ 095f58a (a partial one is enough: `git archive 095f58a
aic-core/src/aiconfigurator_core/systems/data/{a100_sxm,h100_sxm,h200_sxm,rtx_pro_6000_server}
| tar -x -C PATH`); without it only the tables under --data are read (A100, H100). A GPU whose
tables are not found keeps its previous entry. `--llmservingsim-repo LSS` (a checkout of
LLMServingSim @ 5daddb2; `git archive 5daddb2 profiler/v0/perf_models | tar -x -C LSS` is
enough) adds the v0 GEMM curves.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.specs import get_gpu

from derive_roofline_allreduce import aic_file  # a sibling script: scripts/ is on sys.path

AICONF = {"A100-80GB": ("a100_sxm", "0.14.0"), "H100-SXM": ("h100_sxm", "0.19.0"),
          "H200": ("h200_sxm", "0.19.0"), "RTX-PRO-6000": ("rtx_pro_6000_server", "0.19.0")}
BROKEN_PREFILL = {"H200": "H100-SXM"}
LLAMA31_8B = {"qkv_proj": (6144, 4096), "o_proj": (4096, 4096), "gate_up_proj": (28672, 4096),
              "down_proj": (4096, 14336)}      # (n, k) at TP1
V0_GEMMS = {"q_proj": (4096, 4096), "o_proj": (4096, 4096), "gate_proj": (14336, 4096),
            "up_proj": (14336, 4096), "down_proj": (4096, 14336)}    # Llama-3.1-8B, TP1
V0_GPUS = {"RTX-A6000": ("A6000", "A100-80GB", "same Ampere architecture, sm8x"),
           "RTX-3090": ("RTX3090", "A100-80GB", "same Ampere architecture, sm8x")}
GEMM_KEYS = ("flops_efficiency", "bandwidth_efficiency", "gemm_m", "gemm_efficiency")
M_GRID = 2 ** np.arange(15)                   # 1 ... 16384 tokens
R3 = 3


def gemm_fields(m, n, k, seconds, gpu) -> dict:
    m, n, k, s = (np.asarray(a, dtype=float) for a in (m, n, k, seconds))
    r = np.maximum(2 * m * n * k / gpu.peak_flops, 2 * (n * k + m * (n + k)) / gpu.bandwidth) / s
    keep = (np.minimum(n, k) >= 1024) & (np.maximum(n, k) >= 4096)
    grid = [int(x) for x in M_GRID if np.any(keep & (m == x))]
    eff = np.array([np.median(r[keep & (m == x)]) for x in grid])
    below = np.array(grid) <= gpu.peak_flops / gpu.bandwidth
    eff[below] = np.minimum.accumulate(eff[below])
    return {"flops_efficiency": round(float(np.median(r[keep & (m >= 2048)])), R3),
            "bandwidth_efficiency": round(float(np.median(r[keep & (m <= 16)])), R3),
            "gemm_m": grid, "gemm_efficiency": [round(float(e), R3) for e in eff]}


def bf16_attention(path: Path) -> pd.DataFrame:
    a = pd.read_parquet(path)
    a = a[(a["kv_cache_dtype"] == "bfloat16") & (a["attn_dtype"] == "bfloat16")]
    return a[a["window_size"] == 0] if "window_size" in a else a


def aiconf(name: str, repo: Path | None, data: Path, gpu) -> dict:
    system, version = AICONF[name]
    g = pd.read_parquet(aic_file(repo, data, system, f"gemm/vllm/{version}/gemm_perf.parquet"))
    g = g[g["gemm_dtype"] == "bfloat16"]
    out = gemm_fields(g["m"], g["n"], g["k"], g["latency"] * 1e-3, gpu)
    small = g[(g["m"] <= 16) & (g["n"] * g["k"] <= 1 << 20)]
    out["kernel_floor_us"] = round(float(small["latency"].median()) * 1e3, R3)
    att = f"attention/vllm/{version}/"
    a = bf16_attention(aic_file(repo, data, system, att + "generation_attention_perf.parquet"))
    pos = a["batch_size"] * (a["isl"] + a["step"])
    kv = 2 * a["num_key_value_heads"] * a["head_dim"] * 2 * pos
    big = pos >= 2 ** 20
    out["decode_attention_bandwidth"] = round(float(np.median(
        (kv / (a["latency"] * 1e-3) / gpu.bandwidth)[big])), R3)
    out["attention_floor_us"] = round(float(a["latency"][kv < 1e6].median()) * 1e3, R3)
    c = bf16_attention(aic_file(repo, data, system, att + "context_attention_perf.parquet"))
    fl = 4 * c["num_heads"] * c["head_dim"] * c["batch_size"] * c["isl"] * (c["isl"] + 1) / 2
    out["prefill_attention_efficiency"] = round(float(np.median(
        (fl / (c["latency"] * 1e-3) / gpu.peak_flops)[fl >= 1e12])), R3)
    out["source"] = (f"aiconfigurator @ 095f58a (Apache-2.0) {system}: vLLM {version} bf16 "
                     "GEMMs, context and generation attention")
    return out


def llmservingsim(folder: Path, gpu) -> dict:
    d = pd.read_csv(folder / "tp1" / "dense.csv")
    gem = d[d["layer"].isin(LLAMA31_8B)]
    n = gem["layer"].map(lambda x: LLAMA31_8B[x][0])
    k = gem["layer"].map(lambda x: LLAMA31_8B[x][1])
    out = gemm_fields(gem["tokens"], n, k, gem["time_us"] * 1e-6, gpu)
    elem = d[d["layer"].isin(["act_fn", "layernorm", "rotary_emb"]) & (d["tokens"] <= 16)]
    out["kernel_floor_us"] = round(float(elem["time_us"].median()), R3)
    a = pd.read_csv(folder / "tp1" / "attention.csv")
    dec = a[(a["prefill_chunk"] == 0) & (a["kv_prefill"] == 0)]
    pos = dec["n_decode"] * dec["kv_decode"]
    kv = 2 * 8 * 128 * 2 * pos                        # Llama-3.1-8B: 8 KV heads of 128
    out["decode_attention_bandwidth"] = round(float(np.median(
        (kv / (dec["time_us"] * 1e-6) / gpu.bandwidth)[pos >= 2 ** 20])), R3)
    out["attention_floor_us"] = round(float(dec["time_us"][kv < 1e6].median()), R3)
    pre = a[(a["n_decode"] == 0) & (a["kv_prefill"] == 0) & (a["prefill_chunk"] >= 1024)]
    q = pre["prefill_chunk"]
    fl = 4 * 32 * 128 * q * (q + 1) / 2                # 32 query heads of 128
    out["prefill_attention_efficiency"] = round(float(np.median(
        fl / (pre["time_us"] * 1e-6) / gpu.peak_flops)), R3)
    out["source"] = ("LLMServingSim @ 5daddb2 (MIT) RTX4090 Llama-3.1-8B TP1 bf16 dense.csv "
                     "GEMMs (qkv, o, gate_up, down), elementwise kernels, attention.csv")
    return out


def v0_gemms(layers_csv: Path, gpu) -> dict:
    d = pd.read_csv(layers_csv)
    d = d[d["layer_name"].isin(V0_GEMMS)]
    n = d["layer_name"].map(lambda x: V0_GEMMS[x][0])
    k = d["layer_name"].map(lambda x: V0_GEMMS[x][1])
    return gemm_fields(d["input"], n, k, d["latency(ns)"] * 1e-9, gpu)


def v0_entries(lss: Path, data: Path, out: dict) -> None:
    """RTX A6000 / RTX 3090: v0 GEMMs, the sibling's attention and floors; and the H100 check."""
    for name, (folder, sibling, why) in V0_GPUS.items():
        path = lss / f"profiler/v0/perf_models/{folder}/meta-llama/Llama-3.1-8B/tp1/layers.csv"
        if not path.is_file() or sibling not in out:
            print(f"skip {name}: {path} not found")
            continue
        entry = {**out[sibling], **v0_gemms(path, get_gpu(name))}
        entry["attention_from"] = f"{sibling} ({why})"
        entry["source"] = (f"LLMServingSim @ 5daddb2 (MIT) v0 {folder} Llama-3.1-8B TP1 "
                           f"layers.csv GEMMs (q, o, gate, up, down); attention and kernel "
                           f"floors: {sibling}'s ({out[sibling]['source']})")
        out[name] = entry
    h100 = data / "llmservingsim/v0/perf_models/H100/meta-llama/Llama-3.1-8B/tp1/layers.csv"
    if h100.is_file() and "H100-SXM" in out:
        mine, theirs = v0_gemms(h100, get_gpu("H100-SXM")), out["H100-SXM"]
        ref = dict(zip(theirs["gemm_m"], theirs["gemm_efficiency"]))
        print("check, H100-SXM GEMM share by m: v0 / aiconfigurator")
        for m, e in zip(mine["gemm_m"], mine["gemm_efficiency"]):
            print(f"  m={m:<5} {e:.3f} / {ref.get(m, float('nan')):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get(
        "SEQSCHED_SERVING_PROFILES", "../shared/data/serving/profiles"))
    ap.add_argument("--aiconfigurator-repo", default=None,
                    help="a checkout of ai-dynamo/aiconfigurator @ 095f58a")
    ap.add_argument("--llmservingsim-repo", default=None,
                    help="a checkout of casys-kaist/LLMServingSim @ 5daddb2 (profiler/v0/)")
    args = ap.parse_args()
    data, repo = Path(args.data), Path(args.aiconfigurator_repo) if args.aiconfigurator_repo \
        else None
    path = BUILTIN_DIR / "roofline_efficiency.json"
    out = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    derived = set()
    for name in AICONF:
        try:
            out[name] = aiconf(name, repo, data, get_gpu(name))
            derived.add(name)
        except FileNotFoundError as e:
            print(f"skip {name}: {e} not found")
    for name, fallback in BROKEN_PREFILL.items():
        # only an entry derived in this run: a kept one already has the fallback (and its note)
        if name in derived and fallback in out:
            out[name]["prefill_attention_efficiency"] = out[fallback]["prefill_attention_efficiency"]
            out[name]["source"] += f"; prefill attention: {fallback}'s (its own table is broken)"
    bundle = data / "llmservingsim/perf/RTX4090/meta-llama/Llama-3.1-8B/bf16"
    if bundle.is_dir():
        out["RTX-4090"] = llmservingsim(bundle, get_gpu("RTX-4090"))
    if args.llmservingsim_repo:
        v0_entries(Path(args.llmservingsim_repo), data, out)
    text = json.dumps(dict(sorted(out.items())), indent=1)
    text = re.sub(r"\[\s+([^\]]*?)\s+\]", lambda x: "[" + re.sub(r"\s+", " ", x[1]) + "]", text)
    path.write_text(text + "\n", encoding="utf-8")
    for name, e in sorted(out.items()):
        print(f"{name:<13} gemm {' '.join(f'{x:.2f}' for x in e['gemm_efficiency'])}  prefill "
              f"attn {e['prefill_attention_efficiency']:.3f}  decode attn "
              f"{e['decode_attention_bandwidth']:.3f}  floors {e['kernel_floor_us']:.1f} / "
              f"{e['attention_floor_us']:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
