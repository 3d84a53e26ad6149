"""Continuous (iteration-level) batching, vLLM-style.

Every step: make room for the running rows to grow (preempting the lowest-priority running
request by recompute when KV blocks run out), then admit waiting requests in priority order
while KV blocks, the sequence limit and the per-iteration token budget allow. Prefill and
decode rows share an iteration (mixed batches, as vLLM V1 and Sarathi-Serve); with
`chunked_prefill` a prompt that does not fit the token budget is split across iterations.
Decode rows take one token of the budget each and prompt chunks share the rest in priority
order (decode first, as Sarathi-Serve schedules).

`fcfs` orders the waiting queue by arrival, `sjf` by predicted length (shortest first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.step import Step
from sim.errors import UserError
from sim.sequence import Seq


@dataclass
class ContinuousPolicy:
    max_num_seqs: int = 256          # vLLM default max_num_seqs
    max_batched_tokens: int = 8192   # per-iteration token budget (vLLM max_num_batched_tokens)
    chunked_prefill: bool = False
    max_iterations: int = 4096       # upper bound on iterations per event
    name: str = "fcfs"

    def __post_init__(self) -> None:
        for key in ("max_num_seqs", "max_batched_tokens", "max_iterations"):
            if getattr(self, key) <= 0:
                raise UserError(f"{key.replace('_', '-')} must be > 0, got {getattr(self, key)}")

    def priority(self, seq: Seq) -> tuple:
        return (seq.arrival_s, seq.idx)

    def check_prompts(self, prompt_tokens, ids) -> None:
        """Without chunked prefill a prompt must fit one iteration's token budget (vLLM
        rejects such a configuration too)."""
        longest = int(prompt_tokens.argmax())
        if not self.chunked_prefill and prompt_tokens[longest] > self.max_batched_tokens:
            raise UserError(f"request {ids[longest]} has a {prompt_tokens[longest]}-token prompt, "
                            f"above max_batched_tokens={self.max_batched_tokens}; set "
                            "chunked_prefill=true or raise max_batched_tokens")

    def schedule(self, view) -> Step | None:
        kv = view.kv
        bs = kv.block_size
        free = kv.free_blocks
        running = list(view.running)
        n = len(running)
        preempt: list[Seq] = []
        rows: list[Seq] = []
        chunks: list[int] = []
        budget = self.max_batched_tokens
        complete = True                     # every prompt chunk finishes its prompt
        if n:
            # 1. room for every running row: its context, this step's prompt chunk (if still
            #    prefilling) and the token the step produces; preempt the lowest-priority rows
            #    (recompute) until the rest fit
            ctx = np.fromiter((s.prefilled + s.generated for s in running), np.int64, n)
            left = np.fromiter((s.prompt_tokens - s.prefilled for s in running), np.int64, n)
            held = np.fromiter((s.kv_blocks for s in running), np.int64, n)
            first = (np.minimum(left, budget) if self.chunked_prefill
                     else np.where(left <= budget, left, 0))
            need = np.maximum((ctx + first + bs) // bs - held, 0)
            total = int(need.sum())
            if total > free:
                order = sorted(range(n), key=lambda i: self.priority(running[i]))
                while order and total > free:
                    i = order.pop()             # lowest priority goes first
                    total -= int(need[i])
                    free += int(held[i])
                    preempt.append(running[i])
                running, left = [running[i] for i in order], left[order]
            free -= total
            # decode rows take one token of the budget each; prompt chunks of rows still
            # prefilling (chunked prefill) share the rest in priority order
            prefilling = left > 0
            budget -= int((~prefilling).sum())
            if prefilling.any():
                rows = [s for s, p in zip(running, prefilling.tolist()) if not p]
                chunks = [0] * len(rows)
                for s in sorted((s for s, p in zip(running, prefilling.tolist()) if p),
                                key=self.priority):
                    c = self._chunk(s, budget)
                    if c:
                        rows.append(s)
                        chunks.append(c)
                        budget -= c
                        complete &= s.prefilled + c >= s.prompt_tokens
            else:
                rows, chunks = running, [0] * len(running)

        # 2. admit waiting requests in priority order (head-of-line: stop at the first misfit)
        if not preempt:
            for s in view.waiting:
                if len(rows) >= self.max_num_seqs or budget <= 0:
                    break
                c = self._chunk(s, budget)
                if c == 0:
                    break
                need = kv.blocks_for(s.prefilled + c + 1)
                if need > free:
                    break
                free -= need
                rows.append(s)
                chunks.append(c)
                budget -= c
                complete &= s.prefilled + c >= s.prompt_tokens
        if not rows:
            return None

        # 3. the batch may run unchanged until a completion or an arrival; the engine also
        #    stops it where the KV blocks run out (the next step then preempts)
        return Step(rows, chunks, max_iterations=self.max_iterations if complete else 1,
                    preempt=preempt)

    def _chunk(self, s: Seq, budget: int) -> int:
        """Prompt tokens `s` processes next (0 = decode row, or no budget for it)."""
        left = s.prompt_tokens - s.prefilled
        if left <= 0:
            return 0
        if left <= budget:
            return left
        return budget if self.chunked_prefill else 0


@dataclass
class SJFPolicy(ContinuousPolicy):
    name: str = "sjf"

    def priority(self, seq: Seq) -> tuple:
        return (seq.predicted, seq.arrival_s, seq.idx)
