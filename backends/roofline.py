"""Roofline cost model: per-iteration time = max(FLOPs / peak, bytes / bandwidth) plus a
framework overhead per iteration and per generated token (one per row and iteration).

FLOPs: 2 x (layer parameters) per processed token (the matmuls), 2 x vocab x d_model per row
for the logits of the last position, and 4 x layers x d_model per attended position per query
token (QK^T and AV; causal prefill attends to past + (n+1)/2 positions on average).
Bytes: the weights once per iteration (the embedding table is gathered, not streamed), the KV
cache each query row reads, and the KV entries written for new tokens. Hugging Face's eager
cache appends with `torch.cat`, which re-reads and re-writes the whole cache every iteration
(`kv_append_copy`: three passes over the cache instead of one).

Tensor parallelism (`tp` GPUs): each GPU computes 1/tp of the FLOPs and streams 1/tp of the
weights and of the KV heads (a KV head is never split: fewer KV heads than GPUs are
replicated), and every layer adds two all-reduces of tokens x d_model activations (after the
attention output and the MLP down projection, Megatron-style) over the GPU's interconnect:
a ring all-reduce moves 2 (tp-1)/tp of the message per GPU, plus a fixed latency. Where a
measured all-reduce table exists for the GPU and TP degree (`allreduce_us`: message bytes and
us of vLLM's custom all-reduce, backends/allreduce_table.py; app/run.py passes it outside
presets), each all-reduce is interpolated from it instead (log-log in bytes); a GPU without
measurements, or a TP degree outside its table, keeps the ring model. At TP > 1 each step
also all-gathers the vocab-sharded logits of its rows (backends/logits_gather.py, vLLM's
LogitsProcessor): NCCL's measured all-gather where `allgather_us` is given, else the
all-reduce table at half the bytes, else a ring all-gather.
MoE (Mixtral): FLOPs count the `experts_per_token` active experts; the bytes count the
experts an iteration touches, E (1 - (1 - k/E)^tokens) in expectation under uniform routing.

With a `shape` (backends/roofline_shape.py: kernel-measured efficiencies of the GPU; app/run.py
passes one where the GPU was measured) the iteration is a sum of kernel families instead of one
max over the whole step, each at its own measured efficiency (it replaces the two scalars): the
layers' GEMMs max(tokens x FLOPs / peak, weight + activation bytes / bandwidth) / eff(tokens);
the LM head the same over the rows; attention one floor per layer plus the attended positions'
FLOPs at the prefill-attention share plus the KV bytes at the decode-attention share;
elementwise kernels a floor each plus their bytes. Kernels do not overlap (a mixed prefill and
decode batch pays its GEMMs and its KV reads); the all-reduce and overheads add as before. In a
batch that prefills, each decode row also pays the query tiles vLLM's FlashAttention adds when
the batch is not decode-only (backends/fa_tiles.py: FA2 added, FA3 only beyond the rows' own
attention time), at the prefill-attention share of the peak, per attended position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.backends.allreduce_table import allreduce_seconds
from seqsched.backends.fa_tiles import compose, tiling_for
from seqsched.backends.logits_gather import gather_bytes_per_row, gather_seconds
from seqsched.backends.roofline_shape import (ELEMENTWISE_OUTSIDE, ELEMENTWISE_PER_LAYER,
                                              KernelShape)
from seqsched.backends.specs import GPUSpec, ModelSpec, kv_bytes_per_gpu


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
    tp: int = 1                          # tensor-parallel GPUs (weights, KV, FLOPs split)
    allreduce_us: tuple | None = None    # measured (message bytes, us) at this TP; None: ring
    shape: KernelShape | None = None     # per-kernel-family efficiencies (replace the scalars)
    allgather_us: tuple | None = None    # measured NCCL all-gather (gathered bytes, us) at TP

    def __post_init__(self) -> None:
        m, tp = self.model, max(int(self.tp), 1)
        self._flops_per_token = 2.0 * m.n_layers * m.active_layer_params / tp
        self._flops_logits = 2.0 * m.vocab_size * m.d_model / tp
        self._flops_attn = 4.0 * m.n_layers * m.q_dim / tp
        # weights streamed per iteration: layers + final norm + LM head (not the embedding);
        # MoE experts are counted apart, by how many an iteration touches
        self._weight_bytes = float((m.n_params - m.vocab_size * m.d_model - m.all_expert_params)
                                   * m.dtype_bytes) / tp
        self._expert_bytes = float(m.n_layers * m.expert_params * m.dtype_bytes) / tp
        self._kv = float(kv_bytes_per_gpu(m, tp))
        self._flops_rate = self.gpu.peak_flops * self.flops_efficiency
        self._byte_rate = self.gpu.bandwidth * self.bandwidth_efficiency
        self._allreduce_bytes = float(m.d_model * m.dtype_bytes)     # per token
        self._gather_row = gather_bytes_per_row(m, tp)                # logits, per row
        if tp > 1 and not self.gpu.interconnect_gbs:
            from seqsched.common.errors import UserError
            raise UserError(f"GPU {self.gpu.name} has no interconnect bandwidth for --tp "
                            f"{tp}; give one in its TOML (interconnect_gbs)")
        if self.shape is not None:
            self._shape_constants(m, tp)

    def _shape_constants(self, m, tp: int) -> None:
        sh, peak, bw = self.shape, self.gpu.peak_flops, self.gpu.bandwidth
        ff = m.d_ff * max(m.experts_per_token, 1)            # active MLP width per token
        self._lm_bytes = float(m.vocab_size * m.d_model * m.dtype_bytes) / tp
        self._expert_flops = 2.0 * m.n_layers * m.experts_per_token * m.expert_params / tp
        self._dense_flops = self._flops_per_token - self._expert_flops
        self._lm_in_weights = 0.0 if m.tied_embeddings else self._lm_bytes
        # GEMM activations read and written per token: sum of (n + k) over QKV, O, gate_up, down
        self._act_bytes = float(m.n_layers * (4 * m.d_model + (2 * m.q_dim + 2 * m.kv_dim
                                                               + 3 * ff) / tp) * m.dtype_bytes)
        # elementwise bytes per token: two fused add+RMSNorms (read x and residual, write
        # both), rotary (q and k in place), SiLU-and-mul (read 2 ff, write ff); Qwen3's q/k
        # RMSNorm one more kernel reading and writing q and k
        qk = 2 if m.qk_norm else 1
        self._elem_s = float(m.n_layers * (8 * m.d_model + (2 * qk * (m.q_dim + m.kv_dim)
                                                            + 3 * ff) / tp)
                             * m.dtype_bytes) / (bw * sh.elementwise_bandwidth)
        self._fixed_s = ((m.n_layers * (ELEMENTWISE_PER_LAYER + (qk - 1)) + ELEMENTWISE_OUTSIDE)
                         * sh.kernel_floor_us + m.n_layers * sh.attention_floor_us) * 1e-6
        self._fa_s = self._flops_attn / (peak * sh.prefill_attention_efficiency)
        tiling = tiling_for(self.gpu.name, m.n_heads // tp, m.n_kv_heads // tp, m.head_dim)
        rows = 0 if tiling is None else tiling.decode_rows(True) - (
            tiling.decode_rows(False) if compose(tiling) == "add" else 0)
        self._mixed_s = 4.0 * m.n_layers * rows * m.head_dim / (
            peak * sh.prefill_attention_efficiency)     # per decode row's attended position
        self._mixed_max = tiling is not None and compose(tiling) == "max"
        self._kv_s = self._kv / (bw * sh.decode_attention_bandwidth)
        self._peak, self._bw, self._ar_tp = peak, bw, tp > 1
        self._base_cache: dict = {}
        self._head_cache: dict = {}
        self._gemm_floor = np.maximum.accumulate([self._gemm_raw(x) for x in sh.gemm_m]).tolist()
        self._head_floor = np.maximum.accumulate([self._head_raw(x) for x in sh.gemm_m]).tolist()

    def _gemm_raw(self, tokens: float, eff: float | None = None) -> float:
        """The layers' GEMMs at their measured efficiency for `tokens`; an MoE layer's experts
        each run a small GEMM over their share of the tokens, tokens x k / (experts touched)."""
        if eff is None:
            eff = self.shape.gemm(tokens)
        wb = self._weight_bytes - self._lm_in_weights + tokens * self._act_bytes
        a, b = tokens * self._dense_flops / self._peak, wb / self._bw
        t = (a if a >= b else b) / eff
        m = self.model
        if m.n_experts:
            k, e = m.experts_per_token, m.n_experts
            touched = e * (1.0 - (1.0 - k / e) ** tokens)
            a, b = tokens * self._expert_flops / self._peak, self._expert_bytes * touched / self._bw
            t += (a if a >= b else b) / self.shape.gemm(tokens * k / touched if touched > 0
                                                        else 0.0)
        return t

    def _head_raw(self, rows: float, eff: float | None = None) -> float:
        a, b = rows * self._flops_logits / self._peak, self._lm_bytes / self._bw
        return (a if a >= b else b) / (self.shape.gemm(rows) if eff is None else eff)

    def _base(self, tokens: float, rows: float) -> float:
        """Shape mode: the step's time apart from attention's per-position terms and the
        overheads - GEMMs by tokens, LM head by rows, elementwise, fixed floors, all-reduce.
        A GEMM over more tokens never costs less than one over fewer (where the measured
        efficiency rises faster than the bound, as past the ridge, the time holds at the
        largest grid point's below it: the kernel would run padded). Cached: a pure function
        of (tokens, rows), and decode steps repeat their row counts."""
        key = (tokens, rows)
        hit = self._base_cache.get(key)
        if hit is not None:
            return hit
        eff, i = self.shape.at(tokens)
        gemm = self._gemm_raw(tokens, eff)
        if i and self._gemm_floor[i - 1] > gemm:
            gemm = self._gemm_floor[i - 1]
        head = self._head_cache.get(rows)
        if head is None:
            eff, j = self.shape.at(rows)
            head = self._head_raw(rows, eff)
            if j and self._head_floor[j - 1] > head:
                head = self._head_floor[j - 1]
            if self._gather_row:
                head += float(self._logits_gather(rows))
            self._head_cache[rows] = head
        t = gemm + head + tokens * self._elem_s + self._fixed_s
        if self._ar_tp:
            t += float(self._allreduce(tokens))
        if len(self._base_cache) < 1 << 16:
            self._base_cache[key] = t
        return t

    def _time_shape(self, tokens, rows, attended, kv_read):
        passes = 3.0 if self.kv_append_copy else 1.0
        return (self._base(float(tokens), float(rows)) + attended * self._fa_s
                + (kv_read * passes + tokens) * self._kv_s
                + self.iteration_overhead_s + self.token_overhead_s * rows)

    def _weights(self, tokens):
        m = self.model
        if not m.n_experts:
            return self._weight_bytes
        k, e = m.experts_per_token, m.n_experts
        touched = e * (1.0 - (1.0 - k / e) ** np.asarray(tokens, dtype=float))
        return self._weight_bytes + self._expert_bytes * touched

    def _allreduce(self, tokens):
        tp = max(int(self.tp), 1)
        if tp == 1:
            return 0.0
        if self.allreduce_us is not None:
            nbytes = np.asarray(tokens, float) * self._allreduce_bytes
            return 2 * self.model.n_layers * allreduce_seconds(nbytes, self.allreduce_us)
        per = (2.0 * (tp - 1) / tp * tokens * self._allreduce_bytes
               / (self.gpu.interconnect_gbs * 1e9) + self.gpu.allreduce_latency_us * 1e-6)
        return 2 * self.model.n_layers * per

    def _logits_gather(self, rows):
        """The TP logits all-gather of `rows` rows (backends/logits_gather.py)."""
        return gather_seconds(rows, self._gather_row, self.tp, self.allgather_us,
                              self.allreduce_us, self.gpu.interconnect_gbs,
                              self.gpu.allreduce_latency_us)

    def _time(self, tokens, rows, attended, kv_read):
        if self.shape is not None:
            return self._time_shape(tokens, rows, attended, kv_read)
        flops = tokens * self._flops_per_token + rows * self._flops_logits + attended * self._flops_attn
        kv_passes = 3.0 if self.kv_append_copy else 1.0
        bytes_ = self._weights(tokens) + (kv_read * kv_passes + tokens) * self._kv
        return (np.maximum(flops / self._flops_rate, bytes_ / self._byte_rate)
                + self._allreduce(tokens)
                + (self._logits_gather(rows) if self._gather_row else 0.0)
                + self.iteration_overhead_s + self.token_overhead_s * rows)

    def prefill_time(self, new_tokens, past_tokens, decode_rows: int = 0,
                     decode_context: int = 0) -> float:
        new = np.asarray(new_tokens, dtype=float)
        past = np.asarray(past_tokens, dtype=float)
        tokens = new.sum() + decode_rows
        rows = len(new) + decode_rows
        attended = float((new * (past + (new + 1.0) / 2.0)).sum()) + decode_context
        kv_read = float(past.sum()) + decode_context
        t = float(self._time(tokens, rows, attended, kv_read))
        return t + self.mixed_extra(decode_rows, decode_context) if new.size else t

    def mixed_extra(self, decode_rows: int, decode_context: int) -> float:
        """Shape mode: seconds the decode rows of a batch that also prefills add for the query
        tiles FlashAttention gives them there (module docstring); 0 otherwise."""
        if self.shape is None or not decode_rows or not self._mixed_s:
            return 0.0
        ctx = float(decode_context)
        tiles = ctx * self._mixed_s
        if self._mixed_max:             # beyond what the rows' attention already costs
            tiles = max(tiles - ctx * (self._fa_s + self._kv_s), 0.0)
        return tiles

    def padded_extra(self, tokens: int, padded: int) -> float:
        """Seconds an iteration of `tokens` tokens adds when its token-linear kernels run over
        `padded` tokens (vLLM's CUDA-graph padding, backends/cuda_graphs.py): the GEMMs,
        elementwise kernels and all-reduce (shape mode: `_base` at a fixed row count); without
        a shape, the layers' own roofline max(FLOPs, weight bytes) and the all-reduce. The KV
        write is not padded (padded slots write nothing)."""
        if self.shape is not None:
            return self._base(float(padded), 1.0) - self._base(float(tokens), 1.0)

        def dense(n: float) -> float:
            return float(max(n * self._flops_per_token / self._flops_rate,
                             float(self._weights(n)) / self._byte_rate) + self._allreduce(n))
        return dense(float(padded)) - dense(float(tokens))

    def decode_times(self, rows: int, context_sum: int, iterations: int) -> np.ndarray:
        ctx = context_sum + rows * np.arange(iterations, dtype=float)
        return self._time(float(rows), float(rows), ctx, ctx)
