"""Attention of mixed prefill + decode batches, kernel data only: the aiconfigurator (`-aic`)
profiles' composition against LLMServingSim's measured mixed batches (vLLM 0.19.0's attention
layer timed on real mixed batches, `attention.csv`: prefill_chunk x kv_prefill x n_decode x
kv_decode, per layer), on the GPUs both measured.

At every bundle point with a prefill chunk pc (no cached prefix) beside nd decode rows at
history kd (context kd + 1), the decode rows' share of the mixed batch is
    I = t(pc, 0, nd, kd) - t(pc, 0, 0, 0)      (bundle: measured)
and its predictions:
- `aic before`: aiconfigurator's decode-only kernel of nd rows (what the -aic path composed);
- `aic after`:  that + nd x the profile's `attention.mixed` curve (backends/fa_tiles.py);
- `roofline before / after`: the roofline with the GPU's kernel-measured efficiencies
  (backends/roofline.py shape mode): the rows' attended positions and KV reads, without and
  with its mixed-batch tile term;
- `bundle decode + tiles`: the bundle's own decode-only time + nd x the same tile formula at
  the per-tile rate of the bundle's own prefill-only points (tests the tiling alone, with no
  aiconfigurator table; the only check on the RTX 4090, which aiconfigurator did not measure).
Printed: sum of predicted over sum of measured (time-weighted) and the median ratio, by decode
rows, over points with kd >= 128; a last row per bundle holds the points where one query
head's pass over the decode rows' KV (nd x (kd + 1) x 2 x head_dim x 2 bytes) exceeds the
GPU's L2 (datasheets: RTX PRO 6000 128 MB, RTX 4090 72 MB). FA2 launches the query heads one
after another (grid (m blocks, sequences, heads)), so there the KV a group's query heads share
no longer stays in L2 between them and is read again from DRAM: not modelled.

    .venv/bin/python benchmarks/mixed_attention_check.py --llmservingsim-repo LSS
(LSS: `git archive 5daddb2 profiler/perf | tar -x -C LSS` of casys-kaist/LLMServingSim; the
Llama-3.1-8B bundles are also read from ../shared/data/serving/profiles/llmservingsim/.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.fa_tiles import SM_ARCH, Tiling, fa_version, mixed_extra_us, tile_rate
from seqsched.backends.efficiency import roofline_measurements
from seqsched.backends.profile_registry import load_cost_profile
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.specs import get_gpu, get_model

# (bundle folder under perf/, GPU, model, TP, built-in -aic profile or None)
CASES = [
    ("RTXPRO6000/meta-llama/Llama-3.1-8B/bf16/tp1", "RTX-PRO-6000", "llama-3.1-8b", 1,
     "rtxpro6000-llama-3.1-8b-tp1-aic"),
    ("RTXPRO6000/meta-llama/Llama-3.1-8B/bf16/tp2", "RTX-PRO-6000", "llama-3.1-8b", 2,
     "rtxpro6000-llama-3.1-8b-tp2-aic"),
    ("RTXPRO6000/Qwen/Qwen3-32B/bf16/tp1", "RTX-PRO-6000", "qwen3-32b", 1,
     "rtxpro6000-qwen3-32b-tp1-aic"),
    ("RTXPRO6000/Qwen/Qwen3-32B/bf16/tp2", "RTX-PRO-6000", "qwen3-32b", 2,
     "rtxpro6000-qwen3-32b-tp2-aic"),
    ("RTXPRO6000/Qwen/Qwen3-30B-A3B-Instruct-2507/bf16/tp1", "RTX-PRO-6000", "qwen3-30b-a3b", 1,
     "rtxpro6000-qwen3-30b-a3b-tp1-aic"),
    ("RTX4090/meta-llama/Llama-3.1-8B/bf16/tp1", "RTX-4090", "llama-3.1-8b", 1, None),
]
GROUPS = ((1, 8), (16, 64), (128, 256))
L2_BYTES = {"RTX-PRO-6000": 128e6, "RTX-4090": 72e6}


def bundle_points(csv: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Mixed points (pc > 0, kp = 0, nd > 0) with their prefill-only and decode-only times,
    and the prefill-only times by chunk (kp = 0)."""
    t = pd.read_csv(csv).groupby(["prefill_chunk", "kv_prefill", "n_decode", "kv_decode"])[
        "time_us"].mean()
    df = t.reset_index()
    df.columns = ["pc", "kp", "nd", "kd", "us"]
    pre = df[(df.kp == 0) & (df.nd == 0) & (df.pc > 0)].set_index("pc")["us"]
    dec = df[(df.pc == 0) & (df.kp == 0) & (df.nd > 0)].set_index(["nd", "kd"])["us"]
    mix = df[(df.pc > 0) & (df.kp == 0) & (df.nd > 0) & (df.kd >= 128)].copy()
    mix = mix[mix.pc.isin(pre.index) & pd.MultiIndex.from_frame(mix[["nd", "kd"]]).isin(
        dec.index)]
    mix["prefill"] = pre.loc[mix.pc].to_numpy()
    mix["decode"] = dec.loc[list(zip(mix.nd, mix.kd))].to_numpy()
    mix["measured"] = mix.us - mix.prefill
    return mix.reset_index(drop=True), pre


def predictions(mix: pd.DataFrame, pre: pd.Series, gpu: str, model: str, tp: int,
                aic: str | None) -> dict:
    spec = get_model(model)
    tiling = Tiling(fa_version(SM_ARCH[gpu]), spec.n_heads // tp,
                    max(spec.n_kv_heads // tp, 1), spec.head_dim)
    ctx = mix.kd.to_numpy(float) + 1.0
    nd = mix.nd.to_numpy(float)
    per_cta, per_tile = tile_rate(tiling, pre.index.to_numpy(float), np.ones(len(pre)),
                                  pre.to_numpy(float))
    out = {"bundle decode + tiles": mix.decode.to_numpy()
           + nd * mixed_extra_us(tiling, ctx, per_cta, per_tile)}
    if aic is not None:
        cost = load_cost_profile(aic)
        before = np.array([cost.decode_grid(n, c) for n, c in zip(nd, ctx)], dtype=float)
        extra = cost.mixed_row.us if cost.mixed_row is not None else None
        tiles = nd * np.interp(ctx, cost.mixed_row.x, extra) if extra is not None else 0.0
        out["aic before"] = before
        out["aic after"] = np.maximum(before, tiles) if cost.mixed_overlap else before + tiles
    roof = RooflineCostModel(get_gpu(gpu), spec, tp=tp, **roofline_measurements(gpu, tp))
    layers = spec.n_layers
    rows_s = nd * ctx * (roof._fa_s + roof._kv_s) + nd * roof._kv_s     # + their KV writes
    extra = np.array([roof.mixed_extra(int(n), n * c) for n, c in zip(nd, ctx)])
    out["roofline before"] = rows_s / layers * 1e6
    out["roofline after"] = (rows_s + extra) / layers * 1e6
    return out


def beyond_l2(mix: pd.DataFrame, gpu: str, model: str, tp: int) -> np.ndarray:
    return (mix.nd * (mix.kd + 1) * 4 * get_model(model).head_dim).to_numpy() > L2_BYTES[gpu]


def summary(mix: pd.DataFrame, preds: dict, big: np.ndarray) -> list[str]:
    rows = []
    for lo, hi in GROUPS + ((0, 0),):
        sel = ((mix.nd >= lo) & (mix.nd <= hi)).to_numpy() & ~big if hi else big
        meas = mix.measured[sel].to_numpy()
        cells = [f"{sel.sum()}", f"{meas.sum() / 1e3:,.1f}"]
        for name in ("aic before", "aic after", "roofline before", "roofline after",
                     "bundle decode + tiles"):
            p = preds.get(name)
            if p is None:
                cells.append("—")
                continue
            p = p[sel]
            cells.append(f"{100 * (p.sum() / meas.sum() - 1):+.0f}% "
                         f"(median {100 * (np.median(p / meas) - 1):+.0f}%)")
        rows.append(f"| {f'{lo}-{hi}' if hi else 'beyond L2'} | " + " | ".join(cells) + " |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llmservingsim-repo", default=None,
                    help="a checkout (or `git archive ... profiler/perf`) of LLMServingSim")
    ap.add_argument("--data", default="../shared/data/serving/profiles",
                    help="the shared profiles folder (its llmservingsim/perf Llama bundles)")
    args = ap.parse_args()
    roots = [Path(args.data) / "llmservingsim" / "perf"]
    if args.llmservingsim_repo:
        roots.insert(0, Path(args.llmservingsim_repo) / "profiler" / "perf")
    print("| bundle | decode rows | points | measured (ms, summed) | aic before | aic after "
          "| roofline before | roofline after | bundle decode + tiles |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rel, gpu, model, tp, aic in CASES:
        csv = next((r / rel / "attention.csv" for r in roots
                    if (r / rel / "attention.csv").is_file()), None)
        if csv is None:
            print(f"| {rel} | (not found; pass --llmservingsim-repo) |")
            continue
        mix, pre = bundle_points(csv)
        preds = predictions(mix, pre, gpu, model, tp, aic)
        for line in summary(mix, preds, beyond_l2(mix, gpu, model, tp)):
            print(f"| {gpu} {model} TP{tp} " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
