"""Which cost-model profile a run uses: a path or built-in name given with `--profile`, or the
built-in kernel profile matching the run's `--gpu/--model/--tp` (backends/profiles/index.json,
written by scripts/derive_kernel_profiles.py), and the one-line mismatch warning when a
profile was measured on another GPU, model, dtype or TP degree than the run.
"""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path

from seqsched.backends.kernel_profile import FORMAT as KERNEL_FORMAT
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.logits_gather import (gather_bytes_per_row, measured_allgather,
                                             profile_gather)
from seqsched.backends.profile import (BUILTIN_DIR, profile_from_dict, read_profile,
                                       resolve_profile_path)
from seqsched.backends.specs import GPU_ALIASES, MODEL_ALIASES, ModelSpec
from seqsched.common.errors import UserError

INDEX = BUILTIN_DIR / "index.json"
logger = logging.getLogger("seqsched.backends")


def builtin_index() -> dict:
    """name -> {gpu, model, tp, dtype, source} of every built-in kernel profile."""
    if not INDEX.is_file():
        return {}
    return json.loads(INDEX.read_text(encoding="utf-8"))


def canonical(gpu: str, model: str) -> tuple[str, str]:
    return GPU_ALIASES.get(gpu, gpu), MODEL_ALIASES.get(model, model)


def match_builtin(gpu: str, model: str, tp: int = 1) -> str | None:
    """The built-in kernel profile measured on this GPU x model x TP, if one ships; a
    per-layer bundle (LLMServingSim, Vidur) before an aiconfigurator kernel-table profile of
    the same setup, which stays selectable by name (`--profile NAME-aic`); entries marked
    `"auto": false` (LLMServingSim's v0 tables: eager PyTorch kernels, not vLLM's) are used by
    name only."""
    gpu, model = canonical(gpu, model)
    hits = [(entry.get("source") == "aiconfigurator", name)
            for name, entry in builtin_index().items()
            if entry.get("auto", True)
            and (entry["gpu"], entry["model"], int(entry["tp"])) == (gpu, model, int(tp))]
    return min(hits)[1] if hits else None


def load_cost_profile(path_or_name: str, model: ModelSpec | None = None):
    """A `CostModel` from a profile JSON: a calibration profile (`seqsched calibrate`) or a
    kernel profile (`seqsched profile import`), by path or built-in name. With the run's
    `model`, a kernel profile at TP > 1 also prices the logits all-gather of its vocab, which
    no importer measures (backends/logits_gather.py): NCCL's measured all-gather on the
    profile's GPU, else the profile's all-reduce table at half the bytes."""
    p = resolve_profile_path(path_or_name)
    if not p.is_file():
        close = difflib.get_close_matches(str(path_or_name), sorted(builtin_index()), 3, 0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"profile {path_or_name}: no such file or built-in profile{hint}; "
                        "`seqsched profile list` names the built-in ones; run `seqsched "
                        "profile import` or `seqsched calibrate`, or drop --profile")
    data = read_profile(p)
    if isinstance(data, dict) and data.get("format") == KERNEL_FORMAT:
        cost = kernel_profile_from_dict(data, str(p))
        tp = int(data.get("tp") or 1)
        if model is not None and tp > 1 and cost.allreduce is not None:
            cost.logits_gather = profile_gather(cost.allreduce, gather_bytes_per_row(model, tp),
                                                tp, measured_allgather(str(data.get("gpu")), tp))
        return cost
    return profile_from_dict(data, str(p))


def check_match(cost, gpu: str, model: str, tp: int = 1, dtype: str | None = None) -> str | None:
    """One warning line when the profile's GPU/model/TP/dtype differ from the run's."""
    meta = getattr(cost, "meta", {}) or {}
    if meta.get("format") == KERNEL_FORMAT:
        # a profile imported from a folder named RTX4090 says so: compare built-in names
        their_gpu, their_model = canonical(meta.get("gpu"), meta.get("model"))
        theirs = {"GPU": their_gpu, "model": their_model, "TP": meta.get("tp"),
                  "dtype": meta.get("dtype")}
    elif meta.get("format") == "seqsched-profile":      # `seqsched calibrate`: a live fit
        theirs = calibrated_on(meta)                  # no TP or dtype to compare
    else:
        return None
    gpu, model = canonical(gpu, model)
    ours = {"GPU": gpu, "model": model, "TP": tp, "dtype": dtype}
    diff = [k for k in theirs if ours[k] is not None and theirs[k] is not None
            and str(theirs[k]) != str(ours[k])]
    if not diff:
        return None
    fitted = meta.get("format") == "seqsched-profile"
    line = (f"profile {meta.get('name')} was " + ("fitted" if fitted else "measured") + " on "
            + ", ".join("a CPU" if theirs[k] == "cpu" else f"{k} {theirs[k]}" for k in diff)
            + "; this run is " + ", ".join(f"{k} {ours[k]}" for k in diff)
            + (" (its fitted times are used as they are)" if fitted
               else " (its kernel times are used as they are)"))
    logger.warning(line)
    return line


def calibrated_on(meta: dict) -> dict:
    """The GPU and model a calibration profile was fitted on, as built-in names where they map
    (its `device.name` is the CUDA device name; a CPU fit says "cpu")."""
    from seqsched.backends.device_names import gpu_for_device
    device = meta.get("device") if isinstance(meta.get("device"), dict) else {}
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    gpu = "cpu" if device.get("type") == "cpu" else gpu_for_device(str(device.get("name", "")))
    return {"GPU": gpu, "model": canonical(None, model.get("name"))[1], "TP": None,
            "dtype": None}


def profile_path(name: str) -> Path:
    return resolve_profile_path(name)


__all__ = ["builtin_index", "match_builtin", "load_cost_profile", "check_match",
           "profile_path", "canonical"]
