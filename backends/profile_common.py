"""What every kernel-profile importer shares: the profile skeleton, compact numbers, the
calibration report (leave-one-out interpolation error per operator family), the per-layer
counts of a LLaMA-family block, CSV reading with one-line errors, and all-reduce tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.interp import error_summary, leave_one_out
from seqsched.backends.kernel_profile import FORMAT, VERSION
from seqsched.backends.specs import ModelSpec
from seqsched.common.errors import UserError

# How often each LLaMA-family op runs in one decoder layer (vLLM's LlamaDecoderLayer, as
# LLMServingSim's profiler/models/llama.yaml walks it): two RMSNorms, fused QKV, rotary,
# attention, O, fused gate/up, SiLU-and-mul, down.
PER_LAYER = {"layernorm": 2, "qkv_proj": 1, "qk_norm": 1, "rotary_emb": 1, "o_proj": 1,
             "gate_up_proj": 1, "act_fn": 1, "down_proj": 1}
PER_MODEL = {"embedding": 1, "final_layernorm": 1}
ALLREDUCES_PER_LAYER = 2          # after o_proj and after down_proj (row-parallel layers)


def sig(values, digits: int = 4) -> list:
    """Numbers rounded to `digits` significant digits: profiles stay a few hundred KB."""
    return [float(f"{float(v):.{digits}g}") for v in np.asarray(values, dtype=float).ravel()]


def skeleton(name: str, model: ModelSpec, gpu: str, tp: int, dtype: str,
             provenance: dict) -> dict:
    return {"format": FORMAT, "version": VERSION, "name": name, "gpu": gpu,
            "model": model.name, "tp": int(tp), "dtype": dtype,
            "shape": {"n_layers": model.n_layers, "d_model": model.d_model,
                      "n_heads": model.n_heads, "n_kv_heads": model.n_kv_heads,
                      "head_dim": model.head_dim},
            "provenance": provenance}


def dense_op(model: ModelSpec, name: str, tokens, us) -> dict | None:
    """A dense op with its per-iteration count, or None for an op this shape does not run."""
    if name in PER_LAYER:
        count = PER_LAYER[name] * model.n_layers
    elif name in PER_MODEL:
        count = PER_MODEL[name]
    else:
        return None
    return {"count": count, "tokens": sig(tokens, 6), "us": sig(us)}


def allreduce_section(model: ModelSpec, tp: int, nbytes, us, source: str) -> dict:
    return {"count": ALLREDUCES_PER_LAYER * model.n_layers,
            "bytes_per_token": model.d_model * model.dtype_bytes,
            "bytes": sig(nbytes, 8), "us": sig(us), "tp": int(tp), "source": source}


def ring_allreduce_us(nbytes, tp: int, link_gbs: float, latency_us: float) -> np.ndarray:
    """Ring all-reduce time over a link of `link_gbs` GB/s per direction: each GPU sends and
    receives 2 (n-1)/n of the message, plus a fixed launch/synchronisation latency."""
    nbytes = np.asarray(nbytes, dtype=float)
    return latency_us + 2.0 * (tp - 1) / tp * nbytes / (link_gbs * 1e9) * 1e6


def calibration(profile: dict) -> dict:
    """Leave-one-out error of linear interpolation per operator family: predict each interior
    measured point from its two neighbours (how far the grids can be trusted between points)."""
    out = {}
    dense = [leave_one_out(v["tokens"], v["us"]) for v in profile["dense"].values()
             if not v.get("modelled")]
    out["dense"] = error_summary(np.concatenate(dense) if dense else [])
    per = [leave_one_out(v["sequences"], v["us"]) for v in profile["per_sequence"].values()
           if not v.get("modelled")]
    out["per_sequence"] = error_summary(np.concatenate(per) if per else [])
    att = profile["attention"]
    if att["kind"] == "grid4":
        errs = [leave_one_out(r["kd"], r["us"]) for s in att["slices"] for r in s["rows"]]
    else:
        errs = [leave_one_out(att["decode"]["context"], row) for row in att["decode"]["us"]]
        errs += [leave_one_out(att["prefill"]["tokens"], col)
                 for col in np.asarray(att["prefill"]["us"]).T]
    out["attention"] = error_summary(np.concatenate(errs) if errs else [])
    if "moe" in profile:
        moe = [leave_one_out(r["tokens"], r["us"]) for r in profile["moe"]["rows"]]
        moe += [leave_one_out(r["tokens"], r["us"])
                for r in (profile["moe"].get("by_ep") or {}).values()]
        out["moe"] = error_summary(np.concatenate(moe) if moe else [])
    if "allreduce" in profile:
        out["allreduce"] = error_summary(leave_one_out(profile["allreduce"]["bytes"],
                                                       profile["allreduce"]["us"]))
    return out


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; point PATH at the profile folder") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it as CSV ({e})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; is this the "
                        "right format?")
    if df.empty:
        raise UserError(f"{path}: no rows")
    return df


def mean_by(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """One row per key (duplicate measurements averaged), sorted by the keys."""
    return df.groupby(keys, as_index=False)[value].mean().sort_values(keys)


__all__ = ["PER_LAYER", "PER_MODEL", "ALLREDUCES_PER_LAYER", "sig", "skeleton", "dense_op",
           "allreduce_section", "ring_allreduce_us", "calibration", "read_csv", "mean_by"]
