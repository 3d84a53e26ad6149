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
    prefilled: int = 0          # tokens of this attempt's prefill in the KV cache
    generated: int = 0          # output tokens so far (kept by a recompute preemption; a
                                # restart or an FCR failure resets them)
    recomputed: int = 0         # output tokens folded into this attempt's prefill (resumed
                                # after a recompute preemption, as vLLM treats them: a prompt)
    attempts: int = 0           # times started (>1 after FCR recompute or preemption)
    failed: bool = False        # collected by FCR, waiting to be recomputed
    preemptions: int = 0
    kv_blocks: int = 0          # KV blocks held (continuous batching)
    swapped: int = 0            # KV tokens held in host swap space (preemption=swap)
    block_hashes: list | None = None  # prefix caching: chained hashes of its full blocks
    cache_keys: list | None = None    # prefix caching: hash (or None: private) per held block
    decode_target: int = 0      # disaggregation: tokens to generate in all (the prefill side
                                # runs target_tokens = 1)
    admitted_order: int = -1    # when it last joined the running set (preemption victim order)
    replica: int = 0
    # record fields
    first_scheduled_s: float = float("nan")
    first_token_s: float = float("nan")
    finish_s: float = float("nan")
    wasted_tokens: int = 0      # output tokens computed in attempts that were thrown away
    recomputed_tokens: int = 0  # KV-cache tokens preemptions discarded (computed again later)
    swapped_tokens: int = 0     # KV tokens swapped out to host memory (all preemptions)
    cached_tokens: int = 0      # prompt tokens served from the prefix cache (all attempts)
    prefill_replica: int = -1   # disaggregation: where it was prefilled
    prefill_end_s: float = float("nan")   # disaggregation: its prefill ended (KV sent)
    kv_transfer_s: float = float("nan")   # disaggregation: KV transfer time
    client_arrival_s: float = float("nan")  # --max-concurrency: the trace's arrival (arrival_s
                                            # is the send, sim/client.py)
    slot_tokens: int = 0        # padded length of the batch that produced the final output
    slot_tokens_all: int = 0    # token slots over all attempts (failed and preempted included)
    truncated: bool = False     # stopped at the cap before its true end
    dist: object = None         # predicted length distribution: sorted, equally likely
                                # points (a numpy array; distribution-based policies)

    @property
    def prefill_len(self) -> int:
        """Tokens this attempt prefills: the prompt, plus the kept output tokens of a request
        resumed after a recompute preemption."""
        return self.prompt_tokens + self.recomputed

    @property
    def context_tokens(self) -> int:
        """Tokens in the KV cache (prompt and output so far) when the next iteration starts."""
        return self.prefilled + self.generated - self.recomputed

    @property
    def prefill_done(self) -> bool:
        return self.prefilled >= self.prefill_len
