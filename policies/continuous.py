"""Continuous (iteration-level) batching, vLLM-style.

Every step: make room for the running rows to grow (preempting the lowest-priority running
request by recompute when KV blocks run out), then admit waiting requests in priority order
while KV blocks, the sequence limit and the per-iteration token budget allow. Prefill and
decode rows share an iteration (mixed batches, as vLLM V1 and Sarathi-Serve); with
`chunked_prefill` a prompt that does not fit the token budget is split across iterations.

`fcfs` orders the waiting queue by arrival, `sjf` by predicted length (shortest first).
"""

from __future__ import annotations

from dataclasses import dataclass

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
        running = sorted(view.running, key=self.priority)
        free = kv.free_blocks
        preempt: list[Seq] = []

        # 1. room for one more token (or the next prompt chunk) for every running row;
        #    preempt the lowest-priority rows (recompute) until the rest fit
        bs = kv.block_size
        # a row holds its context, this step's prompt chunk and the token the step produces
        need = [max(-(-(s.context_tokens + self._chunk(s, self.max_batched_tokens) + 1) // bs)
                    - s.kv_blocks, 0) for s in running]
        total = sum(need)
        while running and total > free:
            victim = running.pop()              # lowest priority goes first
            total -= need.pop()
            preempt.append(victim)
            free += victim.kv_blocks
        free -= total

        rows, chunks = [], []
        budget = self.max_batched_tokens
        for s in running:
            c = self._chunk(s, budget)
            if s.prefilled < s.prompt_tokens and c == 0:
                continue                        # no budget left for its next chunk
            rows.append(s)
            chunks.append(c)
            budget -= c if c else 1

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
        if not rows:
            return None

        # 3. the batch may run unchanged until a completion or an arrival; the engine also
        #    stops it where the KV blocks run out (the next step then preempts)
        complete = all(s.prefilled + c >= s.prompt_tokens for s, c in zip(rows, chunks))
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
