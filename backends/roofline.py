"""Roofline cost model: per-iteration time = max(FLOPs / peak, bytes / bandwidth) plus a
framework overhead per iteration and per generated token (one per row and iteration).

FLOPs: 2 x (layer parameters) per processed token (the matmuls), 2 x vocab x d_model per row
for the logits of the last position, and 4 x layers x d_model per attended position per query
token (QK^T and AV; causal prefill attends to past + (n+1)/2 positions on average).
Bytes: the weights once per iteration (the embedding table is gathered, not streamed), the KV
cache each query row reads, and the KV entries written for new tokens. Hugging Face's eager
cache appends with `torch.cat`, which re-reads and re-writes the whole cache every iteration
(`kv_append_copy`: three passes over the cache instead of one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.backends.specs import GPUSpec, ModelSpec


@dataclass
class RooflineCostModel:
    gpu: GPUSpec
    model: ModelSpec
    flops_efficiency: float = 1.0        # achieved share of peak FLOP/s
    bandwidth_efficiency: float = 1.0    # achieved share of peak bandwidth
    iteration_overhead_s: float = 0.0    # framework time per forward pass (launches, Python)
    token_overhead_s: float = 0.0        # framework time per generated token (per row and
                                         # iteration: sampling, stop checks, bookkeeping)
    kv_append_copy: bool = False         # the KV cache is re-copied on every append (HF's
                                         # torch.cat cache): +1 read and +1 write of the cache
    name: str = "roofline"

    def __post_init__(self) -> None:
        m = self.model
        self._flops_per_token = 2.0 * m.n_layers * m.layer_params
        self._flops_logits = 2.0 * m.vocab_size * m.d_model
        self._flops_attn = 4.0 * m.n_layers * m.d_model
        # weights streamed per iteration: layers + final norm + LM head (not the embedding)
        self._weight_bytes = float((m.n_params - m.vocab_size * m.d_model) * m.dtype_bytes)
        self._kv = float(m.kv_bytes_per_token)
        self._flops_rate = self.gpu.peak_flops * self.flops_efficiency
        self._byte_rate = self.gpu.bandwidth * self.bandwidth_efficiency

    def _time(self, tokens, rows, attended, kv_read):
        flops = tokens * self._flops_per_token + rows * self._flops_logits + attended * self._flops_attn
        kv_passes = 3.0 if self.kv_append_copy else 1.0
        bytes_ = self._weight_bytes + (kv_read * kv_passes + tokens) * self._kv
        return (np.maximum(flops / self._flops_rate, bytes_ / self._byte_rate)
                + self.iteration_overhead_s + self.token_overhead_s * rows)

    def prefill_time(self, new_tokens, past_tokens, decode_rows: int = 0,
                     decode_context: int = 0) -> float:
        new = np.asarray(new_tokens, dtype=float)
        past = np.asarray(past_tokens, dtype=float)
        tokens = new.sum() + decode_rows
        rows = len(new) + decode_rows
        attended = float((new * (past + (new + 1.0) / 2.0)).sum()) + decode_context
        kv_read = float(past.sum()) + decode_context
        return float(self._time(tokens, rows, attended, kv_read))

    def decode_times(self, rows: int, context_sum: int, iterations: int) -> np.ndarray:
        ctx = context_sum + rows * np.arange(iterations, dtype=float)
        return self._time(float(rows), float(rows), ctx, ctx)
