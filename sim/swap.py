"""Host swap space for `preemption=swap`: a preempted request's KV blocks are copied to CPU
memory over the host link and copied back when it is admitted again, instead of being
recomputed.

This is vLLM V0's swap preemption (`vllm/core/scheduler.py`: `_preempt_by_swap`,
`_swap_out`, `_swap_in`; `--swap-space` GiB of CPU memory per GPU, default 4). The copies
block the iteration they precede (V0's worker runs `cache_engine.swap_in/swap_out` before the
model), so their time is added to the timeline: bytes / link bandwidth, one direction at a
time. Where vLLM V0 aborts the engine when the swap space is full ("Aborted due to the lack of
CPU swap space"), a victim that does not fit is preempted by recompute instead and counted
(`swap_fallbacks`), so a run always finishes.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30


@dataclass
class HostSwap:
    """Bounded CPU swap space of one replica and the link that moves KV to and from it."""

    capacity_tokens: int          # KV tokens the host space holds
    bytes_per_token: int          # KV bytes of one token (all layers, K and V)
    bandwidth_bps: float          # host link, bytes per second in one direction
    used_tokens: int = 0
    fallbacks: int = 0            # victims preempted by recompute because the space was full
    pending_s: float = 0.0        # copies the replica's next step waits for
    pending_rows: int = 0

    def seconds(self, tokens: int) -> float:
        """Time to copy `tokens` KV tokens across the link (one direction)."""
        return tokens * self.bytes_per_token / self.bandwidth_bps

    def fits(self, tokens: int) -> bool:
        return self.used_tokens + tokens <= self.capacity_tokens

    def put(self, tokens: int) -> float:
        """Swap out `tokens` tokens; returns the copy time."""
        if not self.fits(tokens):
            raise RuntimeError(f"swap space full: {tokens} tokens do not fit "
                               f"({self.used_tokens} of {self.capacity_tokens} used)")
        self.used_tokens += tokens
        return self.seconds(tokens)

    def take(self, tokens: int) -> float:
        """Swap `tokens` tokens back in; returns the copy time."""
        self.used_tokens -= tokens
        return self.seconds(tokens)


    def swap_out(self, s, kv) -> bool:
        """Move a victim's KV to host memory and free its blocks (False: no room there, the
        replica preempts it by recompute instead)."""
        tokens = s.context_tokens
        if not self.fits(tokens):
            self.fallbacks += 1
            return False
        self.pending_s += self.put(tokens)
        self.pending_rows += 1
        s.swapped = tokens
        s.swapped_tokens += tokens
        kv.free(s)
        return True

    def swap_in(self, s) -> None:
        """`s` is admitted again: its KV comes back (its blocks are allocated by the step)."""
        self.pending_s += self.take(s.swapped)
        self.pending_rows += 1
        s.swapped = 0

    def drain(self) -> tuple[float, int]:
        """(seconds, requests) of the copies pending, which the next step waits for."""
        out = (self.pending_s, self.pending_rows)
        self.pending_s, self.pending_rows = 0.0, 0
        return out


def host_swap(swap_space_gib: float, bytes_per_token: int, bandwidth_bps: float) -> HostSwap:
    """`swap_space_gib` GiB of host memory (vLLM's --swap-space) in whole KV tokens."""
    return HostSwap(int(swap_space_gib * GIB // bytes_per_token), bytes_per_token,
                    bandwidth_bps)
