"""Achieved shares of the datasheet peak FLOP/s and bandwidth per GPU for the roofline, measured
on kernels (large bf16 GEMMs; skinny weight-streaming GEMMs), never fitted to end-to-end
latencies: backends/profiles/roofline_efficiency.json, written by
scripts/derive_roofline_efficiency.py (sources and licences there). A GPU without kernel
measurements keeps the datasheet figures (1.0) and the one-max roofline. Where the GPU's
kernels were measured by shape, `kernel_shape` gives the per-family curves
(backends/roofline_shape.py). `roofline_measurements` adds the measured all-reduce table at
TP > 1 (backends/allreduce_table.py)."""

from __future__ import annotations

import json
from functools import lru_cache

from seqsched.backends.allreduce_table import measured_allreduce
from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.roofline_shape import KernelShape, shape_from_entry
from seqsched.backends.specs import GPU_ALIASES

TABLE = BUILTIN_DIR / "roofline_efficiency.json"


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.is_file() else {}


def achieved_efficiency(gpu: str) -> tuple[float, float]:
    """(flops_efficiency, bandwidth_efficiency) of a built-in GPU; (1, 1) when unmeasured."""
    e = _table().get(GPU_ALIASES.get(gpu, gpu))
    if e is None:
        return 1.0, 1.0
    return float(e["flops_efficiency"]), float(e["bandwidth_efficiency"])


@lru_cache(maxsize=None)
def kernel_shape(gpu: str) -> KernelShape | None:
    """The shape-dependent efficiencies of a built-in GPU; None when not measured by shape."""
    e = _table().get(GPU_ALIASES.get(gpu, gpu))
    return None if e is None else shape_from_entry(e)


def roofline_measurements(gpu: str, tp: int = 1) -> dict:
    """RooflineCostModel keywords from kernel measurements: efficiencies (scalars, and the
    per-family shape where measured), and at TP > 1 the measured all-reduce (None: none at
    this GPU and TP, the ring model stays)."""
    fe, be = achieved_efficiency(gpu)
    return {"flops_efficiency": fe, "bandwidth_efficiency": be, "shape": kernel_shape(gpu),
            "allreduce_us": measured_allreduce(gpu, tp) if int(tp) > 1 else None}


__all__ = ["achieved_efficiency", "kernel_shape", "roofline_measurements"]
