"""The expert FFN of a mixture-of-experts layer, timed from a measured table: LLMServingSim's
`moe.csv` (tokens x activated_experts -> us of one `Qwen3MoeSparseMoeBlock`: router + fused
experts, one layer, one GPU), looked up as its `_lookup_moe` does (linear along tokens in each
measured activated-experts row, then linear between the two bracketing rows).

Which (tokens, activated experts) an iteration of T tokens runs is a routing assumption, stated
here and in the profile's provenance: a load-balanced gate (Qwen3 and Mixtral train with an
auxiliary balancing loss) that routes every token to k of E experts uniformly and
independently of the other tokens. Then one expert stays idle with probability (1 - k/E)^T
and the expected number of distinct experts is E (1 - (1 - k/E)^T): the same expectation the
roofline's MoE bytes use (backends/roofline.py). LLMServingSim's default `BALANCED` router
takes the pigeonhole bound min(T k, E) instead (serving/core/gate_function.py), the most
experts T tokens could touch; `routing="pigeonhole"` reproduces it.

Expert parallelism over `ep` GPUs (vLLM's all-gather / reduce-scatter dispatch, its default
all2all backend): each rank owns E/ep experts and runs the tokens of its whole EP group that
picked them. `gather` is how many ranks' tokens one MoE layer gathers (the DP group size when
DP ranks share the experts, with balanced DP ranks assumed: `gather` x this rank's tokens).
A rank then computes gather x T x k / ep token-expert pairs, which is the pair count of
gather x T / ep tokens in the single-GPU table, over E/ep (1 - (1 - k/E)^(gather T)) experts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.backends.interp import bracket, interp1

ROUTINGS = ("uniform", "pigeonhole")


@dataclass
class MoeTable:
    count: float                # MoE layers per iteration
    n_experts: int
    top_k: int
    experts_axis: np.ndarray    # the measured activated-expert counts, increasing
    rows: list                  # [(tokens axis, us)] per activated-expert count
    ep: int = 1
    gather: int = 1
    routing: str = "uniform"

    def activated(self, tokens) -> np.ndarray:
        """Expected distinct experts one rank runs for `tokens` gathered tokens."""
        t = np.asarray(tokens, dtype=float)
        e, k, ep = float(self.n_experts), float(self.top_k), max(int(self.ep), 1)
        if self.routing == "pigeonhole":
            return np.minimum(np.round(t * k / ep), e // ep)
        return (e / ep) * (1.0 - (1.0 - k / e) ** t)

    def shape(self, tokens) -> tuple[np.ndarray, np.ndarray]:
        """(table tokens, activated experts) of one rank for this rank's `tokens`."""
        seen = np.asarray(tokens, dtype=float) * max(int(self.gather), 1)
        return seen / max(int(self.ep), 1), self.activated(seen)

    def us(self, tokens, experts) -> np.ndarray:
        """The table at (tokens, experts): linear along tokens per row, then between rows."""
        tokens, experts = np.broadcast_arrays(np.asarray(tokens, dtype=float),
                                              np.maximum(np.asarray(experts, dtype=float), 1.0))
        lo, hi, t = bracket(self.experts_axis, experts)
        per_row = np.stack([interp1(x, us, tokens) for x, us in self.rows])  # rows x queries
        a = np.take_along_axis(per_row, lo[None], 0)[0]
        b = np.take_along_axis(per_row, hi[None], 0)[0]
        out = a + t * (b - a)
        return np.maximum(out, 0.0)

    def seconds(self, tokens) -> np.ndarray:
        """Seconds of every MoE layer of one iteration of `tokens` tokens on this rank."""
        tokens = np.asarray(tokens, dtype=float)
        table_tokens, experts = self.shape(tokens)
        return np.where(tokens > 0, self.count * self.us(np.maximum(table_tokens, 1.0),
                                                         experts) * 1e-6, 0.0)


def moe_from_dict(sec: dict) -> MoeTable:
    """The profile's `moe` section: {count, n_experts, top_k, ep, gather, routing,
    rows: [{experts, tokens, us}]} (KeyError / ValueError on a malformed one)."""
    rows = sorted(sec["rows"], key=lambda r: float(r["experts"]))
    axis = np.array([float(r["experts"]) for r in rows])
    data = [(np.asarray(r["tokens"], dtype=float), np.asarray(r["us"], dtype=float))
            for r in rows]
    if not rows or np.any(np.diff(axis) <= 0) or any(
            x.shape != u.shape or x.size == 0 or np.any(np.diff(x) <= 0) for x, u in data):
        raise ValueError("moe rows: experts and each row's tokens must increase, tokens match us")
    routing = str(sec.get("routing", "uniform"))
    if routing not in ROUTINGS:
        raise ValueError(f"moe routing {routing!r}")
    return MoeTable(float(sec["count"]), int(sec["n_experts"]), int(sec["top_k"]), axis, data,
                    int(sec.get("ep", 1)), int(sec.get("gather", 1)), routing)


__all__ = ["MoeTable", "moe_from_dict", "ROUTINGS"]
