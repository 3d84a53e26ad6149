"""Import Vidur's operator profiles (microsoft/vidur `data/profiling/`, MIT): `compute/<gpu>/
<model>/mlp.csv` (per-operator times in ms by `num_tokens` and `num_tensor_parallel_workers`)
and `network/<node>/all_reduce.csv` (all-reduce time by size in bytes and worker count).

Vidur's public snapshot has no attention tables and no LM head, so those come from
aiconfigurator's measured vLLM kernels of the same GPU (`--attention-from`, by default the
`aiconfigurator/<gpu>_sxm` folder beside `vidur/`), else from a roofline over the GPU's
datasheet figures; the provenance says which. Vidur's per-block ops map to the kernel profile:
emb -> embedding, input/post-attention layernorm, attn_pre_proj -> qkv_proj, attn_rope ->
rotary_emb, attn_post_proj -> o_proj, mlp_up_proj -> gate_up_proj, mlp_act -> act_fn,
mlp_down_proj -> down_proj, add (once per block, as Vidur's ExecutionTime sums it).

Every GEMM time is raised to its speed of light at the GPU's datasheet figures, as the
aiconfigurator path does (`gemm_sol_us`, aiconfigurator's `clamp_gemm_grids_to_sol`:
max(2 m n k / peak FLOP/s, 2 (m n + m k + n k) bytes / bandwidth)): Vidur's four projections
at their per-rank shapes (vidur/profiling/mlp/mlp_impl.py: QKV (q + 2 kv) x d, O d x q, the
gated up projection 2 ff x d, down d x ff, each split over the TP workers), and the
aiconfigurator LM head and decode attention it borrows. A kernel timed alone on the same
tensors can read its weights from L2 and beat DRAM, which it cannot do inside a forward pass
through every layer; only points measured below that floor move.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqsched.backends.import_aiconfigurator import (SEQS, attention_section, gemm_ops,
                                                     gemm_sol_us, load_gemm)
from seqsched.backends.profile_common import (allreduce_section, calibration, mean_by,
                                              read_csv, sig, skeleton)
from seqsched.backends.roofline_attention import roofline_attention, roofline_lm_head
from seqsched.backends.specs import GPUSpec, ModelSpec
from seqsched.common.errors import UserError

REPO = "microsoft/vidur"
LICENCE = "MIT"
OPS = {"emb": ("embedding", 1), "input_layernorm": ("input_layernorm", None),
       "attn_pre_proj": ("qkv_proj", None), "attn_rope": ("rotary_emb", None),
       "attn_post_proj": ("o_proj", None),
       "post_attention_layernorm": ("post_attention_layernorm", None),
       "mlp_up_proj": ("gate_up_proj", None), "mlp_act": ("act_fn", None),
       "mlp_down_proj": ("down_proj", None), "add": ("add", None)}
AICONF_DIR = {"a100": "a100_sxm", "h100": "h100_sxm"}


def gemm_shapes(model: ModelSpec, tp: int) -> dict:
    """Per-rank (n, k) of Vidur's projections (vidur/profiling/mlp/mlp_impl.py)."""
    d, q, kv, ff = model.d_model, model.q_dim, model.kv_dim, model.d_ff
    return {"qkv_proj": ((q + 2 * kv) / tp, d), "o_proj": (d, q / tp),
            "gate_up_proj": (2 * ff / tp, d), "down_proj": (d, ff / tp)}


def _device(folder: Path) -> tuple[str, Path | None]:
    """(device folder name, the vidur root) from `<root>/compute/<device>/.../mlp.csv`."""
    for up in [folder, *folder.parents]:
        if up.parent.name == "compute":
            return up.name, up.parent.parent
    return folder.parent.parent.name, None


def _network(compute: Path, tp: int) -> Path | None:
    """Vidur's all_reduce.csv for this GPU covering `tp` workers: pairwise NVLink first, then
    the DGX table (a100_dgx runs at <= 23 GB/s, PCIe-class: the caller prefers vLLM's own
    all-reduce measured by aiconfigurator over it)."""
    dev, root = _device(compute)
    for node in (f"{dev}_pairwise_nvlink", f"{dev}_dgx"):
        f = root / "network" / node / "all_reduce.csv" if root else None
        if f is not None and f.is_file():
            df = read_csv(f, ["num_workers", "size", "time_stats.all_reduce.median"])
            if (df["num_workers"] == tp).any():
                return f
    return None


def _aiconf(compute: Path, attention_from) -> Path | None:
    if attention_from:
        return Path(attention_from)
    dev = _device(compute)[0]
    for up in compute.parents:
        cand = up / "aiconfigurator" / AICONF_DIR.get(dev, f"{dev}_sxm")
        if cand.is_dir():
            return cand
    return None


def import_vidur(path, model: ModelSpec, tp: int = 1, gpu: GPUSpec | None = None,
                 name: str | None = None, attention_from: str | None = None) -> dict:
    folder = Path(path)
    csv = folder / "mlp.csv" if folder.is_dir() else folder
    folder = csv.parent
    cols = ["num_tokens", "num_tensor_parallel_workers", "n_embd"] + \
        [f"time_stats.{op}.median" for op in OPS]
    df = read_csv(csv, cols)
    df = df[df["num_tensor_parallel_workers"] == tp]
    if df.empty:
        raise UserError(f"{csv}: no rows at {tp} tensor-parallel workers; pick --tp from "
                        f"{sorted(read_csv(csv, cols)['num_tensor_parallel_workers'].unique())}")
    if int(df["n_embd"].iloc[0]) != model.d_model:
        raise UserError(f"{csv}: profiled d_model {int(df['n_embd'].iloc[0])} but --model "
                        f"{model.name} has {model.d_model}; pick the matching model")
    if gpu is None:
        raise UserError("vidur import needs --gpu (interconnect and roofline figures)")
    notes = ["per-operator medians from Vidur's profiler (PyTorch kernels, not vLLM's)",
             f"GEMMs and decode attention raised to their speed of light at "
             f"{gpu.peak_tflops:g} TFLOP/s and {gpu.bandwidth_gbs:g} GB/s, as aiconfigurator "
             "loads its tables"]
    dense, shapes = {}, gemm_shapes(model, tp)
    for op, (canon, count) in OPS.items():
        d = mean_by(df, ["num_tokens"], f"time_stats.{op}.median")
        tokens, us = d["num_tokens"].to_numpy(float), d[f"time_stats.{op}.median"] * 1e3
        if canon in shapes:
            us = np.maximum(us, gemm_sol_us(tokens, *shapes[canon], gpu))
        dense[canon] = {"count": count or model.n_layers, "tokens": sig(tokens, 6),
                        "us": sig(us)}
    aic = _aiconf(folder, attention_from)
    engine_version = None
    if aic is not None:
        attention, engine_version = attention_section(aic, model, tp, gpu=gpu)
        attention.pop("kv_heads_measured", None), attention.pop("kv_heads", None)
        # with the aic path's mixed-batch FlashAttention tiles (`mixed`, backends/fa_tiles.py):
        # the same vLLM attention kernel runs a mixed batch the same way whoever timed the MLP
        gemm, _ = load_gemm(aic, gpu=gpu)
        per_seq = gemm_ops(gemm, model, tp)[1]
        notes.append(f"attention and LM head from aiconfigurator's vLLM {engine_version} "
                     f"kernels of the same GPU ({aic.name}): Vidur ships no attention tables"
                     + ("; a mixed batch's decode rows pay FlashAttention's extra query tiles"
                        if "mixed" in attention else ""))
    else:
        attention = roofline_attention(model, tp, gpu)
        per_seq = {"lm_head": roofline_lm_head(model, tp, gpu, SEQS)}
        notes.append("attention and LM head from a roofline over the GPU's datasheet figures "
                     "(no aiconfigurator data of this GPU found): not measured")
    prov = {"source": "vidur", "repo": REPO, "licence": LICENCE, "path": str(csv),
            "hardware": _device(folder)[0], "engine": "vidur-profiler (PyTorch)",
            "engine_version": engine_version, "dtype": "fp16", "tp": tp, "notes": notes}
    profile = skeleton(name or f"{_device(folder)[0]}-{model.name}-tp{tp}", model,
                       gpu.name, tp, "fp16", prov)
    profile["dense"], profile["per_sequence"], profile["attention"] = dense, per_seq, attention
    net = _network(folder, tp) if tp > 1 else None
    if net is not None:
        ar = read_csv(net, ["num_workers", "size", "time_stats.all_reduce.median"])
        # sizes a few bytes apart (134217728 and 134217730) are one point at the 8 digits a
        # profile keeps (sig): averaged, else the table would not increase and not load
        ar = ar[ar["num_workers"] == tp].assign(size=lambda d: sig(d["size"], 8))
        ar = mean_by(ar, ["size"], "time_stats.all_reduce.median")
        top = ar.iloc[-1]
        gbs = top["size"] / (top["time_stats.all_reduce.median"] * 1e-3) / 1e9
    slow = net is not None and gbs < 0.25 * gpu.interconnect_gbs
    if tp > 1 and aic is not None and (net is None or slow):
        from seqsched.backends.import_aiconfigurator import allreduce_table
        profile["allreduce"] = allreduce_table(aic, model, tp)
        why = (f"Vidur's {net.parent.name} table runs at {gbs:.0f} GB/s, under a quarter of "
               f"the GPU's {gpu.interconnect_gbs:g} GB/s link" if net is not None
               else "no Vidur table at this TP")
        notes.append("all-reduce: vLLM's custom all-reduce measured by aiconfigurator on the "
                     f"same GPU ({aic.name}); {why}")
    elif tp > 1:
        if net is None:
            raise UserError(f"no Vidur all_reduce.csv at {tp} workers beside {folder}")
        profile["allreduce"] = allreduce_section(
            model, tp, ar["size"].to_numpy(float),
            np.asarray(ar["time_stats.all_reduce.median"], float) * 1e3,
            f"Vidur {net.parent.name} all_reduce.csv (size in bytes), measured")
        notes.append(f"all-reduce: {net.parent.name}")
    profile["calibration"] = calibration(profile)
    return profile


__all__ = ["import_vidur"]
