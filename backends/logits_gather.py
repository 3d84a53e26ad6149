"""vLLM's logits gather at tensor parallelism: what it moves and what it costs.

At TP > 1 the LM head is vocab-parallel: each rank computes its vocab/tp slice of the logits of
the step's sampled rows, and `LogitsProcessor._get_logits` gathers the slices every step
(vLLM 0.19.0, Apache-2.0: `vllm/model_executor/layers/logits_processor.py:99` calls
`_gather_logits`, :75-87, which all-gathers when `current_platform.use_all_gather()` -- True on
every platform that does not override it, CUDA included, `vllm/platforms/interface.py:614` --
through `tensor_model_parallel_all_gather`, `vllm/distributed/communication_op.py:17`, then
`GroupCoordinator.all_gather` (`vllm/distributed/parallel_state.py:521`) and the CUDA
communicator's inherited `DeviceCommunicatorBase.all_gather`, an NCCL
`dist.all_gather_into_tensor`, `vllm/distributed/device_communicators/
base_device_communicator.py:182-196`). The rows are one per scheduled sequence (the runner
computes logits at `logits_indices` only, `vllm/v1/worker/gpu_model_runner.py:4069`); the vocab
is padded to a multiple of 64 (`pad_vocab_size`, `vllm/model_executor/layers/
vocab_parallel_embedding.py:75`), in the model's dtype. Every rank ends up with rows x vocab x
dtype bytes, of which (tp - 1) / tp came from the others.

Priced, in this order, from (1) NCCL's all_gather measured on the GPU at the TP degree
(nccl-tests via aiconfigurator, backends/profiles/nccl_allgather.json, written by
scripts/derive_nccl_allgather.py; its size is the whole gathered buffer); (2) the cost model's
measured all-reduce table at half the bytes (a ring all-gather of S moves (tp - 1) / tp S per
GPU, half of a ring all-reduce of S, which is a reduce-scatter plus an all-gather; the
all-reduce's latency floor stands in for NCCL's); (3) the ring over the GPU's link:
(tp - 1) / tp S / bandwidth + latency. Tables interpolate log-log as the all-reduce's
(backends/allreduce_table.py). No profile importer measures this gather: the LLMServingSim
bundles time `LogitsProcessor` (their lm_head) with TP emulated on one GPU (its profiler
README: "profiled one TP at a time on one GPU"), where the gather is a no-op (world size 1,
parallel_state.py:524) -- their TP2 lm_head times are the TP1 times halved; aiconfigurator and
Vidur time the LM head GEMM alone.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from seqsched.backends.allreduce_table import allreduce_seconds, measured_collective
from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.specs import ModelSpec

TABLE = BUILTIN_DIR / "nccl_allgather.json"
VOCAB_PADDING = 64                  # vLLM's DEFAULT_VOCAB_PADDING_SIZE


def measured_allgather(gpu: str, tp: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(gathered bytes, us) of NCCL's all_gather on a built-in GPU at `tp` GPUs; None when
    unmeasured."""
    return measured_collective(TABLE, gpu, tp)


def gather_bytes_per_row(model: ModelSpec, tp: int) -> float:
    """Bytes of gathered logits per sampled row (every rank's full row); 0 at TP 1."""
    if int(tp) <= 1:
        return 0.0
    vocab = -(-int(model.vocab_size) // VOCAB_PADDING) * VOCAB_PADDING
    return float(vocab * model.dtype_bytes)


def gather_seconds(rows, bytes_per_row: float, tp: int, allgather: tuple | None = None,
                   allreduce: tuple | None = None, link_gbs: float = 0.0,
                   latency_us: float = 0.0) -> np.ndarray:
    """Seconds of the logits all-gather of `rows` rows (array-like): from the measured
    all-gather table, else the all-reduce table at half the bytes, else the ring."""
    nbytes = np.asarray(rows, dtype=float) * bytes_per_row
    if allgather is not None:
        t = allreduce_seconds(nbytes, allgather)
    elif allreduce is not None:
        t = allreduce_seconds(nbytes / 2, allreduce)
    else:
        t = (int(tp) - 1) / int(tp) * nbytes / (link_gbs * 1e9) + latency_us * 1e-6
    return np.where(nbytes > 0, t, 0.0)


def profile_gather(allreduce_op, bytes_per_row: float, tp: int,
                   allgather: tuple | None = None) -> Callable:
    """rows -> seconds of the logits all-gather for a kernel profile: the measured NCCL
    all-gather when given, else one of the profile's own all-reduces (`allreduce_op`, priced
    as the profile prices it: `Op.seconds` / count) at half the bytes."""
    if allgather is not None:
        return partial(gather_seconds, bytes_per_row=bytes_per_row, tp=tp, allgather=allgather)

    def seconds(rows):
        nbytes = np.asarray(rows, dtype=float) * bytes_per_row
        return np.where(nbytes > 0, allreduce_op.seconds(nbytes / 2) / allreduce_op.count, 0.0)
    return seconds


__all__ = ["gather_bytes_per_row", "gather_seconds", "profile_gather", "measured_allgather",
           "TABLE", "VOCAB_PADDING"]
