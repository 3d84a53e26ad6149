"""Attention and LM-head tables from a roofline, for kernel profiles whose source measured
neither (Vidur without aiconfigurator data of its GPU): max(FLOPs / peak, bytes / bandwidth)
per kernel at the datasheet figures plus a 5 us launch. The provenance of a profile built with
these says they are not measured.
"""

from __future__ import annotations

import numpy as np

from seqsched.backends.import_aiconfigurator import CACHED, TOKENS
from seqsched.backends.profile_common import sig
from seqsched.backends.specs import GPUSpec, ModelSpec, kv_bytes_per_gpu

LAUNCH_US = 5.0
ROWS = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=float)
CONTEXTS = np.array([1, 64, 256, 1024, 4096, 16384, 65536], dtype=float)


def _us(flops, nbytes, gpu: GPUSpec):
    return LAUNCH_US + np.maximum(flops / gpu.peak_flops, nbytes / gpu.bandwidth) * 1e6


def roofline_attention(model: ModelSpec, tp: int, gpu: GPUSpec) -> dict:
    """Split-kind attention per layer: prefill by (chunk, cached), decode by (rows, context)."""
    per_layer_kv = kv_bytes_per_gpu(model, tp) / model.n_layers      # bytes per token
    width = model.q_dim / tp
    q, p = TOKENS[TOKENS <= 8192][:, None], CACHED[None, :]
    flops = 4.0 * width * q * (p + (q + 1) / 2)
    prefill = _us(flops, (p + q) * per_layer_kv + 2 * q * width * model.dtype_bytes, gpu)
    r, c = ROWS[:, None], CONTEXTS[None, :]
    decode = _us(4.0 * width * r * c, r * c * per_layer_kv, gpu)
    return {"kind": "split", "count": model.n_layers,
            "prefill": {"tokens": sig(q.ravel(), 6), "cached": sig(CACHED, 6),
                        "us": [sig(x) for x in prefill]},
            "decode": {"rows": sig(ROWS, 6), "context": sig(CONTEXTS, 8),
                       "us": [sig(x) for x in decode]}}


def roofline_lm_head(model: ModelSpec, tp: int, gpu: GPUSpec, seqs) -> dict:
    seqs = np.asarray(seqs, dtype=float)
    n = model.vocab_size / tp
    us = _us(2.0 * seqs * n * model.d_model, n * model.d_model * model.dtype_bytes, gpu)
    return {"count": 1, "sequences": sig(seqs, 6), "us": sig(us)}


__all__ = ["roofline_attention", "roofline_lm_head"]
