"""`Seq`: the engine's per-request runtime state (what nano-vllm calls a Sequence).

Policies read Seqs through the replica view and never write them; only the replica mutates.
`output_tokens` is the true length: the engine uses it to decide when a row finishes, and a
policy must not read it (the oracle predictor is the honest way to use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True, eq=False)
class Seq:
    idx: int                    # position in the trace
    id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int          # true length (engine only)
    predicted: int
    target_tokens: int = 0      # tokens it will generate: true length clipped to the run's cap
    prompt: str | None = None
    status: Status = Status.WAITING
    prefilled: int = 0          # prompt tokens in the KV cache, current attempt
    generated: int = 0          # output tokens generated, current attempt
    attempts: int = 0           # times started (>1 after FCR recompute or preemption)
    failed: bool = False        # collected by FCR, waiting to be recomputed
    preemptions: int = 0
    kv_blocks: int = 0          # KV blocks held (continuous batching)
    admitted_order: int = -1    # when it last joined the running set (preemption victim order)
    replica: int = 0
    # record fields
    first_scheduled_s: float = float("nan")
    first_token_s: float = float("nan")
    finish_s: float = float("nan")
    wasted_tokens: int = 0      # tokens computed in attempts that were thrown away
    slot_tokens: int = 0        # padded length of the batch that produced the final output
    slot_tokens_all: int = 0    # token slots over all attempts (failed and preempted included)
    truncated: bool = False     # stopped at the cap before its true end

    @property
    def context_tokens(self) -> int:
        return self.prefilled + self.generated

    @property
    def prefill_done(self) -> bool:
        return self.prefilled >= self.prompt_tokens
