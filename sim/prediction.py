"""What predicting costs, as the engine charges it to the simulated timeline.

A predictor says *where* it runs and *what* it runs; the engine turns that into time, the same
for the same inputs (nothing here is measured on the machine that simulates):
- where (`on`): "gpu" - on the served GPU, sharing its timeline (a predict step blocks the
  replica: the paper's LLM length query, or a proxy encoder co-located with the server);
  "cpu" - beside the GPU on the serving host (requests wait for their prediction, the GPU
  does not); "free" - nothing is charged;
- what: an LLM length query on the *served* model (`prompt_tokens` prefilled and
  `decode_tokens` generated in padded batches of `batch_size`, timed by the replica's
  executor), or a side model (`encoder`, a BERT-like encoder of `encoder_tokens` per request)
  whose FLOPs and weight bytes give a roofline time on `device` (on "gpu" the run fills in the
  served GPU, `on_served`);
- `seconds` (per request) is wall time measured by a live run, the one place it is real.
Predictors (a floor above) build it; see `seqsched.predictors.base`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from seqsched.sim.sequence import Seq

PLACES = ("gpu", "cpu", "free")


@dataclass(frozen=True)
class Device:
    """A roofline device for a side model: sustained FLOP/s and memory bytes/s, and the bytes
    per weight the model runs at there (fp16 on a GPU, fp32 on a CPU)."""

    name: str
    flops: float
    bandwidth: float
    dtype_bytes: int = 2


@dataclass(frozen=True)
class EncoderShape:
    """A bidirectional transformer encoder (BERT: post-LN, GELU MLP, learned positions), as
    its config.json gives it, plus the FLOPs of whatever runs on the pooled embedding."""

    name: str
    layers: int
    d_model: int
    d_ff: int
    vocab_size: int
    max_position: int
    type_vocab: int = 2
    head_flops: float = 0.0        # per request, after pooling (the proxy's head)

    @property
    def dense_params(self) -> int:
        """Weights multiplied on every token: Q, K, V, O and the two MLP matrices per layer."""
        d = self.d_model
        return self.layers * (4 * d * d + 2 * d * self.d_ff)

    @property
    def params(self) -> int:
        """Every parameter (embeddings, biases, LayerNorms, pooler): the model card's figure."""
        d, f = self.d_model, self.d_ff
        embeddings = (self.vocab_size + self.max_position + self.type_vocab) * d + 2 * d
        layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
        return embeddings + self.layers * layer + d * d + d

    def batch_flops(self, rows: int, width: int) -> float:
        """A padded batch of `rows` x `width` tokens: 2 FLOPs per dense weight per token, and
        QK^T + AV over every pair of positions (4 x d per pair per layer, no causal mask)."""
        tokens = float(rows) * width
        return (2.0 * self.dense_params * tokens
                + 4.0 * self.layers * self.d_model * tokens * width + rows * self.head_flops)

    def batch_seconds(self, rows: int, width: int, device: Device) -> float:
        """Roofline: the larger of compute and streaming the dense weights once (the
        embedding rows are gathered, not streamed)."""
        return max(self.batch_flops(rows, width) / device.flops,
                   self.dense_params * device.dtype_bytes / device.bandwidth)


@dataclass(frozen=True)
class PredictorCost:
    prompt_tokens: np.ndarray | None = None
    decode_tokens: int = 0
    batch_size: int = 128
    seconds: np.ndarray | None = None
    on: str = "gpu"
    encoder: EncoderShape | None = None
    encoder_tokens: np.ndarray | None = None
    device: Device | None = None
    overhead_s: float = 0.0        # per side-model forward pass (launches, framework)

    def __post_init__(self) -> None:
        if self.on not in PLACES:
            raise ValueError(f"on must be one of {', '.join(PLACES)}, got {self.on!r}")
        if self.on == "cpu" and self.prompt_tokens is not None and np.any(self.prompt_tokens):
            raise ValueError("an LLM length query runs on the served model: on=gpu or on=free")

    @property
    def is_free(self) -> bool:
        if self.on == "free":
            return True
        no_tokens = self.prompt_tokens is None or not np.any(self.prompt_tokens)
        no_seconds = self.seconds is None or not np.any(self.seconds)
        return no_tokens and no_seconds and self.encoder is None

    @property
    def side_model(self) -> bool:
        """Timed here (a side model or measured seconds), not by the executor."""
        return self.encoder is not None or (self.seconds is not None and np.any(self.seconds))

    def on_served(self, gpu) -> "PredictorCost":
        """The served GPU (anything with `name`, `peak_flops`, `bandwidth`: a backends GPUSpec)
        as the device of a side model that runs on it and declared none: the run knows the GPU,
        the predictor does not. fp16 weights, the datasheet's dense peak."""
        if self.encoder is None or self.on != "gpu" or self.device is not None:
            return self
        return replace(self, device=Device(gpu.name, float(gpu.peak_flops),
                                           float(gpu.bandwidth), 2))

    def batch_seconds(self, idx: list[int]) -> float:
        """Time of one prediction batch of the requests at trace positions `idx`."""
        if self.seconds is not None and np.any(self.seconds):
            return float(np.sum(self.seconds[idx]))
        if self.encoder is None:
            raise ValueError("an LLM length query is timed by the executor")
        if self.device is None:
            raise ValueError("a side model on the served GPU needs the GPU: call on_served()")
        width = int(np.max(self.encoder_tokens[idx]))
        return self.encoder.batch_seconds(len(idx), width, self.device) + self.overhead_s


@dataclass
class PredictionQueue:
    """Requests whose length query must run on this replica before they can be scheduled."""

    cost: PredictorCost
    pending: deque = field(default_factory=deque)
    in_flight: int = 0          # on="cpu": requests of the batch the predictor is running
    ready_at: float = 0.0       # on="cpu": when that batch joins the waiting queue

    @property
    def beside(self) -> bool:
        """On the host CPU beside the GPU: its own process, the GPU's timeline untouched."""
        return self.cost.on == "cpu"

    def until_ready(self, now: float, t: float | None) -> float | None:
        """`t` (until the next arrival), or until the batch running beside the GPU joins the
        waiting queue if that is sooner: where a continuous batch must stop to admit it."""
        if not (self.beside and self.in_flight):
            return t
        ready = max(self.ready_at - now, 0.0)
        return ready if t is None else min(t, ready)

    def take(self) -> list[Seq]:
        n = min(self.cost.batch_size, len(self.pending))
        return [self.pending.popleft() for _ in range(n)]
