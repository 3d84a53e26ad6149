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
DP ranks share the experts, with balanced DP ranks assumed: `gather` x this rank's tokens;
in a DP lockstep group the group's own padded counts replace that guess, `gathered` below:
sim/lockstep.py).
A rank then computes gather x T x k / ep token-expert pairs, which is the pair count of
gather x T / ep tokens in the single-GPU table, over E/ep (1 - (1 - k/E)^(gather T)) experts.
Around it (ep > 1) the dispatch all-gathers the group's hidden states and router logits
((d_model + E) x 2 bytes a token) and the combine reduce-scatters the hidden states (d_model
x 2 bytes), as LLMServingSim's `_emit_moe_block` sizes vLLM's default allgather_reducescatter
backend; each is looked up by its total bytes in NCCL's all_gather / reduce_scatter measured
at ep GPUs when the profile has them (`ep_comm`: aiconfigurator's nccl-tests tables, whose
message size is the whole gathered / scattered buffer), else timed by the ring model over the
GPU link (latency + (ep - 1)/ep x bytes / bandwidth, profile_common.ring_allreduce_us).
Ranks of unequal token counts (a DP lockstep step past the CUDA graphs, so unpadded) do not
run those collectives (vLLM 0.19.0, Apache-2.0): `AgRsAll2AllManager.dispatch_router_logits`
gathers [hidden_states, router_logits] with `all_gatherv` (distributed/device_communicators/
all2all.py:159-191; bf16 router logits: the unquantized Triton path has no modular
prepare/finalize, fused_moe/runner/default_moe_runner.py:574-595), whose equal sizes take
`ncclAllGather` but unequal ones one `ncclBroadcast` per root rank in an NCCL group
(cuda_communicator.py:352-392 -> pynccl.py:211-243), and `reduce_scatterv` one `ncclReduce`
per root (cuda_communicator.py:264-300 -> pynccl.py:274-310). Each root's chunk must cross
the link in full, so the grouped calls last at least as long as the equal-size collective
of `gather` chunks as large as the largest rank's: that collective's table is looked up at
gather x the largest count (`largest`) when it exceeds the gathered sum's (a modelling
choice; the same within 5% of the sum of the broadcasts if NCCL ran them one after another,
for the 2,048 + ~100 split of a prefill step at DP 2).

An aiconfigurator table (`by_ep`, backends/import_aiconfigurator_moe.py) instead measured one
rank at each EP size with balanced routing, by the tokens the rank holds after dispatch: it
is looked up at the run's EP size and the gathered tokens (gather x this rank's tokens), no
routing assumption of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.backends.interp import bracket, interp1
from seqsched.common.errors import UserError

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
    link_gbs: float = 0.0           # ep > 1: the GPU link, GB/s per direction
    link_latency_us: float = 0.0
    dispatch_bytes: float = 0.0     # per gathered token: (d_model + E) x dtype bytes
    combine_bytes: float = 0.0      # per gathered token: d_model x dtype bytes
    ep_comm: dict | None = None     # {"<gpus>": {"all_gather"|"reduce_scatter": (bytes, us)}}
    by_ep: dict | None = None       # aiconfigurator: {ep: (gathered tokens, us)} of one rank

    def activated(self, tokens) -> np.ndarray:
        """Expected distinct experts one rank runs for `tokens` gathered tokens."""
        t = np.asarray(tokens, dtype=float)
        e, k, ep = float(self.n_experts), float(self.top_k), max(int(self.ep), 1)
        if self.routing == "pigeonhole":
            return np.minimum(np.round(t * k / ep), e // ep)
        return (e / ep) * (1.0 - (1.0 - k / e) ** t)

    def seen(self, tokens, gathered=None) -> np.ndarray:
        """Tokens one MoE layer of this rank sees: the gathered tokens of the group when
        known (`gathered`: a DP lockstep group's own counts), else `gather` balanced ranks of
        this rank's `tokens`; without a gather, this rank's tokens."""
        if gathered is not None and int(self.gather) > 1:
            return np.asarray(gathered, dtype=float) + np.zeros(np.shape(tokens))
        return np.asarray(tokens, dtype=float) * max(int(self.gather), 1)

    def shape(self, tokens, gathered=None) -> tuple[np.ndarray, np.ndarray]:
        """(table tokens, activated experts) of one rank for this rank's `tokens`."""
        seen = self.seen(tokens, gathered)
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

    def comm_us(self, tokens, gathered=None, largest=None) -> np.ndarray:
        """One MoE layer's dispatch all-gather + combine reduce-scatter (0 without EP).
        `largest`: the largest rank's (padded) token count in a DP lockstep group; ranks of
        unequal counts run vLLM's grouped per-rank broadcasts / reduces, as long as the
        equal-size collective of `gather` chunks that large (module docstring)."""
        tokens = np.asarray(tokens, dtype=float)
        ep = max(int(self.ep), 1)
        if ep == 1 or self.link_gbs <= 0:
            return np.zeros(tokens.shape)
        seen = self.seen(tokens, gathered)
        if largest is not None and gathered is not None and int(self.gather) > 1:
            seen = np.maximum(seen, float(largest) * int(self.gather))
        measured = (self.ep_comm or {}).get(str(ep))
        if measured and {"all_gather", "reduce_scatter"} <= set(measured):
            return (interp1(*measured["all_gather"], seen * self.dispatch_bytes)
                    + interp1(*measured["reduce_scatter"], seen * self.combine_bytes))
        wire = (ep - 1) / ep * seen * (self.dispatch_bytes + self.combine_bytes)
        return 2 * self.link_latency_us + wire / (self.link_gbs * 1e9) * 1e6

    def seconds(self, tokens, gathered=None, largest=None) -> np.ndarray:
        """Seconds of every MoE layer of one iteration of `tokens` tokens on this rank
        (`gathered`: the group's gathered tokens, when known; `largest`: its largest rank's
        count, which sets the collectives' time: `comm_us`). One iteration at a time (scalars)
        is memoised: a run asks for the same few token counts over and over, and a stored
        result is the very double the numpy path gives."""
        key = _scalar_key(tokens, gathered, largest)
        if key is None:
            return self._seconds(tokens, gathered, largest)
        memo = self.__dict__.setdefault("_memo", {})
        hit = memo.get(key)
        if hit is None:
            if len(memo) > 1 << 16:
                memo.clear()
            hit = memo[key] = self._seconds(tokens, gathered, largest)[()]
        return hit

    def _seconds(self, tokens, gathered=None, largest=None) -> np.ndarray:
        tokens = np.asarray(tokens, dtype=float)
        comm = self.comm_us(tokens, gathered, largest)
        if self.by_ep is not None:
            seen = self.seen(tokens, gathered)
            us = interp1(*self.by_ep[max(int(self.ep), 1)], np.maximum(seen, 1.0))
            us = np.maximum(us, 0.0) + comm
        else:
            table_tokens, experts = self.shape(tokens, gathered)
            us = self.us(np.maximum(table_tokens, 1.0), experts) + comm
        return np.where(tokens > 0, self.count * us * 1e-6, 0.0)


def _scalar_key(*values) -> tuple | None:
    """The values as floats (None kept) when each is one number, else None."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, (float, int, np.generic)) or (isinstance(v, np.ndarray)
                                                         and v.ndim == 0):
            out.append(float(v))
        else:
            return None
    return tuple(out)


def expert_parallel(table: MoeTable, ep: int, gather: int, link_gbs: float,
                    latency_us: float, d_model: int, dtype_bytes: int = 2) -> MoeTable:
    """The same table run with its experts split over `ep` GPUs, each MoE layer gathering
    the tokens of `gather` ranks (vLLM's --enable-expert-parallel with data parallelism:
    gather = the DP size), over a link of `link_gbs` GB/s."""
    from dataclasses import replace
    if table.by_ep is not None and int(ep) not in table.by_ep:
        raise UserError(f"the profile's MoE table was measured at expert-parallel sizes "
                        f"{', '.join(map(str, sorted(table.by_ep)))}, not {ep}; pick another "
                        "profile or parallel layout")
    return replace(table, ep=int(ep), gather=int(gather), link_gbs=float(link_gbs),
                   link_latency_us=float(latency_us),
                   dispatch_bytes=float((d_model + table.n_experts) * dtype_bytes),
                   combine_bytes=float(d_model * dtype_bytes))


def moe_from_dict(sec: dict) -> MoeTable:
    """The profile's `moe` section: {count, n_experts, top_k, ep, gather, routing,
    rows: [{experts, tokens, us}]} (KeyError / ValueError on a malformed one)."""
    by_ep = {int(ep): (np.asarray(t["tokens"], dtype=float), np.asarray(t["us"], dtype=float))
             for ep, t in (sec.get("by_ep") or {}).items()}
    if by_ep:
        if any(x.shape != u.shape or x.size == 0 or np.any(np.diff(x) <= 0)
               for x, u in by_ep.values()):
            raise ValueError("moe by_ep: each EP size's tokens must increase and match us")
        return MoeTable(float(sec["count"]), int(sec["n_experts"]), int(sec["top_k"]),
                        np.zeros(0), [], int(sec.get("ep", 1)), int(sec.get("gather", 1)),
                        ep_comm=_comm(sec), by_ep=by_ep)
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
                    int(sec.get("ep", 1)), int(sec.get("gather", 1)), routing,
                    ep_comm=_comm(sec))


def _comm(sec: dict) -> dict:
    return {str(n): {op: (np.asarray(t["bytes"], dtype=float), np.asarray(t["us"], dtype=float))
                     for op, t in ops.items()}
            for n, ops in ((sec.get("ep_comm") or {}).get("by_gpus") or {}).items()}


__all__ = ["MoeTable", "moe_from_dict", "expert_parallel", "ROUTINGS"]
