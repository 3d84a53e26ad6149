"""LLMServingSim's mixed-decode-context ("skew") correction for a kernel profile's attention.

The attention grid is measured with every decode row at one context; a real batch has rows of
different lengths and FlashAttention's varlen kernel is slightly slower on it than on a uniform
batch of the same total KV (tile padding, SM imbalance). LLMServingSim's profiler measures that
(`profiler/core/skew.py`: t_mean, t_max and t_skew of bimodal batches) and fits, per bucket,

    t_skew = t_mean + alpha * (t_max - t_mean)

(`profiler/core/fit_alpha.py`, written to `tp<N>/skew_fit.csv`). The simulator looks alpha up
per batch by the key (prefill chunk exactly as profiled, decode rows n, skew rate
sr = (mean - min) / (max - min), the longest decode context kv_big, the prefill's cached
context kp), falling back to the pooled `alpha_default` when the bucket was not fitted
(`serving/core/trace_generator.py`: `_skew_alpha`, `_lookup_attention_with_skew`,
casys-kaist/LLMServingSim @ 5daddb2, MIT). This module holds that table and its lookup,
vectorised over iterations (k decode iterations differ only in kv_big).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

# LLMServingSim's `_DEFAULT_SKEW_AXES`: the bucket edges when a bundle's meta does not list them
DEFAULT_AXES = {
    "n_bins": [0, 2, 4, 8, 16, 32, 64, 128, 1_000_000],
    "n_labels": ["n<=2", "n<=4", "n<=8", "n<=16", "n<=32", "n<=64", "n<=128", "n>128"],
    "kv_big_bins": [0, 1024, 4096, 16384, 1_000_000_000],
    "kv_big_labels": ["kvB<=1k", "kvB<=4k", "kvB<=16k", "kvB>16k"],
    "skew_rate_bins": [-0.01, 0.05, 0.15, 0.40, 0.70, 1.01],
    "skew_rate_labels": ["sr<=5%", "sr<=15%", "sr<=40%", "sr<=70%", "sr>70%"],
    "kp_bins": [-1, 0, 2048, 1_000_000_000],
    "kp_labels": ["kp=0", "kp<=2k", "kp>2k"],
}
AXES = ("n", "skew_rate", "kv_big", "kp")


def bucket(edges, values) -> np.ndarray:
    """Label index of each value: bucket i is (bins[i], bins[i+1]], values above the last edge
    fall in the last bucket (`_bucket_label`). `edges` = bins[1:] (one per label)."""
    edges = np.asarray(edges, dtype=float)
    return np.minimum(np.searchsorted(edges, np.asarray(values, dtype=float), side="left"),
                      len(edges) - 1)


@dataclass
class SkewTable:
    default: float                  # the pooled fit: buckets the profiler did not fill
    edges: dict                     # axis -> upper bucket edges (bins[1:]), one per label
    pcs: dict                       # profiled prefill chunk -> index into alpha's first axis
    alpha: np.ndarray               # [pc, n, skew_rate, kv_big, kp], NaN where not fitted

    def lookup(self, pc: int, n: int, skew_rate, kv_big, kp: int) -> np.ndarray:
        """alpha per query (skew_rate and kv_big broadcast together)."""
        sr, kvb = np.broadcast_arrays(np.clip(np.asarray(skew_rate, dtype=float), 0.0, 1.0),
                                      np.asarray(kv_big, dtype=float))
        i = self.pcs.get(int(pc))
        if i is None:
            return np.full(sr.shape, self.default)
        if sr.size <= 64:           # a step's few iterations: bisect on lists, no numpy calls
            return np.array(self.values(pc, n, sr.ravel().tolist(), kvb.ravel().tolist(),
                                        kp)).reshape(sr.shape)
        a = self.alpha[i, int(bucket(self.edges["n"], n)), bucket(self.edges["skew_rate"], sr),
                       bucket(self.edges["kv_big"], kvb), int(bucket(self.edges["kp"], kp))]
        return np.where(np.isnan(a), self.default, a)

    def values(self, pc: int, n: int, sr: list, kvb: list, kp: int) -> list:
        """`lookup` by `bisect_left` (searchsorted's side="left") on the edges as lists
        (`sr` already clipped to [0, 1])."""
        i = self.pcs.get(int(pc))
        if i is None:
            return [self.default] * len(sr)
        e = self.__dict__.get("_edges")
        if e is None or e[0] is not self.edges:
            e = self.__dict__["_edges"] = (self.edges, {a: [float(v) for v in self.edges[a]]
                                                        for a in AXES})
        e = e[1]

        def at(axis: str, v: float) -> int:
            return min(bisect_left(e[axis], v), len(e[axis]) - 1)
        block = self.alpha[i, at("n", float(n))]
        k = at("kp", float(kp))
        out = [float(block[at("skew_rate", r), at("kv_big", b), k]) for r, b in zip(sr, kvb)]
        return [self.default if a != a else a for a in out]


def apply_skew(t_mean, t_max, alpha, rows: int, uniform) -> np.ndarray:
    """t_mean + alpha (t_max - t_mean), left at t_mean for one row, a uniform batch, or
    where the lookup gives t_max <= t_mean (the grid's edge; LLMServingSim's guard)."""
    t_mean = np.asarray(t_mean, dtype=float)
    if rows <= 1:
        return t_mean
    use = ~np.asarray(uniform, dtype=bool) & (t_max > t_mean)
    return np.where(use, t_mean + alpha * (t_max - t_mean), t_mean)


def skew_from_dict(sec: dict) -> SkewTable:
    """The profile JSON's `attention.skew` section (written by `skew_section`)."""
    edges = {a: np.asarray(sec["axes"][a], dtype=float) for a in AXES}
    pcs = [int(v) for v in sec.get("pc_values", [])]
    shape = (max(len(pcs), 1),) + tuple(len(edges[a]) for a in AXES)
    alpha = np.full(shape, np.nan)
    rows = sec.get("rows") or {}
    if pcs and rows.get("alpha"):
        idx = tuple(np.asarray(rows[k], dtype=np.int64) for k in ("pc", *AXES))
        alpha[idx] = np.asarray(rows["alpha"], dtype=float)
    return SkewTable(float(sec["alpha_default"]), edges, {p: i for i, p in enumerate(pcs)},
                     alpha)


def skew_section(alpha_default: float, axes: dict | None, table=None) -> dict:
    """The profile JSON's `attention.skew` from a fit's bucket axes and its bucket table
    (a DataFrame with pc, n_label, skew_rate_label, kv_big_label, kp_label, alpha; None: the
    pooled alpha only). Label strings become indices into each axis."""
    axes = axes or DEFAULT_AXES
    out = {"alpha_default": float(alpha_default),
           "axes": {a: [float(v) for v in axes[f"{a}_bins"][1:len(axes[f"{a}_labels"]) + 1]]
                    for a in AXES},
           "labels": {a: list(axes[f"{a}_labels"]) for a in AXES}}
    if table is None or table.empty:
        return out
    pcs = sorted(int(v) for v in table["pc"].unique())
    pos = {p: i for i, p in enumerate(pcs)}
    cols = {"pc": [pos[int(v)] for v in table["pc"]]}
    for a in AXES:
        index = {label: i for i, label in enumerate(axes[f"{a}_labels"])}
        cols[a] = [index[str(v)] for v in table[f"{a}_label"]]
    cols["alpha"] = [float(f"{float(v):.4g}") for v in table["alpha"]]
    out["pc_values"] = pcs
    out["rows"] = cols
    return out


__all__ = ["SkewTable", "apply_skew", "bucket", "skew_from_dict", "skew_section",
           "DEFAULT_AXES"]
