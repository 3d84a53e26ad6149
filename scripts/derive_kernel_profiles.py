"""Derive the built-in kernel profiles (backends/profiles/*.json + index.json) from the public
measurements in ../shared/data/serving/profiles/ (README there):

- casys-kaist/LLMServingSim @ 5daddb2 (MIT), `profiler/perf/`: per-layer vLLM 0.19.0 kernel
  times, RTX 4090 (TP1) and RTX PRO 6000 Blackwell (TP1, TP2) x Llama-3.1-8B bf16; and, from a
  checkout of that repository at the same commit (`--llmservingsim-repo PATH`, e.g. `git
  archive 5daddb2 profiler/perf | tar -x -C PATH`), RTX PRO 6000 x Qwen3-32B and
  Qwen3-30B-A3B-Instruct-2507 (MoE: `moe.csv`) bf16, TP1 and TP2;
- the same repository's older v0 per-layer tables (`profiler/v0/perf_models/H100/`: eager
  Hugging Face transformers fp16 kernels and FlashAttention-2, not vLLM's), H100 x
  Llama-3.1-8B TP1/TP2 and Llama-3.1-70B TP4 (backends/import_llmservingsim_v0.py), usable by
  name only (`"auto": false` in the index: never the default match of a --gpu/--model/--tp);
- microsoft/vidur @ 7d47513 (MIT), `data/profiling/`: per-operator MLP/projection times and
  all-reduce, A100-80GB and H100 x Llama-2-7B/70B, Llama-3-8B/70B, TP 1/2/4/8 (no attention:
  filled from aiconfigurator of the same GPU, see backends/import_vidur.py);
- ai-dynamo/aiconfigurator @ 095f58a (Apache-2.0): vLLM GEMM, context/generation attention and
  custom all-reduce latencies, H100-SXM (vLLM 0.19.0) and A100-SXM (vLLM 0.14.0); and, from a
  checkout at the same commit (`--aiconfigurator-repo PATH`), vLLM 0.19.0's custom all-reduce
  measured on the RTX PRO 6000 Blackwell Server Edition (`aic-core/src/aiconfigurator_core/
  systems/data/rtx_pro_6000_server/comm/vllm/0.19.0/`), the all-reduce of the RTX PRO 6000
  LLMServingSim TP2 profiles (their bundles measure none; without it, a ring model over PCIe),
  and NCCL 2.29.2's all_gather / reduce_scatter on the same GPU (`comm/nccl/2.29.2/`), the
  expert-parallel dispatch / combine of the MoE profiles; and from the same checkout the RTX
  PRO 6000's vLLM 0.19.0 GEMM / attention / all-reduce / MoE tables (`.../rtx_pro_6000_server/
  {gemm,attention,comm,moe}/vllm/0.19.0/`), the `rtxpro6000-*-aic` profiles (selectable by name
  only).

Only compact derived tables are committed; the raw files stay where they are.

    .venv/bin/python scripts/derive_kernel_profiles.py [--data ../shared/data/serving/profiles]
        [--llmservingsim-repo PATH] [--aiconfigurator-repo PATH]

(a partial checkout is enough: `git archive 5daddb2 profiler/perf | tar -x -C LSS` and `git
archive 095f58a aic-core/src/aiconfigurator_core/systems/data/rtx_pro_6000_server | tar -x -C
AIC`.)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from seqsched.app.profile_cli import run_import
from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.specs import get_model

LSS = "llmservingsim/perf/{hw}/meta-llama/Llama-3.1-8B/bf16"
# (name, format, path under the data folder, model, gpu, tp)
PROFILES = [
    ("rtx4090-llama-3.1-8b-tp1", "llmservingsim", LSS.format(hw="RTX4090"), "llama-3.1-8b",
     "RTX-4090", 1),
    ("rtxpro6000-llama-3.1-8b-tp1", "llmservingsim", LSS.format(hw="RTXPRO6000"),
     "llama-3.1-8b", "RTX-PRO-6000", 1),
    ("rtxpro6000-llama-3.1-8b-tp2", "llmservingsim", LSS.format(hw="RTXPRO6000"),
     "llama-3.1-8b", "RTX-PRO-6000", 2),
]
V0 = "llmservingsim/v0/perf_models/H100/meta-llama/{}"
V0_PROFILES = [(f"h100-{model}-tp{tp}-v0", "llmservingsim-v0", V0.format(folder), model,
                "H100-SXM", tp) for model, folder, tp in (("llama-3.1-8b", "Llama-3.1-8B", 1),
                                                          ("llama-3.1-8b", "Llama-3.1-8B", 2),
                                                          ("llama-3.1-70b", "Llama-3.1-70B", 4))]
# (name, path under the LLMServingSim checkout, model, gpu, tp)
QWEN = "profiler/perf/RTXPRO6000/Qwen/{}/bf16"
REPO_PROFILES = [
    (f"rtxpro6000-{model}-tp{tp}", QWEN.format(folder), model, "RTX-PRO-6000", tp)
    for model, folder in (("qwen3-32b", "Qwen3-32B"),
                          ("qwen3-30b-a3b", "Qwen3-30B-A3B-Instruct-2507"))
    for tp in (1, 2)]
# the aiconfigurator systems folder of a GPU (its measured vLLM all-reduce), in its checkout
AIC_SYSTEMS = {"RTX-PRO-6000": "aic-core/src/aiconfigurator_core/systems/data/rtx_pro_6000_server"}
VIDUR = {"a100": ("A100-80GB", {"llama-2-7b": "meta-llama/Llama-2-7b-hf",
                                "llama-2-70b": "meta-llama/Llama-2-70b-hf",
                                "llama-3-8b": "meta-llama/Meta-Llama-3-8B",
                                "llama-3-70b": "meta-llama/Meta-Llama-3-70B"}),
         "h100": ("H100-SXM", {"llama-2-7b": "meta-llama/Llama-2-7b-hf",
                               "llama-2-70b": "meta-llama/Llama-2-70b-hf"})}
# TP degrees per model size: what fits one GPU's 80 GB up to what the tables cover (8)
VIDUR_TP = {"7b": (1, 2, 4), "8b": (1, 2, 4), "70b": (2, 4, 8)}
# aiconfigurator systems measured with the vLLM version of the shared runs, read from its
# checkout (--aiconfigurator-repo): system -> (name prefix, gpu, vLLM version, model -> TPs)
AICONF_REPO = {"rtx_pro_6000_server": ("rtxpro6000", "RTX-PRO-6000", "0.19.0",
                                       {"llama-3.1-8b": (1, 2), "qwen3-32b": (1, 2),
                                        "qwen3-30b-a3b": (1,)})}
AICONF = {"h100_sxm": ("H100-SXM", ["llama-3.1-8b", "llama-3.1-70b", "llama-3.3-70b",
                                    "llama-3-8b", "llama-3-70b", "llama-2-7b", "llama-2-70b"]),
          "a100_sxm": ("A100-80GB", ["llama-3.1-8b", "llama-3.1-70b"])}


def vidur_profiles() -> list[tuple]:
    out = []
    for dev, (gpu, models) in VIDUR.items():
        for model, folder in models.items():
            for tp in VIDUR_TP[model.rsplit("-", 1)[-1]]:
                out.append((f"{dev}-{model}-tp{tp}", "vidur", f"vidur/compute/{dev}/{folder}",
                            model, gpu, tp))
    return out


def aiconf_profiles() -> list[tuple]:
    out = []
    for dev, (gpu, models) in AICONF.items():
        for model in models:
            for tp in ((1, 2) if model.endswith("8b") or model.endswith("7b") else (4, 8)):
                out.append((f"{dev.split('_')[0]}-{model}-tp{tp}-aic", "aiconfigurator",
                            f"aiconfigurator/{dev}", model, gpu, tp))
    return out


def aiconf_repo_profiles(aic: Path | None) -> list[tuple]:
    """(name, format, rel, model, gpu, tp, root, version) of the profiles read from the
    aiconfigurator checkout at the vLLM version pinned in AICONF_REPO."""
    out = []
    for system, (prefix, gpu, version, models) in AICONF_REPO.items():
        for model, tps in models.items():
            for tp in tps:
                out.append((f"{prefix}-{model}-tp{tp}-aic", "aiconfigurator",
                            f"{AIC_SYSTEMS[gpu]}", model, gpu, tp, aic, version))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get(
        "SEQSCHED_SERVING_PROFILES", "../shared/data/serving/profiles"))
    ap.add_argument("--llmservingsim-repo", default=None,
                    help="a checkout of casys-kaist/LLMServingSim @ 5daddb2 (its profiler/perf/)")
    ap.add_argument("--only", default=None, help="format to regenerate (default all)")
    ap.add_argument("--aiconfigurator-repo", default=None,
                    help="a checkout of ai-dynamo/aiconfigurator @ 095f58a (measured all-reduce)")
    args = ap.parse_args()
    data = Path(args.data)
    repo = Path(args.llmservingsim_repo) if args.llmservingsim_repo else None
    aic = Path(args.aiconfigurator_repo) if args.aiconfigurator_repo else None
    index_path = BUILTIN_DIR / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    specs = [(*s, data, None)
             for s in PROFILES + V0_PROFILES + vidur_profiles() + aiconf_profiles()]
    specs += [(name, "llmservingsim", rel, model, gpu, tp, repo, None)
              for name, rel, model, gpu, tp in REPO_PROFILES]
    specs += aiconf_repo_profiles(aic)
    for name, fmt, rel, model, gpu, tp, root, version in specs:
        if args.only and fmt != args.only:
            continue
        if root is None or not (root / rel).exists():
            print(f"skip {name}: {rel} missing (" + (
                f"--{'aiconfigurator' if version else 'llmservingsim'}-repo not given)"
                if root is None else f"under {root})"))
            continue
        allreduce = None
        moe = bool(get_model(model).n_experts)
        if fmt == "llmservingsim" and (tp > 1 or moe) and gpu in AIC_SYSTEMS:
            if aic is None:
                print(f"skip {name}: its measured all-reduce needs --aiconfigurator-repo")
                continue
            allreduce = str(aic / AIC_SYSTEMS[gpu])
        profile = run_import(fmt, str(root / rel), model, tp, gpu, name,
                             allreduce_from=allreduce, engine_version=version)
        profile["provenance"]["path"] = rel          # relative: no machine paths committed
        path = BUILTIN_DIR / f"{name}.json"
        path.write_text(json.dumps(profile, separators=(",", ":")) + "\n", encoding="utf-8")
        index[name] = {"gpu": profile["gpu"], "model": profile["model"], "tp": tp,
                       "dtype": profile["dtype"], "source": fmt}
        if fmt == "llmservingsim-v0" or version:   # v0 tables; the RTX PRO 6000 aic ones,
            index[name]["auto"] = False            # kept to judge aiconfigurator's path
        cal = profile["calibration"]
        print(f"{name:<36} {path.stat().st_size / 1e3:6.0f} KB  " + "  ".join(
            f"{k} {v.get('mean_rel_err', 0):.1%}" for k, v in cal.items()))
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n",
                          encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
