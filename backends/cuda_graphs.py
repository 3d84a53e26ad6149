"""vLLM's CUDA-graph padding on one GPU: a step whose token count fits the captured graphs runs
the graph of the next captured size, so its token-linear kernels process the padded count.

vLLM 0.19.0 (Apache-2.0, read from its PyPI wheel): every step goes through
`GPUModelRunner._determine_batch_execution_and_padding` (vllm/v1/worker/gpu_model_runner.py:3544),
which asks `CudagraphDispatcher.dispatch` (vllm/v1/cudagraph_dispatcher.py:234) for a graph: a
count above `max_cudagraph_capture_size` runs without one (mode NONE, :271-280, unpadded);
otherwise the count is rounded up to the next capture size (`_bs_to_padded_graph_size`, :71-90)
and a uniform decode batch (every row one token) replays a FULL graph, any other batch a
PIECEWISE one (:306-317), as `cudagraph_mode` allows: its default FULL_AND_PIECEWISE (decode
FULL, mixed PIECEWISE; `CUDAGraphMode`, vllm/config/compilation.py:51) covers both,
FULL_DECODE_ONLY pads only decode-only steps, NONE (and --enforce-eager) none. The padded count
is the forward's token count (`num_tokens_padded`, gpu_model_runner.py:3897): the embedding,
every GEMM, norm, activation, MoE router and experts and the TP all-reduce run over it, while
attention sees only the real rows (padded slots have slot_mapping -1, :3743, and no sequence)
and logits are computed at the real rows only (`hidden_states[logits_indices]`, :4069).

So a padded step costs its own time plus the token-linear part at the padded count minus at
the real count: `padded_extra(tokens, padded)` of the roofline (its GEMM, elementwise and all-reduce terms);
the kernel profile's DP-padding time with nothing gathered (its dense, all-reduce and MoE
tables by token count).
`GraphPaddedCost` wraps a cost model that has it; both engines time steps through the wrapped
`prefill_time` / `decode_times`, so they pad alike. A DP lockstep group pads its ranks to the
group's bucket instead (sim/lockstep.py): `padded_time` takes the rank's own padding back out.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

from seqsched.backends.vllm_engine import cudagraph_capture_sizes

NONE, PIECEWISE, FULL = 0, 1, 2
FULL_AND_PIECEWISE = (FULL, PIECEWISE)          # vLLM 0.19's default (decode, mixed) modes


@dataclass(frozen=True)
class GraphPadding:
    """The captured sizes (ascending token counts) and which steps replay a graph:
    `decode` (every row one token) and `mixed` (any step with a prompt chunk)."""
    sizes: tuple[int, ...] = ()
    decode: bool = True
    mixed: bool = True

    def padded(self, tokens: int, decode_only: bool) -> int:
        """The token count the forward runs for a step of `tokens` scheduled tokens."""
        sizes = self.sizes
        if (not sizes or tokens > sizes[-1] or tokens < 1
                or not (self.decode if decode_only else self.mixed)):
            return int(tokens)
        return sizes[bisect_left(sizes, tokens)]

    @property
    def active(self) -> bool:
        return bool(self.sizes) and (self.decode or self.mixed)


def graph_modes(mode) -> tuple[bool, bool]:
    """(decode steps use graphs, mixed steps use graphs) for a recorded `cudagraph_mode`: an
    int (0 NONE, 1 PIECEWISE, 2 FULL: both kinds) or a [decode, mixed] pair
    (FULL_AND_PIECEWISE = [2, 1], FULL_DECODE_ONLY = [2, 0]); vLLM's default when None."""
    if mode is None:
        mode = FULL_AND_PIECEWISE
    if isinstance(mode, (list, tuple)) and len(mode) == 2:
        return int(mode[0]) != NONE, int(mode[1]) != NONE
    return int(mode) != NONE, int(mode) != NONE


def graph_padding(max_num_seqs: int, max_num_batched_tokens: int, enforce_eager: bool = False,
                  recorded: dict | None = None) -> GraphPadding:
    """The padding a vLLM server runs with: a recorded compilation config's
    `cudagraph_capture_sizes` (filtered to <= max_num_batched_tokens, as
    `VllmConfig._set_cudagraph_sizes` does, vllm/config/vllm.py:1411-1422) and
    `cudagraph_mode` where the run's metadata has them, else vLLM 0.19's defaults
    (backends/vllm_engine.cudagraph_capture_sizes); none with --enforce-eager."""
    if enforce_eager:
        return GraphPadding()
    recorded = recorded or {}
    sizes = recorded.get("cudagraph_capture_sizes")
    if isinstance(sizes, list) and sizes and all(isinstance(s, int) for s in sizes):
        sizes = tuple(sorted({s for s in sizes if 1 <= s <= int(max_num_batched_tokens)}))
    else:
        sizes = cudagraph_capture_sizes(max_num_seqs, max_num_batched_tokens)
    decode, mixed = graph_modes(recorded.get("cudagraph_mode"))
    return GraphPadding(sizes, decode, mixed)


class GraphPaddedCost:
    """A cost model whose steps run padded to `padding` (module docstring). Everything else -
    name, profile metadata, skew switches, DP timing - is the wrapped model's."""

    def __init__(self, cost, padding: GraphPadding) -> None:
        self.cost = cost
        self.padding = padding

    def __getattr__(self, name):
        if name.startswith("__") or name in ("cost", "padding"):   # copy / pickle probes
            raise AttributeError(name)
        return getattr(self.cost, name)

    def extra(self, tokens: int, decode_only: bool) -> float:
        """Seconds the padding adds to an iteration of `tokens` scheduled tokens."""
        padded = self.padding.padded(int(tokens), decode_only)
        if padded == tokens:
            return 0.0
        if hasattr(self.cost, "padded_extra"):
            return float(self.cost.padded_extra(int(tokens), padded))
        # the kernel profile: its DP padding with nothing gathered is the token-linear part
        return float(self.cost.padded_time(0.0, int(tokens), int(tokens), padded, None))

    def prefill_time(self, new_tokens, past_tokens, decode_rows: int = 0,
                     decode_context: int = 0, **spread) -> float:
        t = self.cost.prefill_time(new_tokens, past_tokens, decode_rows, decode_context,
                                   **spread)
        new = np.asarray(new_tokens).ravel()
        tokens = int(new.sum()) + int(decode_rows)
        # vLLM's uniform decode: every row schedules one token (gpu_model_runner._is_uniform_decode)
        return t + self.extra(tokens, tokens == new.size + int(decode_rows)) if tokens else t

    def decode_times(self, rows: int, context_sum: int, iterations: int, **spread) -> np.ndarray:
        t = self.cost.decode_times(rows, context_sum, iterations, **spread)
        return t + self.extra(int(rows), True) if iterations > 0 and rows else t

    def padded_time(self, alone_s: float, tokens: int, rows: int, padded_tokens: int,
                    moe_tokens: int, moe_largest: int | None = None) -> float:
        """A DP lockstep rank: the group's padding replaces the rank's own (`alone_s` was
        timed with it)."""
        own = self.extra(int(tokens), rows == tokens)
        return self.cost.padded_time(alone_s - own, tokens, rows, padded_tokens, moe_tokens,
                                     moe_largest)


def pad_cost(cost, padding: GraphPadding):
    """`cost` padded to `padding`, or `cost` itself when nothing pads (no graphs, or a cost
    model that cannot say what padding costs: the live-fitted profile models HF's padded
    batches, not vLLM's)."""
    if not padding.active or not (hasattr(cost, "padded_extra")
                                  or getattr(cost, "wants_dp_tokens", False)):
        return cost
    return GraphPaddedCost(cost, padding)


__all__ = ["GraphPadding", "GraphPaddedCost", "graph_padding", "graph_modes", "pad_cost"]
