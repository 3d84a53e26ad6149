"""H100 calibration report: the same operator shapes in three independent sources of kernel
times, and one workload replayed on each, the spread being the honest uncertainty of an H100
prediction (no real H100 run is at hand).

Sources (built-in profiles, scripts/derive_kernel_profiles.py):
- v0:    LLMServingSim's v0 tables (eager Hugging Face transformers fp16 + FlashAttention-2,
         PyTorch profiler; `h100-*-v0`); for Llama-3.1-8B its decode attention is
         aiconfigurator's (v0 has none) and every TP > 1 all-reduce is aiconfigurator's;
- aic:   aiconfigurator's vLLM 0.19.0 kernels (GEMM, attention, custom all-reduce; norms,
         rotary, activation MODELLED as memory traffic; `h100-*-aic`);
- vidur: Vidur's PyTorch operator profiles of H100 x Llama-2 (`h100-llama-2-*`): Llama-2-70B
         TP4 has Llama-3.1-70B TP4's layer shapes (d 8192, 64/8 heads, FFN 28672), Llama-2-7B
         shares only the O GEMM and the norms with Llama-3.1-8B; Vidur's LM head and attention
         are aiconfigurator's, so they are not compared; its all-reduce is read from Vidur's
         own `network/h100_pairwise_nvlink/all_reduce.csv` when the data folder is present.
Per-layer microseconds (an op's count / layers x its time), per call for the all-reduce.

The workload: the shared RTX PRO 6000 run's 300 ShareGPT requests (~10 req/s) with its vLLM
settings (max_num_seqs 128, max_num_batched_tokens 2048, chunked prefill, prefix caching on),
on H100-SXM with the KV cache sized by seqsched, fcfs, once per profile whose every table is of
the model's shape (not Vidur's Llama-2-7B for Llama-3.1-8B) and on the roofline; "spread %" is
(max - min) / median over the kernel-profile sources (the roofline is not counted).

    .venv/bin/python benchmarks/h100_profile_crosscheck.py [--run DIR] [--skip-workload]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.profile import BUILTIN_DIR, read_profile
from seqsched.backends.profile_registry import load_cost_profile
from seqsched.backends.specs import get_gpu

DATA = Path(os.environ.get("SEQSCHED_DATA", "/work/shared/data"))
RUN = DATA / "serving" / "runs" / "rtxpro6000-llama-3.1-8b-vllm-0.19"
FAMILIES = {"QKV GEMM": ["q_proj", "k_proj", "v_proj", "qkv_proj"],
            "O GEMM": ["o_proj"], "gate+up GEMM": ["gate_proj", "up_proj", "gate_up_proj"],
            "down GEMM": ["down_proj"],
            "RMSNorm x2": ["input_layernorm", "post_layernorm", "post_attention_layernorm",
                           "layernorm"],
            "rotary": ["rope", "rotary_emb"], "SiLU x mul": ["act_fn"]}
TOKENS = (1, 16, 128, 512, 2048)
# (case, model, tp, {source: built-in profile}, families Vidur's profile shares with the model,
#  the sources whose whole profile is of the model's shape: those replay the workload)
CASES = [("H100 x Llama-3.1-8B TP1", "llama-3.1-8b", 1,
          {"v0": "h100-llama-3.1-8b-tp1-v0", "aic": "h100-llama-3.1-8b-tp1-aic",
           "vidur": "h100-llama-2-7b-tp1"}, {"O GEMM", "RMSNorm x2"}, ("v0", "aic")),
         ("H100 x Llama-3.1-70B TP4", "llama-3.1-70b", 4,
          {"v0": "h100-llama-3.1-70b-tp4-v0", "aic": "h100-llama-3.1-70b-tp4-aic",
           "vidur": "h100-llama-2-70b-tp4"}, set(FAMILIES), ("v0", "aic", "vidur"))]


def family_us(cost, layers: int, names: list[str], tokens) -> float:
    ops = [op for op in cost.dense if op.name in names]
    if not ops:
        return np.nan
    return float(sum(op.seconds(tokens) for op in ops) / layers * 1e6)


def vidur_allreduce(tp: int, nbytes: float) -> float:
    path = (DATA / "serving" / "profiles" / "vidur" / "network" / "h100_pairwise_nvlink"
            / "all_reduce.csv")
    if not path.is_file():
        return np.nan
    df = pd.read_csv(path)
    df = df[df["num_workers"] == tp].groupby("size")["time_stats.all_reduce.median"].mean()
    if df.empty:
        return np.nan
    return float(np.interp(nbytes, df.index.to_numpy(float), df.to_numpy(float)) * 1e3)


def operator_table(model: str, tp: int, names: dict, vidur_ok: set) -> pd.DataFrame:
    costs = {src: load_cost_profile(n) for src, n in names.items()}
    layers = read_profile(BUILTIN_DIR / f"{names['aic']}.json")["shape"]["n_layers"]
    rows = []

    def add(family, shape, vals):
        rows.append({"family": family, "shape": shape, **vals})
    for fam, ops in FAMILIES.items():
        for t in TOKENS:
            add(fam, f"{t} tok", {src: family_us(c, layers, ops, float(t))
                                  if src != "vidur" or fam in vidur_ok else np.nan
                                  for src, c in costs.items()})
    for s in (1, 32, 256):
        add("LM head", f"{s} seq", {src: float(c.per_sequence[0].seconds(float(s)) * 1e6)
                                    if src != "vidur" else np.nan
                                    for src, c in costs.items()})
    for q, p in ((128, 0), (512, 0), (2048, 0), (512, 1536), (32, 2016)):
        add("attn prefill", f"{q} on {p}", {src: float(c.prefill_grid(q, p)) if src != "vidur"
                                            else np.nan for src, c in costs.items()})
    for r, ctx in ((1, 1024), (1, 8192), (16, 1024), (64, 512), (128, 1024), (256, 2048)):
        add("attn decode", f"{r} x {ctx}", {src: float(c.decode_grid(float(r), float(ctx)))
                                           if src != "vidur" else np.nan
                                           for src, c in costs.items()})
    if tp > 1:
        d = get_gpu("H100-SXM")
        for t in (1, 128, 2048):
            nbytes = t * costs["aic"].allreduce_bytes_per_token
            ring = d.allreduce_latency_us + 2 * (tp - 1) / tp * nbytes / (d.interconnect_gbs
                                                                          * 1e3)
            add("all-reduce", f"{t} tok", {"v0": costs["v0"].allreduce.seconds(nbytes) * 1e6
                                           / costs["v0"].allreduce.count,
                                           "aic": costs["aic"].allreduce.seconds(nbytes) * 1e6
                                           / costs["aic"].allreduce.count,
                                           "vidur": vidur_allreduce(tp, nbytes), "ring": ring})
    for label, f in (("prefill 2048 tok", lambda c: c.prefill_time([2048], [0])),
                     ("decode 64 x 1024", lambda c: c.decode_times(64, 64 * 1024, 1)[0]),
                     ("decode 1 x 1024", lambda c: c.decode_times(1, 1024, 1)[0])):
        add("iteration ms", label, {src: float(f(c)) * 1e3 if src != "vidur" else np.nan
                                    for src, c in costs.items()})
    df = pd.DataFrame(rows)
    df["v0/aic"] = df["v0"] / df["aic"]
    df["vidur/aic"] = df["vidur"] / df["aic"]
    return df


def workload_table(run_dir: Path, model: str, tp: int, names: dict) -> pd.DataFrame:
    from seqsched.app.run import RunConfig, simulate
    from seqsched.app.vllm_args import apply_to_config, vllm_settings
    from seqsched.traces.recorded import read_recorded

    run = read_recorded(run_dir, "llmservingsim")
    base = apply_to_config(RunConfig(policy="fcfs", gpu="H100-SXM", model=model, tp=tp),
                           *vllm_settings(argparse.Namespace(), run.engine))
    base = dataclasses.replace(base, kv_blocks=None, tp=tp)
    rows = {}
    for src, name in {**names, "roofline": "roofline"}.items():
        rec = simulate(run.trace, dataclasses.replace(base, profile=name)).records
        gen = rec["generated_tokens"].astype(float)
        m = {"ttft": rec["first_token_s"] - rec["arrival_s"],
             "tpot": (rec["finish_s"] - rec["first_token_s"]) / (gen - 1).where(gen > 1),
             "e2e": rec["finish_s"] - rec["arrival_s"]}
        rows[src] = {f"{k} {s}": f(v.to_numpy(float)) * 1e3 for k, v in m.items()
                     for s, f in (("mean", np.nanmean), ("p50", np.nanmedian))}
    table = pd.DataFrame(rows).T
    kp = table.loc[[s for s in names]]
    table.loc["spread %"] = 100 * (kp.max() - kp.min()) / kp.median()
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(RUN))
    ap.add_argument("--skip-workload", action="store_true")
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    for case, model, tp, names, vidur_ok, whole in CASES:
        print(f"\n== {case}: per-layer us (per call for all-reduce; ms per iteration) ==")
        print(operator_table(model, tp, names, vidur_ok).round(2).to_string(index=False))
        if not args.skip_workload and Path(args.run).is_dir():
            print(f"\n-- {case}: the shared run's workload on H100-SXM (ms) --")
            print(workload_table(Path(args.run), model, tp, {k: names[k] for k in whole})
                  .round(1).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
