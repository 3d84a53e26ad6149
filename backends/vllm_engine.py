"""vLLM (V1) engine defaults and KV-cache sizing, read from vLLM's source, for the continuous
policies (which simulate a vLLM server).

Batch defaults (vllm/engine/arg_utils.py, `EngineArgs._set_default_args` / the defaults table
by usage context): `vllm serve` (usage context OPENAI_API_SERVER) on a GPU with at least
70 GiB of memory that is not an A100 (H100, H200, RTX PRO 6000, MI300x) uses
max_num_batched_tokens 8192 and max_num_seqs 1024; on any other GPU 2048 and 256. V1 always
enables chunked prefill for generative models (`enable_chunked_prefill` defaults to the
model's support, True for decoders); without chunked prefill the token budget becomes
max_model_len. seqsched takes the `vllm serve` column, as its continuous policies model an
online server (the offline `LLM` class uses 16384/1024 and 8192/256).

KV-cache size (vllm/v1/worker/gpu_worker.py `determine_available_memory`):
available = total memory x gpu_memory_utilization - (weights + the PyTorch activation peak of
a profile run + non-torch memory); the profile run (`gpu_model_runner.profile_run`) is one
dummy forward of max_num_batched_tokens tokens spread over min(tokens, max_num_seqs)
requests plus a dummy sampler pass over max_num_seqs rows. We cannot profile, so
`activation_peak_bytes` estimates that peak from the model shape (the widest live tensors of
one decoder layer, and the sampler's fp32 logits); non-torch memory (CUDA graphs, NCCL,
cuBLAS workspaces) is not estimated. `vllm serve` logs the real figure ("# GPU blocks: N" /
"GPU KV cache size: N tokens"); pass it as `--kv-blocks N` to pin it.

Scheduler (vllm/v1/core/sched/scheduler.py `Scheduler.schedule`, read at commit b4622cf9),
against `policies/continuous.py`:
- one token budget (max_num_batched_tokens) per step; RUNNING requests first, in running-list
  (admission) order, each taking min(tokens it still needs, budget) - one for a decode, the
  rest of its prompt for a partial prefill; then WAITING requests in queue order while
  len(running) < max_num_seqs and budget remains, each a chunk min(prompt left, budget) (with
  chunked prefill off, the first prompt that does not fit stops admission). seqsched gives
  decode rows their token first and prompt chunks the rest in priority order: for fcfs the same
  batches, since a partially prefilled request is always the latest admitted (last in vLLM's
  running list).
- no waiting request is admitted in a step that preempted (`if not preempted_reqs`): same.
- preemption when `allocate_slots` fails: FCFS pops the LAST running request (the latest
  admitted), PRIORITY the max (priority, arrival); the victim's KV is freed, its computed
  tokens reset (recompute: prompt + output prefilled again) and it goes to the FRONT of the
  waiting queue. seqsched preempts the lowest priority key (fcfs: the latest arrival): the same
  victim unless a preempted older request was re-admitted after newer ones (vLLM then preempts
  it again first). Kept as is: the array engine (sim/fast) reproduces this order exactly.
- vLLM 0.19.0 (commit 2a69949bd) adds two switches, both on by default there and off here
  unless asked for (`validate --measured` sets them from the run): `scheduler_reserve_full_isl`
  (`can_fit_full_sequence` gates admission on the whole prompt's blocks: policy parameter
  `reserve_full_isl`, policies/continuous.py) and `async_scheduling` (the AsyncScheduler and a
  batch queue of two: one iteration's lag on admissions and frees, sim/async_lag.py).
"""

from __future__ import annotations

from seqsched.backends.pipeline import pp_kv_capacity_tokens
from seqsched.backends.specs import GPUSpec, ModelSpec, kv_capacity_tokens

GIB = 2 ** 30
LARGE_GPU_BYTES = 70 * GIB          # arg_utils: device_memory >= 70 * GiB_bytes
SERVE_DEFAULTS = {"large": (8192, 1024), "other": (2048, 256)}


def batch_defaults(gpu: GPUSpec) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) that `vllm serve` picks on `gpu`."""
    large = gpu.memory_bytes >= LARGE_GPU_BYTES and "a100" not in gpu.name.lower()
    return SERVE_DEFAULTS["large" if large else "other"]


def cudagraph_capture_sizes(max_num_seqs: int, max_num_batched_tokens: int,
                            enforce_eager: bool = False) -> tuple[int, ...]:
    """The CUDA-graph capture sizes (token counts) vLLM picks by default (vLLM 0.19.0,
    `vllm/config/vllm.py:1343` `VllmConfig._set_cudagraph_sizes`, Apache-2.0): the largest is
    min(max_num_seqs x 2, 512, max_num_batched_tokens) without speculative decoding, the list
    [1, 2, 4] + range(8, 256, 8) + range(256, largest + 1, 16) up to it (later versions raise
    the 512 to 1024 on data-centre Blackwell parts). Empty with --enforce-eager (no graphs).
    A batch above the largest size runs without a graph; DP padding (sim/lockstep.py) pads to
    these buckets."""
    if enforce_eager:
        return ()
    top = min(int(max_num_seqs) * 2, 512, int(max_num_batched_tokens))
    sizes = [s for s in (1, 2, 4) if s <= top]
    sizes += list(range(8, min(top + 1, 256), 8)) if top >= 8 else []
    sizes += list(range(256, top + 1, 16)) if top >= 256 else []
    return tuple(sizes)


def activation_peak_bytes(model: ModelSpec, max_num_batched_tokens: int,
                          max_num_seqs: int, tp: int = 1) -> int:
    """Estimated PyTorch activation peak of vLLM's profile run on one GPU: per token, the
    residual and normed hidden states plus the MLP's gate/up output and activated half live
    together (2 d + 3 ff / tp values: the MLP is split over TP); the sampler pass holds fp32
    logits and probabilities of max_num_seqs x vocab. The larger of the two is the peak."""
    return int(max(activation_peaks(model, max_num_batched_tokens, max_num_seqs, tp)))


def activation_peaks(model: ModelSpec, max_num_batched_tokens: int, max_num_seqs: int,
                     tp: int = 1) -> tuple[int, int]:
    """(the forward pass's, the sampler pass's) activation peak of `activation_peak_bytes`;
    under pipeline parallelism only the last stage runs the sampler pass
    (vllm/v1/worker/gpu_model_runner.py:5785 `if get_pp_group().is_last_rank`)."""
    dense = (max_num_batched_tokens * (2 * model.d_model + 3 * model.d_ff // tp)
             * model.dtype_bytes)
    sampler = min(max_num_seqs, max_num_batched_tokens) * model.vocab_size * 4 * 2
    return int(dense), int(sampler)


def kv_cache_tokens(gpu: GPUSpec, model: ModelSpec, gpu_memory_utilization: float,
                    max_num_batched_tokens: int, max_num_seqs: int, block_size: int,
                    kv_blocks: int | None = None, tp: int = 1, pp: int = 1,
                    ep: int = 1) -> int:
    """KV-cache capacity in tokens, whole blocks: `kv_blocks` x block_size when pinned,
    else what vLLM's memory profiling would leave (see the module docstring); over `pp`
    pipeline stages, the smallest stage's (backends/pipeline.py), the sampler's activation
    peak on the last stage only; `ep`: an MoE's experts split over that many DP ranks
    (expert parallelism, `specs.weight_bytes_per_gpu`; not combined with pp)."""
    if kv_blocks is not None:
        return int(kv_blocks) * block_size
    reserve = activation_peak_bytes(model, max_num_batched_tokens, max_num_seqs, tp)
    if pp > 1:
        dense, _ = activation_peaks(model, max_num_batched_tokens, max_num_seqs, tp)
        return pp_kv_capacity_tokens(gpu, model, gpu_memory_utilization,
                                     [dense] * (pp - 1) + [reserve], tp, pp, block_size)
    tokens = kv_capacity_tokens(gpu, model, gpu_memory_utilization,
                                activation_reserve_gb=reserve / 1e9, tp=tp, ep=ep)
    return tokens - tokens % block_size
