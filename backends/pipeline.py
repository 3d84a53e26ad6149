"""Pipeline parallelism (vLLM's `--pipeline-parallel-size`): how a model's layers, weights,
KV cache and step time split over PP stages. Read from vLLM 0.19.0 as released on PyPI
(Apache-2.0, its wheel):

- layers: `get_pp_indices` (vllm/distributed/utils.py:95) gives each stage L // PP layers and
  spreads the remainder over the stages before the last (`partitions[-i] += 1` for i in
  2..r+1), so the first and last stages, which also hold the embedding and the LM head, get
  the fewest;
- weights: the first stage holds the embedding, the last the final norm and the LM head (with
  tied embeddings the last stage loads the embedding table as its head:
  vllm/model_executor/models/llama.py:373, :388, :538); each stage its own layers;
- KV cache: each stage's workers hold the KV of their own layers only, and every stage gets the
  smallest stage's block count (`get_kv_cache_configs`, vllm/v1/core/kv_cache_utils.py:1593
  "Change the num_blocks of each rank to the smallest among all ranks"), so the capacity in
  tokens is min over stages of free memory / (block bytes of that stage's layers);
- between stages each micro-batch's hidden states and residual (two tensors of tokens x
  d_model, vllm/model_executor/models/llama.py:430) are sent with `isend_tensor_dict`
  (vllm/v1/worker/gpu_worker.py:825), each TP rank its 1/TP slice, gathered over TP on arrival
  (`all_gather_group=get_tp_group()`): tokens x 2 x d_model x dtype / TP bytes per link, timed
  at the GPU's interconnect bandwidth (backends/specs.py, per direction) plus its fixed
  latency. The all-gather on arrival is not timed.

A stage's step time comes from the run's own cost model (roofline or kernel profile): the
whole model's iteration time t, less the LM head (a roofline of its GEMM: vocab x d_model
weights streamed once, 2 x rows x vocab x d_model FLOPs at the datasheet peak, over TP), is
split over the stages in proportion to their layers, and the last stage adds the head. vLLM
computes logits for every scheduled request (its last scheduled position), so the head's rows
are the step's rows. The embedding gather of the first stage is not timed (a read of tokens x
d_model values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.common.errors import UserError


def stage_layers(n_layers: int, pp: int) -> list[int]:
    """Layers of each stage, as vLLM's `get_pp_indices` splits them (no
    VLLM_PP_LAYER_PARTITION)."""
    if pp < 1 or n_layers < pp:
        raise UserError(f"pipeline-parallel-size {pp} does not fit a model of {n_layers} layers; "
                        f"give 1 to {n_layers} stages")
    parts = [n_layers // pp] * pp
    for i in range(2, n_layers % pp + 2):
        parts[-i] += 1
    return parts


def stage_weight_bytes(model, pp: int, tp: int = 1) -> list[float]:
    """Weight bytes on one GPU of each stage: its layers over TP, the embedding on the first,
    final norm and LM head (the embedding table when tied) on the last."""
    table = model.vocab_size * model.d_model * model.dtype_bytes / tp
    out = []
    for s, layers in enumerate(stage_layers(model.n_layers, pp)):
        b = layers * model.layer_params * model.dtype_bytes / tp
        if s == 0:
            b += table
        if s == pp - 1:
            b += table + model.d_model * model.dtype_bytes
        out.append(b)
    return out


def stage_kv_bytes_per_token(model, pp: int, tp: int = 1) -> list[float]:
    """One token's KV bytes on one GPU of each stage (KV heads split over TP, never below one)."""
    heads = max(model.n_kv_heads / tp, 1.0)
    per_layer = 2 * heads * model.head_dim * model.dtype_bytes
    return [layers * per_layer for layers in stage_layers(model.n_layers, pp)]


def pp_kv_capacity_tokens(gpu, model, memory_fraction: float, reserve_bytes, tp: int,
                          pp: int, block_size: int = 1) -> int:
    """KV capacity in tokens (whole blocks) of a PP x TP replica: every stage gets the smallest
    stage's block count. `reserve_bytes`: the activation peak held back on every GPU, or one
    per stage."""
    reserves = (list(reserve_bytes) if isinstance(reserve_bytes, (list, tuple))
                else [reserve_bytes] * pp)
    blocks = []
    for s, (w, kv, reserve) in enumerate(zip(stage_weight_bytes(model, pp, tp),
                                             stage_kv_bytes_per_token(model, pp, tp), reserves)):
        free = gpu.memory_bytes * memory_fraction - w - reserve
        if free <= 0:
            raise UserError(f"stage {s} of {model.name} over PP{pp}" + (f" x TP{tp}" if tp > 1
                            else "") + f" ({w / 1e9:.1f} GB of weights) does not fit in "
                            f"{gpu.name} ({gpu.memory_gb:.0f} GB x {memory_fraction}); pick a "
                            "bigger GPU or more --tp / --pipeline-parallel-size")
        blocks.append(int(free // (kv * block_size)))
    return min(blocks) * block_size


@dataclass(frozen=True)
class PipelineTiming:
    """Stage times and transfers of one step, from the whole model's time under the run's cost
    model. `head_s(rows)`: the LM head's roofline time; `send_s(tokens)`: one stage-to-stage
    activation transfer."""
    layers: tuple[int, ...]
    head_flops_per_row: float       # 2 x vocab x d_model / TP
    head_bytes: float               # vocab x d_model x dtype / TP
    peak_flops: float
    bandwidth: float                # HBM bytes/s
    act_bytes_per_token: float      # 2 tensors x d_model x dtype / TP
    link_bandwidth: float           # bytes/s per direction
    link_latency_s: float

    @property
    def pp(self) -> int:
        return len(self.layers)

    def head_s(self, rows: int) -> float:
        return max(rows * self.head_flops_per_row / self.peak_flops,
                   self.head_bytes / self.bandwidth)

    def send_s(self, tokens: int) -> float:
        return tokens * self.act_bytes_per_token / self.link_bandwidth + self.link_latency_s

    def stage_times(self, whole_s: float, rows: int) -> np.ndarray:
        """Seconds of each stage for a step the whole model runs in `whole_s` (`rows` rows)."""
        head = min(self.head_s(rows), whole_s)
        share = np.asarray(self.layers, dtype=float) / sum(self.layers)
        out = (whole_s - head) * share
        out[-1] += head
        return out


def pipeline_timing(gpu, model, pp: int, tp: int = 1) -> PipelineTiming:
    """The timing of `model` over `pp` stages of `tp` GPUs each on `gpu` (its datasheet peak,
    bandwidth and interconnect)."""
    link = gpu.interconnect_gbs * 1e9 if gpu.interconnect_gbs else float("inf")
    return PipelineTiming(tuple(stage_layers(model.n_layers, pp)),
                          2.0 * model.vocab_size * model.d_model / tp,
                          model.vocab_size * model.d_model * model.dtype_bytes / tp,
                          gpu.peak_flops, gpu.bandwidth,
                          2.0 * model.d_model * model.dtype_bytes / tp, link,
                          gpu.allreduce_latency_us * 1e-6)


@dataclass
class SerialPipelineCost:
    """vLLM 0.19's PP with async scheduling (its default): the async scheduler puts every
    running decode in every micro-batch (`num_output_placeholders`, vllm/v1/core/sched/
    async_scheduler.py:31), and each non-last stage takes the previous micro-batch's sampled
    tokens by a GPU broadcast from the last stage before its next forward pass
    (`_pp_receive_prev_sampled_token_ids_to_input_batch`, vllm/v1/worker/gpu_model_runner.py:
    4130, :4371), so micro-batches pass the stages one after another: a step costs the whole
    model's time plus PP - 1 activation transfers and the token broadcast (one link latency).
    A cost model of its own, so the ordinary engine (and its async lag) runs it."""
    base: object
    timing: PipelineTiming

    def __post_init__(self) -> None:
        self.name = f"{getattr(self.base, 'name', 'cost')}/pp{self.timing.pp}"
        self.wants_decode_spread = getattr(self.base, "wants_decode_spread", False)

    def _extra(self, tokens) -> np.ndarray | float:
        t = self.timing
        return (t.pp - 1) * (np.asarray(tokens) * t.act_bytes_per_token / t.link_bandwidth
                             + t.link_latency_s) + t.link_latency_s

    def prefill_time(self, new_tokens, past_tokens, decode_rows: int = 0,
                     decode_context: int = 0, **spread) -> float:
        whole = self.base.prefill_time(new_tokens, past_tokens, decode_rows, decode_context,
                                       **spread)
        return float(whole + self._extra(int(np.sum(new_tokens)) + decode_rows))

    def decode_times(self, rows: int, context_sum: int, iterations: int, **spread) -> np.ndarray:
        whole = self.base.decode_times(rows, context_sum, iterations, **spread)
        return whole + self._extra(rows)
