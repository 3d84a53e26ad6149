"""What a policy hands the engine: a `Step` (which rows run and how), and what an executor
hands back: a `StepResult`.

One Step is one SimPy event. Iteration 0 processes each row's `prefill_tokens` (a prompt chunk;
0 for a decode row) and one decode token for rows already past prefill; iterations 1..k-1 are
pure decode of every row. The engine picks k (`iterations`): up to `max_iterations` for a
continuous batch, cut at the first completion and at the first iteration boundary after the
next arrival, and where the KV blocks would run out; for a padded static batch, until every
row is done or `cap` is reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seqsched.sim.sequence import Seq


@dataclass
class Step:
    seqs: list[Seq]
    prefill_tokens: list[int]          # per row, prompt tokens processed in iteration 0
    padded: bool = False               # static batch: padded to the longest prompt; rows keep
                                       # their slot until the whole batch ends
    cap: int | None = None             # static: max new tokens per row in this batch
    fcr: bool = False                  # static: rows unfinished at `cap` fail and are recomputed
                                       # later from scratch (else they end truncated)
    max_iterations: int = 1            # continuous: iterations it may run unchanged
    preempt: list[Seq] = field(default_factory=list)  # continuous: recompute-preempt first
    kind: str = "generate"             # "generate", or "predict" (the length query)


@dataclass
class StepResult:
    duration_s: float                  # wall (live) or modelled (cost model) seconds
    iterations: int                    # iterations actually run
    first_iteration_s: float           # end of iteration 0 relative to step start (TTFT point)
    eos_at: dict[str, int] | None = None  # live natural-length mode: row id -> iteration index
                                       # (in this step) at which that row emitted EOS
    last_iteration_s: float | None = None  # start of the last iteration relative to step start
                                       # (async scheduling's plan point; None: not known)
