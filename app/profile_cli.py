"""`seqsched profile import | list | show`: kernel profiles from public measurement formats.

    seqsched profile import llmservingsim PERF/RTXPRO6000/meta-llama/Llama-3.1-8B/bf16 \\
        --model llama-3.1-8b --gpu RTX-PRO-6000 --tp 1 --out rtxpro6000.json
    seqsched profile list
    seqsched profile show rtxpro6000-llama-3.1-8b-tp1
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from seqsched.common.errors import UserError

# format -> (module, function); each importer returns a kernel-profile dict
IMPORTERS = {
    "llmservingsim": ("seqsched.backends.import_llmservingsim", "import_llmservingsim"),
    "llmservingsim-v0": ("seqsched.backends.import_llmservingsim_v0",
                         "import_llmservingsim_v0"),
    "vidur": ("seqsched.backends.import_vidur", "import_vidur"),
    "aiconfigurator": ("seqsched.backends.import_aiconfigurator", "import_aiconfigurator"),
}


def install_backend_warnings() -> None:
    """`seqsched: warning: ...` lines for the cost models' one-time warnings."""
    from seqsched.app.trace_cli import install_warning_handler
    install_warning_handler("seqsched.backends")


def run_import(fmt: str, path: str, model: str, tp: int = 1, gpu: str | None = None,
               name: str | None = None, attention_from: str | None = None,
               allreduce_from: str | None = None, engine_version: str | None = None) -> dict:
    from seqsched.backends.spec_files import resolve_gpu, resolve_model
    if fmt not in IMPORTERS:
        raise UserError(f"unknown profile format {fmt!r}; choose one of {', '.join(IMPORTERS)}")
    if tp < 1:
        raise UserError(f"--tp must be >= 1, got {tp}")
    module, func = IMPORTERS[fmt]
    importer = getattr(importlib.import_module(module), func)
    extra = {"attention_from": attention_from} if attention_from else {}
    if extra and fmt not in ("vidur", "llmservingsim-v0"):
        raise UserError("--attention-from is for the vidur and llmservingsim-v0 formats "
                        "(their attention source)")
    if allreduce_from:
        if fmt not in ("llmservingsim", "llmservingsim-v0"):
            raise UserError("--allreduce-from is for the llmservingsim format (its bundles "
                            "measure no communication)")
        extra["allreduce_from"] = allreduce_from
    if engine_version:
        if fmt != "aiconfigurator":
            raise UserError("--engine-version is for the aiconfigurator format (its systems "
                            "folders hold several vLLM versions)")
        extra["version"] = engine_version
    return importer(path, resolve_model(model), tp, resolve_gpu(gpu) if gpu else None, name,
                    **extra)


def calibration_lines(profile: dict) -> list[str]:
    lines = [f"{'operator family':<16} {'points':>7} {'mean err':>9} {'p90 err':>8} "
             f"{'max err':>8}   (leave-one-out interpolation between measured points)"]
    for family, q in (profile.get("calibration") or {}).items():
        if not q.get("n"):
            lines.append(f"{family:<16} {0:>7}")
            continue
        lines.append(f"{family:<16} {q['n']:>7} {q['mean_rel_err']:>9.1%} "
                     f"{q['p90_rel_err']:>8.1%} {q['max_rel_err']:>8.1%}")
    return lines


def summary_lines(profile: dict) -> list[str]:
    prov = profile.get("provenance", {})
    out = [f"profile {profile.get('name')}: {profile.get('model')} on {profile.get('gpu')}, "
           f"TP{profile.get('tp')}, {profile.get('dtype')}",
           f"source: {prov.get('source')} ({prov.get('repo', '')}, {prov.get('licence', '')}), "
           f"engine {prov.get('engine')} {prov.get('engine_version')}"]
    out += [f"  note: {n}" for n in prov.get("notes", [])]
    return out + calibration_lines(profile)


def cmd_import(args) -> int:
    from seqsched.analysis.output import check_output_file
    check_output_file(args.out)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists; pass --overwrite or pick another --out")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder for --out")
    profile = run_import(args.format, args.path, args.model, args.tp, args.gpu, args.name,
                         args.attention_from, args.allreduce_from, args.engine_version)
    out.write_text(json.dumps(profile, separators=(",", ":")) + "\n", encoding="utf-8")
    print("\n".join(summary_lines(profile)))
    print(f"\nwrote {out} ({out.stat().st_size / 1e3:.0f} KB)")
    return 0


def cmd_list(args) -> int:
    from seqsched.backends.profile_registry import builtin_index
    index = builtin_index()
    print(f"{'name':<36} {'gpu':<14} {'model':<16} {'tp':>3} source")
    for name, e in sorted(index.items()):
        by_name = "" if e.get("auto", True) else " (--profile NAME only, never matched)"
        print(f"{name:<36} {e['gpu']:<14} {e['model']:<16} {e['tp']:>3} {e['source']}{by_name}")
    return 0


def cmd_show(args) -> int:
    from seqsched.backends.profile import read_profile, resolve_profile_path
    from seqsched.backends.kernel_profile import FORMAT
    path = resolve_profile_path(args.profile)
    if not path.is_file():
        raise UserError(f"profile {args.profile}: no such file or built-in profile; see "
                        "`seqsched profile list`")
    profile = read_profile(path)
    if profile.get("format") != FORMAT:
        raise UserError(f"{path}: not a kernel profile (format {profile.get('format')!r}); "
                        "calibration profiles hold their fit in 'prefill'/'decode'")
    print("\n".join(summary_lines(profile)))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    install_backend_warnings()
    p = subparsers.add_parser("profile", help="kernel profiles: import public measurements, "
                              "list the built-in ones, show one's provenance and fit error",
                              description="Kernel-profile cost models from measured kernels.")
    sub = p.add_subparsers(dest="profile_command", metavar="{import,list,show}")
    sub.required = True
    pi = sub.add_parser("import", help="convert LLMServingSim / Vidur / aiconfigurator "
                        "measurements into a seqsched kernel profile JSON")
    pi.add_argument("format", help=", ".join(IMPORTERS))
    pi.add_argument("path", help="the measurement folder (see README, 'Kernel profiles')")
    pi.add_argument("--model", required=True,
                    help="model the profile is for: built-in name or HF config.json")
    pi.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    pi.add_argument("--gpu", default=None,
                    help="GPU name or TOML (its interconnect models all-reduce where the data "
                         "has none)")
    pi.add_argument("--name", default=None, help="profile name (default from the data)")
    pi.add_argument("--attention-from", default=None, metavar="AICONF_DIR",
                    help="vidur: aiconfigurator folder of the same GPU for attention and LM "
                         "head; llmservingsim-v0: for decode attention where v0 has none "
                         "(default: the one beside vidur/ or the v0 tree, else a roofline)")
    pi.add_argument("--allreduce-from", default=None, metavar="AICONF_DIR",
                    help="llmservingsim(-v0): aiconfigurator systems folder of the same GPU whose "
                         "measured vLLM custom all-reduce (TP > 1) and NCCL all-gather / "
                         "reduce-scatter (MoE expert parallelism) replace the ring model")
    pi.add_argument("--engine-version", default=None, metavar="VERSION",
                    help="aiconfigurator: the vLLM version whose tables to read (default: the "
                         "newest the folder holds), e.g. 0.19.0")
    pi.add_argument("--out", required=True, help="profile JSON to write")
    pi.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    pi.set_defaults(func=cmd_import)
    pl = sub.add_parser("list", help="the built-in kernel profiles")
    pl.set_defaults(func=cmd_list)
    ps = sub.add_parser("show", help="a profile's provenance and calibration report")
    ps.add_argument("profile", help="built-in name or profile JSON")
    ps.set_defaults(func=cmd_show)
    return p


__all__ = ["register", "run_import", "IMPORTERS", "summary_lines"]
