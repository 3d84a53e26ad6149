"""Measured all-reduce times per GPU and TP degree for the roofline: vLLM's custom all-reduce
(CUDA graph, bf16) from aiconfigurator's tables, in backends/profiles/roofline_allreduce.json,
written by scripts/derive_roofline_allreduce.py (source and licence there). A GPU or TP degree
without measurements gets None, and the roofline keeps its ring model over the datasheet link.

Interpolation is linear in log(bytes) -> log(us): the tables double the message size per row
and the time is a latency floor that turns into a bandwidth slope, which log-log follows piece
by piece. Below the smallest message: the smallest's time (the floor); above the largest: its
time scaled by bytes (bandwidth-bound)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.specs import GPU_ALIASES

TABLE = BUILTIN_DIR / "roofline_allreduce.json"


@lru_cache(maxsize=None)
def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def measured_collective(path: Path, gpu: str, tp: int
                        ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(bytes, us) of a collective table (`{gpu: {"tp": {"2": {"bytes", "us"}}}}`, this one or
    logits_gather's all-gather) for a built-in GPU at `tp` GPUs; None when unmeasured."""
    entry = _read(path).get(GPU_ALIASES.get(gpu, gpu), {}).get("tp", {}).get(str(int(tp)))
    if entry is None:
        return None
    return tuple(float(b) for b in entry["bytes"]), tuple(float(u) for u in entry["us"])


def measured_allreduce(gpu: str, tp: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(message bytes, us) measured for a built-in GPU at `tp` GPUs; None when unmeasured."""
    return measured_collective(TABLE, gpu, tp)


def allreduce_seconds(nbytes, table: tuple) -> np.ndarray:
    """Seconds of one all-reduce of `nbytes` (array-like) from a (bytes, us) table."""
    xs, us = np.log(np.asarray(table[0], float)), np.log(np.asarray(table[1], float))
    b = np.maximum(np.asarray(nbytes, dtype=float), float(table[0][0]))
    t = np.exp(np.interp(np.log(b), xs, us))
    over = b > table[0][-1]
    t = np.where(over, table[1][-1] * b / table[0][-1], t)
    return t * 1e-6


__all__ = ["measured_allreduce", "allreduce_seconds", "TABLE"]
