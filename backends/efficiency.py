"""Achieved shares of the datasheet peak FLOP/s and bandwidth per GPU for the roofline, measured
on kernels (large bf16 GEMMs; skinny weight-streaming GEMMs), never fitted to end-to-end
latencies: backends/profiles/roofline_efficiency.json, written by
scripts/derive_roofline_efficiency.py (sources and licences there). A built-in GPU without
kernel measurements of its own borrows those of a measured GPU of the same chip or architecture
(`SIBLINGS`: the efficiencies are shares of each GPU's own datasheet peaks, and the same vLLM
kernels run on both); one with neither (a GPU TOML) keeps the datasheet figures (1.0) and the
one-max roofline. The RTX A6000 and RTX 3090 have GEMMs of their own (LLMServingSim's v0
tables) but no vLLM attention kernels: their entries name where those come from
(`attention_from`). benchmarks/efficiency_transfer.py measures what borrowing costs on the
recorded runs. Where the GPU's
kernels were measured by shape, `kernel_shape` gives the per-family curves
(backends/roofline_shape.py). `roofline_measurements` adds the measured all-reduce table at
TP > 1 (backends/allreduce_table.py)."""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache

from seqsched.backends.allreduce_table import measured_allreduce
from seqsched.backends.logits_gather import measured_allgather
from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.roofline_shape import KernelShape, shape_from_entry
from seqsched.backends.specs import GPU_ALIASES

TABLE = BUILTIN_DIR / "roofline_efficiency.json"
# GPU -> (measured GPU whose kernel efficiencies it borrows, why they carry over). Same chip:
# H100 PCIe / SXM (GH100, sm90), A100 40 / 80 GB (GA100, sm80). Same architecture: the Ada
# cards (sm89: AD102 in the RTX 4090 and L40S, AD104 in the L4). (The Ampere GA102 cards, RTX
# 3090 and RTX A6000, have entries of their own that take only attention from the A100.)
SIBLINGS = {"H100-PCIe": ("H100-SXM", "same GH100 chip"),
            "A100-40GB": ("A100-80GB", "same GA100 chip"),
            "L4": ("RTX-4090", "same Ada architecture, sm89"),
            "L40S": ("RTX-4090", "same Ada AD102 chip, sm89")}


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.is_file() else {}


def _entry(gpu: str) -> tuple[dict | None, str]:
    """A GPU's efficiency entry and, when borrowed from a sibling, a note saying from which."""
    name = GPU_ALIASES.get(gpu, gpu)
    table = _table()
    if name in table:
        part = table[name].get("attention_from")
        return table[name], (f"attention kernels measured on {part}; GEMMs its own"
                             if part else "")
    if name in SIBLINGS and SIBLINGS[name][0] in table:
        other, why = SIBLINGS[name]
        return table[other], f"measured on {other} ({why}; none of {name}'s own)"
    return None, ""


def borrowed_from(gpu: str) -> str:
    """'' for a GPU with kernel measurements of its own (or none at all), else where they
    (or some of them) come from, for the run's description."""
    return _entry(gpu)[1]


def achieved_efficiency(gpu: str) -> tuple[float, float]:
    """(flops_efficiency, bandwidth_efficiency) of a built-in GPU (or its sibling's); (1, 1)
    when neither was measured."""
    e = _entry(gpu)[0]
    if e is None:
        return 1.0, 1.0
    return float(e["flops_efficiency"]), float(e["bandwidth_efficiency"])


@lru_cache(maxsize=None)
def kernel_shape(gpu: str) -> KernelShape | None:
    """The shape-dependent efficiencies of a built-in GPU (or its sibling's); None when not
    measured by shape."""
    e, note = _entry(gpu)
    shape = None if e is None else shape_from_entry(e)
    if shape is not None and note:
        shape = dataclasses.replace(shape, source=f"{note}: {shape.source}")
    return shape


def roofline_measurements(gpu: str, tp: int = 1) -> dict:
    """RooflineCostModel keywords from kernel measurements: efficiencies (scalars, and the
    per-family shape where measured), and at TP > 1 the measured all-reduce and NCCL
    all-gather (None: none at this GPU and TP, the ring model stays)."""
    fe, be = achieved_efficiency(gpu)
    return {"flops_efficiency": fe, "bandwidth_efficiency": be, "shape": kernel_shape(gpu),
            "allreduce_us": measured_allreduce(gpu, tp) if int(tp) > 1 else None,
            "allgather_us": measured_allgather(gpu, tp) if int(tp) > 1 else None}


__all__ = ["SIBLINGS", "achieved_efficiency", "borrowed_from", "kernel_shape",
           "roofline_measurements"]
