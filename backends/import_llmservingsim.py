"""Import an LLMServingSim perf bundle (casys-kaist/LLMServingSim `profiler/perf/<hw>/<model>/
<variant>/`, format in its docs/output-bundle.md) as a seqsched kernel profile.

The bundle's tables map one to one: `dense.csv` (layer, tokens, time_us), `per_sequence.csv`
(lm_head/sampler by sequences), `attention.csv` (the 4-D prefill_chunk x kv_prefill x n_decode
x kv_decode table) and the skew fit (`meta.yaml` `skew_fit` + `tp<N>/skew_fit.csv`: alpha
per bucket of mixed decode contexts, backends/skew.py) and, for MoE models, `moe.csv`
(tokens x activated_experts -> us of the router + fused experts, backends/moe_profile.py).
LLMServingSim profiles MoE at TP1 only and its `_lookup_moe` always reads `tp1/moe.csv`
("MoE is profiled once at tp=1 (single-rank view)", serving/core/trace_generator.py): a TP > 1
bundle without its own table gets the TP1 one, as there, and says so. TP > 1 bundles hold
per-rank kernels; the all-reduce they do not measure comes from `allreduce_from` when given
(an aiconfigurator systems folder of the same GPU: vLLM's custom all-reduce measured by
message size, `comm/vllm/<the bundle's vLLM version>/custom_allreduce_perf.parquet`), else from
a ring model over the GPU's interconnect (said so in the provenance).
"""

from __future__ import annotations

from pathlib import Path

from seqsched.backends.import_aiconfigurator_moe import measured_collectives
from seqsched.backends.profile_common import (allreduce_section, calibration, dense_op,
                                              mean_by, read_csv, ring_allreduce_us, sig,
                                              skeleton)
from seqsched.backends.skew import skew_section
from seqsched.backends.specs import GPUSpec, ModelSpec
from seqsched.common.errors import UserError

REPO = "casys-kaist/LLMServingSim"
LICENCE = "MIT"


def read_meta(folder: Path) -> dict:
    import yaml

    path = folder / "meta.yaml"
    if not path.is_file():
        return {}
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not readable YAML ({e})") from None
    return meta if isinstance(meta, dict) else {}


def locate(path: str | Path, tp: int) -> tuple[Path, dict]:
    """(the tp<N>/ folder, the bundle's meta) from the variant folder or the tp folder."""
    p = Path(path)
    if (p / f"tp{tp}").is_dir():
        return p / f"tp{tp}", read_meta(p)
    if (p / "dense.csv").is_file():
        return p, read_meta(p.parent)
    if not p.exists():
        raise UserError(f"{p}: no such folder; give an LLMServingSim perf bundle "
                        "(perf/<hw>/<model>/<variant>/)")
    have = sorted(d.name for d in p.iterdir() if d.is_dir() and d.name.startswith("tp"))
    # one level too high (perf/<hw>/<model>/): name the variant folders that hold tp<N>/
    variants = sorted(d.name for d in p.iterdir() if d.is_dir() and any(d.glob("tp*/dense.csv")))
    hint = (f"; the variant folder is one level down: {', '.join(f'{p}/{v}' for v in variants)}"
            if variants and not have else "")
    raise UserError(f"{p}: no tp{tp}/ folder with dense.csv (found: {', '.join(have) or 'none'});"
                    " pick --tp from those or point at the folder holding dense.csv" + hint)


def skew_fit(folder: Path, meta: dict, tp: int) -> dict | None:
    """The bundle's skew fit (meta.yaml `skew_fit`, its per-TP `bucket_table` CSV) as the
    profile's `attention.skew`; None when the fit is absent or `enabled: false` (LLMServingSim's
    `_skew_alpha` then returns 0)."""
    block = meta.get("skew_fit") or {}
    per_tp = block.get("per_tp") or {}
    entry = per_tp.get(tp) or per_tp.get(str(tp)) or {}
    if not block.get("enabled") or "alpha_default" not in entry:
        return None
    axes = entry.get("bucket_axes") or block.get("bucket_axes")
    table = None
    rel = entry.get("bucket_table")
    if rel and (folder.parent / rel).is_file():
        table = read_csv(folder.parent / rel, ["pc", "n_label", "skew_rate_label",
                                               "kv_big_label", "kp_label", "alpha"])
    try:
        return skew_section(entry["alpha_default"], axes, table)
    except KeyError as e:
        raise UserError(f"{folder.parent / str(rel)}: bucket label {e} is not in meta.yaml's "
                        "skew_fit.bucket_axes; re-run LLMServingSim's fit_alpha") from None


def moe_section(folder: Path, model: ModelSpec, tp: int, notes: list) -> dict | None:
    """The bundle's MoE table (its own tp folder's moe.csv, else tp1's as LLMServingSim does)
    as the profile's `moe` section; None for a dense model."""
    if not model.n_experts:
        return None
    path = folder / "moe.csv"
    if not path.is_file() and (folder.parent / "tp1" / "moe.csv").is_file():
        path = folder.parent / "tp1" / "moe.csv"
        notes.append(f"MoE expert times from tp1/moe.csv: the bundle has none for TP{tp}, and "
                     "LLMServingSim's _lookup_moe reads the TP1 table at every TP (an expert "
                     "FFN split over TP GPUs is timed as one GPU running it whole)")
    if not path.is_file():
        raise UserError(f"{folder}: {model.name} is a mixture-of-experts model but the bundle "
                        "has no moe.csv (tokens, activated_experts, time_us); profile it with "
                        "LLMServingSim's profiler or use the roofline (--profile roofline)")
    df = mean_by(read_csv(path, ["tokens", "activated_experts", "time_us"]),
                 ["activated_experts", "tokens"], "time_us")
    rows = [{"experts": int(e), "tokens": sig(d["tokens"], 6), "us": sig(d["time_us"])}
            for e, d in df.groupby("activated_experts", sort=True)]
    notes.append(f"MoE: {model.n_experts} experts, {model.experts_per_token} per token, router "
                 "+ fused experts timed per layer by (tokens, expected distinct experts "
                 "E (1 - (1 - k/E)^tokens): a load-balanced gate routing tokens uniformly and "
                 "independently; LLMServingSim's BALANCED router takes min(tokens k, E))")
    return {"count": model.n_layers, "n_experts": model.n_experts,
            "top_k": model.experts_per_token, "ep": 1, "gather": 1, "routing": "uniform",
            "table": str(path.relative_to(folder.parent)), "rows": rows}


def attention_slices(df) -> list[dict]:
    df = mean_by(df, ["prefill_chunk", "n_decode", "kv_prefill", "kv_decode"], "time_us")
    slices = []
    for (pc, nd), s in df.groupby(["prefill_chunk", "n_decode"], sort=True):
        rows = [{"kp": int(kp), "kd": [int(v) for v in r["kv_decode"]], "us": sig(r["time_us"])}
                for kp, r in s.groupby("kv_prefill", sort=True)]
        slices.append({"pc": int(pc), "nd": int(nd), "rows": rows})
    return slices


def measured_allreduce(systems: Path, version: str, model: ModelSpec, tp: int) -> dict:
    """vLLM's custom all-reduce as aiconfigurator measured it on this GPU, for the bundle's
    vLLM version (ai-dynamo/aiconfigurator, Apache-2.0)."""
    import pandas as pd

    from seqsched.backends.import_aiconfigurator import allreduce_from_frame
    path = Path(systems) / "comm" / "vllm" / str(version) / "custom_allreduce_perf.parquet"
    if not path.is_file():
        have = sorted(p.parent.name for p in Path(systems).glob(
            "comm/vllm/*/custom_allreduce_perf.parquet"))
        raise UserError(f"{path}: no such file (measured vLLM versions: "
                        f"{', '.join(have) or 'none'}); point --allreduce-from at an "
                        "aiconfigurator systems folder with the bundle's vLLM version")
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read it as parquet ({e})") from None
    section = allreduce_from_frame(df, model, tp, path)
    section["source"] = (f"aiconfigurator vLLM {version} custom all-reduce (CUDA graph), "
                         f"measured on {df['device'].iloc[0] if 'device' in df else 'the GPU'}")
    return section


def import_llmservingsim(path, model: ModelSpec, tp: int = 1, gpu: GPUSpec | None = None,
                         name: str | None = None, allreduce_from: str | None = None) -> dict:
    folder, meta = locate(path, tp)
    dense = read_csv(folder / "dense.csv", ["layer", "tokens", "time_us"])
    per_seq = read_csv(folder / "per_sequence.csv", ["layer", "sequences", "time_us"])
    attn = read_csv(folder / "attention.csv",
                    ["prefill_chunk", "kv_prefill", "n_decode", "kv_decode", "time_us"])
    hw = str(meta.get("hardware") or folder.parent.parent.parent.name)
    dtype = str(meta.get("variant") or folder.parent.name)
    notes = ["kernel times as measured by the bundle (vLLM, enforce_eager, one layer timed "
             "and multiplied by the model's layer count)",
             "all prefill chunks of an iteration are looked up as one chunk of their summed "
             "tokens and summed cached context; decode rows at their mean context "
             "(as LLMServingSim's simulator)"]
    prov = {"source": "llmservingsim", "repo": REPO, "licence": LICENCE, "path": str(folder),
            "hardware": hw, "gpu_name": meta.get("gpu"), "profiled_model": meta.get("model"),
            "engine": "vllm", "engine_version": meta.get("vllm_version"),
            "cuda_version": meta.get("cuda_version"), "profiled_at": meta.get("profiled_at"),
            "dtype": dtype, "tp": tp, "notes": notes}
    gpu_name = gpu.name if gpu else hw
    profile = skeleton(name or f"{hw.lower()}-{model.name}-tp{tp}", model, gpu_name, tp,
                       dtype, prov)
    ops, skipped = {}, []
    for layer, d in mean_by(dense, ["layer", "tokens"], "time_us").groupby("layer", sort=True):
        op = dense_op(model, str(layer), d["tokens"], d["time_us"])
        if op is None:
            skipped.append(str(layer))
        else:
            ops[str(layer)] = op
    if not ops:
        raise UserError(f"{folder / 'dense.csv'}: no layer this model runs "
                        f"(found {', '.join(skipped)})")
    if skipped:
        notes.append(f"dense layers not in a LLaMA block, ignored: {', '.join(skipped)}")
    profile["dense"] = ops
    profile["per_sequence"] = {
        str(layer): {"count": 1, "sequences": sig(d["sequences"], 6), "us": sig(d["time_us"])}
        for layer, d in mean_by(per_seq, ["layer", "sequences"], "time_us").groupby("layer")}
    profile["attention"] = {"kind": "grid4", "count": model.n_layers,
                            "slices": attention_slices(attn)}
    moe = moe_section(folder, model, tp, notes)
    if moe is not None:
        profile["moe"] = moe
        comm = measured_collectives(Path(allreduce_from)) if allreduce_from else None
        if comm:
            moe["ep_comm"] = comm
            notes.append("expert-parallel dispatch / combine: " + comm["source"])
    skew = skew_fit(folder, meta, tp)
    if skew is not None:
        profile["attention"]["skew"] = skew
        notes.append("mixed decode contexts: t_mean + alpha (t_max - t_mean), alpha per bucket "
                     f"from the bundle's skew fit ({len(skew.get('pc_values', []))} prefill "
                     f"chunks, pooled alpha {skew['alpha_default']:g} elsewhere), as "
                     "LLMServingSim's _lookup_attention_with_skew")
    else:
        notes.append("no skew correction: the bundle's skew fit is absent or disabled "
                     "(LLMServingSim then applies none either)")
    if tp > 1 and allreduce_from:
        profile["allreduce"] = measured_allreduce(Path(allreduce_from),
                                                  meta.get("vllm_version"), model, tp)
        notes.append("all-reduce: " + profile["allreduce"]["source"] + " (the bundle does "
                     "not measure communication)")
    elif tp > 1:
        if gpu is None or not gpu.interconnect_gbs:
            raise UserError(f"a TP{tp} profile needs the all-reduce bandwidth: pass --gpu with "
                            "an interconnect figure")
        nbytes = [2.0 ** e for e in range(10, 31)]
        profile["allreduce"] = allreduce_section(
            model, tp, nbytes, ring_allreduce_us(nbytes, tp, gpu.interconnect_gbs,
                                                 gpu.allreduce_latency_us),
            f"ring model: {gpu.interconnect_gbs:g} GB/s ({gpu.interconnect}), "
            f"{gpu.allreduce_latency_us:g} us latency; not measured")
        notes.append("all-reduce from a ring model over the GPU's interconnect (the bundle "
                     "does not measure communication)")
    eff = meta.get("engine_effective") or {}
    profile["profiled_limits"] = {"max_num_batched_tokens": eff.get("max_num_batched_tokens"),
                                  "max_num_seqs": eff.get("max_num_seqs")}
    profile["calibration"] = calibration(profile)
    return profile


__all__ = ["import_llmservingsim", "locate", "read_meta"]
