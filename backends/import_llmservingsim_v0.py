"""Import LLMServingSim's older per-layer profiles (casys-kaist/LLMServingSim @ 5daddb2, MIT,
`profiler/v0/perf_models/<hw>/<org>/<model>/tp<N>/`) as a seqsched kernel profile.

What v0 measured (profiler/v0/profiler/layers/main.py, attention/attention_profiler.py):
- `layers.csv` (`layer_name,input,kv_cache,tp_size,latency(ns)`): one Hugging Face
  transformers decoder layer in fp16 (the profiler sets `config.dtype = torch.float16`), batch
  1, `input` = 1..2048 tokens, no KV cache, each module timed by the PyTorch profiler
  (record_function, median of 30 runs). These are eager PyTorch kernels, not vLLM's: separate
  q/k/v and gate/up cuBLAS GEMMs, unfused fp32 RMSNorm and rotary, no CUDA graphs. TP is
  emulated on one GPU by dividing heads and FFN width by `tp_size`; no communication is timed.
- `attention.csv` (Vidur's layout, where present): FlashAttention-2 `flash_attn_varlen_func`,
  fp16, causal. A prefill row (chunk `prefill_chunk_size`, `kv_cache_size` K) runs Q = chunk
  against K keys, bottom-right aligned: a chunk on K - chunk cached tokens. A decode row runs
  `batch_size` single-token queries against `kv_cache_size` keys IN TOTAL, split evenly
  (`Lk_list = [kv_len // batch_size] * batch_size` in `_build_varlen_qkv`; at 64 rows and 32
  keys each row has none and the kernel takes 2.6 us on the H100 70B table), and without
  split-KV, so few long rows run on few SMs.

How LLMServingSim's v0 simulator read them (inference_serving/trace_generator.py @ 04bdeb8,
the last commit with it): every dense row by (layer, the iteration's total tokens), once per
layer, embedding / final norm / LM head once, the LM head by the number of requests;
attention from the sklearn predictor's tables keyed by (summed prefill KV, root of summed
squared chunks) and (decode rows, MEAN decode context) -- it queried the decode table, whose
KV axis is a total, with a per-row context. Here a decode iteration of B rows at mean context
c reads the table at B rows and B x c keys (what the kernel was timed on); rows beyond a
batch's measured keys extrapolate linearly in keys (bandwidth-bound), and the provenance
counts how many grid cells that is. Prefill attention follows the aiconfigurator importer: a
chunk of q tokens on p cached costs the full prefill of p + q keys times its share of score
entries, the full-prefill curve read from `attention.csv`'s chunk-on-nothing rows (else
`layers.csv`'s `attn`, HF's attention call at kv 0) and scaled by score entries beyond it;
`attention.csv`'s chunked rows check that share rule (`calibration.attention_share_check`).
Where v0 has no decode attention (H100 Llama-3.1-8B) it comes from aiconfigurator's vLLM
kernels of the same GPU (`attention_from`), else a roofline; TP > 1 all-reduce from
aiconfigurator's measured vLLM custom all-reduce (`allreduce_from`), else a ring model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.interp import error_summary, interp1
from seqsched.backends.profile_common import (allreduce_section, calibration, read_csv,
                                              ring_allreduce_us, sig, skeleton)
from seqsched.backends.specs import GPU_ALIASES, MODEL_ALIASES, MODELS, GPUSpec, ModelSpec
from seqsched.common.errors import UserError

REPO = "casys-kaist/LLMServingSim"
COMMIT = "5daddb2"
LICENCE = "MIT"
COLUMNS = ["layer_name", "input", "kv_cache", "tp_size", "latency(ns)"]
PER_LAYER = ("input_layernorm", "q_proj", "k_proj", "v_proj", "rope", "o_proj",
             "post_layernorm", "gate_proj", "up_proj", "act_fn", "down_proj")
PER_MODEL = ("embedding", "final_layernorm")
MOE_ROWS = ("gate", "expert.w1", "expert.w2", "expert.w3")
ATTN_COLUMNS = ["time_stats.attn_prefill.median", "time_stats.attn_decode.median", "n_embd",
                "n_q_head", "n_kv_head", "num_tensor_parallel_workers", "batch_size",
                "prefill_chunk_size", "kv_cache_size", "is_prefill"]
# compact grids (the profiler's token axis is every integer up to 2048)
TOKENS = np.unique(np.concatenate([np.arange(1, 65), np.arange(72, 513, 8),
                                   np.arange(528, 8193, 16)])).astype(float)
CACHED = np.array([0, 128, 256, 512, 1024, 2048, 4096, 8192, 16384], dtype=float)
ROWS = np.array([1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256], dtype=float)
CONTEXTS = np.array([16, 32, 64, 128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144,
                     8192, 12288, 16384, 32768, 65536], dtype=float)
AICONF_DIR = {"H100": "h100_sxm", "A100": "a100_sxm"}


def locate(path: str | Path, tp: int) -> Path:
    """The tp<N>/ folder holding layers.csv, from it or from the model folder above it."""
    p = Path(path)
    if (p / f"tp{tp}" / "layers.csv").is_file():
        return p / f"tp{tp}"
    if (p / "layers.csv").is_file():
        return p
    if not p.exists():
        raise UserError(f"{p}: no such folder; give an LLMServingSim v0 profile folder "
                        "(perf_models/<hw>/<org>/<model>/ or its tp<N>/)")
    if (p / "dense.csv").is_file() or (p / f"tp{tp}" / "dense.csv").is_file():
        raise UserError(f"{p}: this is an LLMServingSim perf bundle (dense.csv), not the v0 "
                        "layout; use `seqsched profile import llmservingsim`")
    have = sorted(d.name for d in p.iterdir() if d.is_dir() and (d / "layers.csv").is_file())
    raise UserError(f"{p}: no tp{tp}/layers.csv (found: {', '.join(have) or 'none'}); pick "
                    "--tp from those or point at the folder holding layers.csv")


def check_model(folder: Path, model: ModelSpec) -> str:
    """The profiled model's name from the path; an error when it is another built-in model."""
    hf = f"{folder.parent.parent.name}/{folder.parent.name}"
    known = MODEL_ALIASES.get(hf, folder.parent.name.lower())
    if known in MODELS and known != model.name:
        raise UserError(f"{folder}: profiled {hf} but --model is {model.name}; pass "
                        f"--model {known} or the matching profile folder")
    return hf


def read_layers(folder: Path, tp: int) -> pd.DataFrame:
    df = read_csv(folder / "layers.csv", COLUMNS)
    have = sorted(int(v) for v in df["tp_size"].unique())
    df = df[(df["tp_size"] == tp) & (df["kv_cache"] == 0)]
    if df.empty:
        raise UserError(f"{folder / 'layers.csv'}: no rows at tp_size {tp} and kv_cache 0 "
                        f"(tp_size values: {have}); pick --tp from those")
    missing = [n for n in PER_LAYER + PER_MODEL + ("lm_head",)
               if n not in set(df["layer_name"])]
    if missing:
        raise UserError(f"{folder / 'layers.csv'}: no rows for {', '.join(missing)}; is this "
                        "a LLaMA-family v0 profile?")
    return df.assign(us=df["latency(ns)"] / 1e3)


def curve(df: pd.DataFrame, layer: str, axis=TOKENS) -> tuple[list, list]:
    """(x, us) of one layer on the compact token grid (measured points only)."""
    d = df[df["layer_name"] == layer].groupby("input")["us"].mean()
    keep = d.index.to_numpy(float)
    keep = keep[np.isin(keep, axis) | (keep == keep.max())]
    return sig(keep, 6), sig(d.loc[keep].to_numpy(float))


def full_prefill(isl: np.ndarray, us: np.ndarray, total) -> np.ndarray:
    """Full causal prefill of `total` keys: the measured curve, scaled by score entries
    s (s + 1) / 2 beyond its last point (compute-bound FlashAttention)."""
    total = np.asarray(total, dtype=float)
    top = isl[-1]
    beyond = us[-1] * total * (total + 1) / (top * (top + 1))
    return np.where(total <= top, interp1(isl, us, np.minimum(total, top)), beyond)


def share(q, p):
    """A chunk of q tokens on p cached ones: its share of the p+q full prefill's entries."""
    total = q + p
    return q * (p + (q + 1) / 2) / (total * (total + 1) / 2)


def read_attention(folder: Path, model: ModelSpec, tp: int) -> pd.DataFrame | None:
    path = folder / "attention.csv"
    if not path.is_file():
        return None
    df = read_csv(path, ATTN_COLUMNS)
    df = df[df["num_tensor_parallel_workers"] == tp]
    first = df.iloc[0] if len(df) else None
    if first is None or (int(first["n_embd"]), int(first["n_q_head"]),
                         int(first["n_kv_head"])) != (model.d_model, model.n_heads,
                                                      model.n_kv_heads):
        raise UserError(f"{path}: not measured for {model.name} at TP{tp} (d_model, heads, "
                        f"KV heads {model.d_model}, {model.n_heads}, {model.n_kv_heads}); "
                        "pick the matching model or --tp")
    return df


def decode_grid(dec: pd.DataFrame, notes: list) -> dict:
    """(rows, mean context) grid from the table's (rows, TOTAL keys) rows: per measured batch
    size on ROWS, linear in keys, extrapolated from its last two points beyond its largest
    measured total (a bandwidth-bound kernel)."""
    dec = dec.groupby(["batch_size", "kv_cache_size"], as_index=False)[
        "time_stats.attn_decode.median"].mean()
    counts = dec.groupby("batch_size").size()
    rows = np.array([b for b in ROWS if counts.get(b, 0) >= 2] or
                    [float(b) for b in counts.index if counts[b] >= 2], dtype=float)
    if rows.size < 2:
        raise UserError("attention.csv: decode rows at fewer than two batch sizes with two "
                        "KV sizes each; the v0 attention profile is incomplete")
    grid, extrapolated = [], 0
    for b in rows:
        d = dec[dec["batch_size"] == b]
        keys = b * CONTEXTS
        extrapolated += int((keys > d["kv_cache_size"].max()).sum())
        grid.append(interp1(d["kv_cache_size"].to_numpy(float),
                            d["time_stats.attn_decode.median"].to_numpy(float) * 1e3, keys))
    notes.append(f"decode attention: v0 attention.csv (FlashAttention-2 varlen, no split-KV) at "
                 f"rows x mean context = the total keys it was timed on; {extrapolated} of "
                 f"{rows.size * CONTEXTS.size} grid cells lie beyond a batch size's largest "
                 "measured total and are extrapolated linearly in keys")
    return {"rows": sig(rows, 6), "context": sig(CONTEXTS, 8), "us": [sig(r) for r in grid]}


def prefill_grid(pre: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict]:
    """(chunk axis, chunk x CACHED grid in us, share-rule check) from attention.csv's prefill
    rows: a row (chunk q, K keys) is q tokens on K - q cached. Each chunk is linear in cached
    tokens (every query block reads every key) from its last two points; a chunk measured on
    nothing only is scaled by score entries from there (large chunks: compute-bound)."""
    t = pre["time_stats.attn_prefill.median"].to_numpy(float) * 1e3
    q_all = pre["prefill_chunk_size"].to_numpy(float)
    p_all = pre["kv_cache_size"].to_numpy(float) - q_all
    full = p_all == 0
    isl, full_us = q_all[full], t[full]
    if isl.size < 2:
        raise UserError("attention.csv: fewer than two prefill rows on an empty cache; the v0 "
                        "attention profile is incomplete")
    pred = full_prefill(isl, full_us, q_all + p_all) * share(q_all, p_all)
    check = error_summary(np.abs(pred[~full] - t[~full]) / t[~full])
    grid = []
    for q in isl:
        p, us = p_all[q_all == q], t[q_all == q]
        if p.size >= 2:
            grid.append(interp1(p, us, CACHED))
        else:
            grid.append(us[0] * full_prefill(isl, full_us, q + CACHED) * share(q, CACHED)
                        / full_prefill(isl, full_us, q))
    bigger = TOKENS[TOKENS > isl[-1]]          # chunks beyond the table: by score entries
    grid += [full_prefill(isl, full_us, q + CACHED) * share(q, CACHED) for q in bigger]
    return np.concatenate([isl, bigger]), np.array(grid), check


def attention_section(folder: Path, layers: pd.DataFrame, model: ModelSpec, tp: int,
                      gpu: GPUSpec | None, attention_from, notes: list) -> tuple[dict, dict]:
    """The split attention section and the share-rule check (empty without attention.csv)."""
    att = read_attention(folder, model, tp)
    check = {"n": 0}
    if att is not None:
        pre = att[att["is_prefill"].astype(str).str.lower() == "true"]
        pre = pre.groupby(["prefill_chunk_size", "kv_cache_size"], as_index=False)[
            "time_stats.attn_prefill.median"].mean()
        tok, grid, check = prefill_grid(pre)
        top = float(pre.loc[pre["kv_cache_size"] == pre["prefill_chunk_size"],
                            "prefill_chunk_size"].max())
        notes.append("prefill attention: v0 attention.csv (FlashAttention-2 varlen, fp16) per "
                     "measured chunk (" + f"{int(np.sum(tok <= top))} chunks up to {top:g} "
                     "tokens), linear in cached tokens from each chunk's last two points; "
                     "chunks measured on an empty cache only, and longer chunks, scaled by "
                     "score entries from the full prefill (compute-bound); the share rule "
                     f"would miss its {check['n']} chunked rows by {check['mean_rel_err']:.0%} "
                     "on average (few query rows leave SMs idle)")
    else:
        d = layers[layers["layer_name"] == "attn"].groupby("input")["us"].mean()
        if d.empty:
            raise UserError(f"{folder}: neither attention.csv nor attn rows in layers.csv")
        isl, us = d.index.to_numpy(float), d.to_numpy(float)
        tok = TOKENS[TOKENS <= 8192]
        grid = full_prefill(isl, us, tok[:, None] + CACHED) * share(tok[:, None], CACHED)
        notes.append("prefill attention: full prefill from layers.csv attn rows (HF "
                     f"transformers attention call, batch 1, kv 0) up to {isl[-1]:g} keys, "
                     "scaled by score entries beyond; a chunk on cached tokens costs its "
                     "share of the full prefill's score entries (v0 timed no cached prefix)")
    section = {"kind": "split", "count": model.n_layers,
               "prefill": {"tokens": sig(tok, 6), "cached": sig(CACHED, 6),
                           "us": [sig(r) for r in grid]}}
    if att is not None:
        dec = att[att["is_prefill"].astype(str).str.lower() != "true"]
        section["decode"] = decode_grid(dec, notes)
    elif attention_from is not None:
        from seqsched.backends.import_aiconfigurator import attention_section as aic_attention
        aic, version = aic_attention(Path(attention_from), model, tp)
        section["decode"] = aic["decode"]
        notes.append(f"decode attention: v0 has none for this model; aiconfigurator's vLLM "
                     f"{version} generation-attention kernels of the same GPU "
                     f"({Path(attention_from).name})")
    elif gpu is not None:
        from seqsched.backends.roofline_attention import roofline_attention
        section["decode"] = roofline_attention(model, tp, gpu)["decode"]
        notes.append("decode attention: v0 has none for this model and no aiconfigurator "
                     "folder was found; a roofline over the GPU's datasheet figures, not "
                     "measured")
    else:
        raise UserError(f"{folder}: v0 has no decode attention here; pass --attention-from "
                        "an aiconfigurator folder of the same GPU, or --gpu for a roofline")
    return section, check


def allreduce(model: ModelSpec, tp: int, gpu: GPUSpec | None, allreduce_from,
              notes: list) -> dict:
    if allreduce_from is not None:
        from seqsched.backends.import_aiconfigurator import allreduce_table
        section = allreduce_table(Path(allreduce_from), model, tp)
        notes.append(f"all-reduce: {section['source']} ({Path(allreduce_from).name}); v0 "
                     "times no communication (ASTRA-Sim modelled it)")
        return section
    if gpu is None or not gpu.interconnect_gbs:
        raise UserError(f"a TP{tp} profile needs the all-reduce: pass --allreduce-from an "
                        "aiconfigurator folder of the same GPU, or --gpu with an interconnect")
    nbytes = [2.0 ** e for e in range(10, 31)]
    notes.append("all-reduce from a ring model over the GPU's interconnect (v0 times none)")
    return allreduce_section(model, tp, nbytes, ring_allreduce_us(
        nbytes, tp, gpu.interconnect_gbs, gpu.allreduce_latency_us),
        f"ring model: {gpu.interconnect_gbs:g} GB/s ({gpu.interconnect}); not measured")


def beside(folder: Path, hw: str) -> Path | None:
    """The aiconfigurator folder of the same GPU next to the v0 tree (the shared data)."""
    name = AICONF_DIR.get(hw)
    for up in folder.parents if name else []:
        if (up / "aiconfigurator" / name).is_dir():
            return up / "aiconfigurator" / name
    return None


def import_llmservingsim_v0(path, model: ModelSpec, tp: int = 1, gpu: GPUSpec | None = None,
                            name: str | None = None, attention_from: str | None = None,
                            allreduce_from: str | None = None) -> dict:
    folder = locate(path, tp)
    profiled = check_model(folder, model)
    layers = read_layers(folder, tp)
    if model.n_experts or set(MOE_ROWS) & set(layers["layer_name"]):
        raise UserError(f"{folder}: mixture-of-experts v0 tables (gate, expert.w1-3, HF's "
                        "experts run one by one) are not imported; use the roofline "
                        "(--profile roofline) for this model")
    hw = folder.parent.parent.parent.name
    aic = beside(folder, hw)
    attention_from = attention_from or aic
    allreduce_from = allreduce_from or aic
    notes = ["per-layer kernels of an eager Hugging Face transformers decoder layer in fp16 "
             "(PyTorch profiler medians; separate q/k/v and gate/up GEMMs, unfused RMSNorm and "
             "rotary, no CUDA graphs), not vLLM's; TP emulated on one GPU by splitting heads "
             "and FFN width",
             "dense rows by the iteration's total tokens, the LM head by its sequences, as "
             "LLMServingSim's v0 trace generator; token grid thinned to "
             f"{TOKENS[TOKENS <= 2048].size} of the 2048 measured counts"]
    prov = {"source": "llmservingsim-v0", "repo": REPO, "commit": COMMIT, "licence": LICENCE,
            "path": str(folder), "hardware": hw, "profiled_model": profiled,
            "engine": "pytorch (HF transformers eager, FlashAttention-2)",
            "engine_version": "versions not recorded", "dtype": "fp16", "tp": tp, "notes": notes}
    gpu_name = gpu.name if gpu else GPU_ALIASES.get(hw, hw)
    profile = skeleton(name or f"{hw.lower()}-{model.name}-tp{tp}-v0", model, gpu_name, tp,
                       "fp16", prov)
    dense = {}
    for layer in PER_LAYER + PER_MODEL:
        x, us = curve(layers, layer)
        dense[layer] = {"count": model.n_layers if layer in PER_LAYER else 1,
                        "tokens": x, "us": us}
    x, us = curve(layers, "lm_head")
    profile["dense"] = dense
    profile["per_sequence"] = {"lm_head": {"count": 1, "sequences": x, "us": us}}
    profile["attention"], check = attention_section(folder, layers, model, tp, gpu,
                                                    attention_from, notes)
    if tp > 1:
        profile["allreduce"] = allreduce(model, tp, gpu, allreduce_from, notes)
    profile["calibration"] = calibration(profile)
    if check.get("n"):
        profile["calibration"]["attention_share_check"] = check
    return profile


__all__ = ["import_llmservingsim_v0", "locate", "decode_grid", "full_prefill", "share"]
