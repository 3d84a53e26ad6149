"""Shape-dependent achieved efficiencies for the roofline, measured on kernels of one GPU
(backends/profiles/roofline_efficiency.json, scripts/derive_roofline_efficiency.py): one scalar
share of the datasheet cannot fit both a 1-token GEMM (weight streaming, launch-bound) and a
2,048-token one (compute-bound, with a dip at the ridge where neither bound is reached).

- `gemm_m` / `gemm_efficiency`: measured time of a bf16 GEMM = its roofline bound
  max(2mnk / peak, bytes / bandwidth) / efficiency(m), the median over the measured (n, k) at
  each token count m; piecewise linear in log2(m) between grid points, constant beyond the ends;
- `prefill_attention_efficiency`: achieved share of the peak FLOP/s of causal prefill
  attention (large kernels); `decode_attention_bandwidth`: achieved share of the bandwidth
  reading the KV cache (large kernels); `attention_floor_us`: one attention kernel's time at a
  tiny shape (per layer and iteration);
- `kernel_floor_us`: the shortest kernels' time (small GEMMs), charged to every elementwise
  kernel (two fused add-RMSNorms, rotary, SiLU-and-mul per layer, Qwen3's q/k RMSNorm;
  embedding and final norm),
  whose bytes stream at `elementwise_bandwidth` (the skinny-GEMM bandwidth share).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

ELEMENTWISE_PER_LAYER = 4        # fused add+RMSNorm x2, rotary, SiLU-and-mul (vLLM Llama layer)
ELEMENTWISE_OUTSIDE = 2          # embedding gather, final norm


@dataclass(frozen=True)
class KernelShape:
    gemm_m: tuple
    gemm_efficiency: tuple
    prefill_attention_efficiency: float
    decode_attention_bandwidth: float
    attention_floor_us: float
    kernel_floor_us: float
    elementwise_bandwidth: float
    source: str = ""
    _log_m: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m, e = tuple(float(x) for x in self.gemm_m), tuple(float(x) for x in self.gemm_efficiency)
        if not m or len(m) != len(e) or any(b <= a for a, b in zip(m, m[1:])) or m[0] < 1:
            raise ValueError("gemm_m must be increasing token counts >= 1, one efficiency each")
        scalars = (self.prefill_attention_efficiency, self.decode_attention_bandwidth,
                   self.elementwise_bandwidth, *e)
        if any(not 0 < x <= 1 for x in scalars) or min(self.attention_floor_us,
                                                       self.kernel_floor_us) < 0:
            raise ValueError("efficiencies must lie in (0, 1] and floors be >= 0")
        object.__setattr__(self, "gemm_m", m)
        object.__setattr__(self, "gemm_efficiency", e)
        object.__setattr__(self, "_log_m", tuple(math.log2(x) for x in m))

    def at(self, m: float) -> tuple[float, int]:
        """(achieved share of the roofline bound of a GEMM over `m` tokens, how many grid
        token counts are <= m); a Python float, so the cost model's step times are the same
        double in numpy and in scalar code."""
        grid, e = self.gemm_m, self.gemm_efficiency
        i = bisect_right(grid, m)
        if i == 0:
            return e[0], 0
        if i == len(grid):
            return e[-1], i
        lm = self._log_m
        t = (math.log2(m) - lm[i - 1]) / (lm[i] - lm[i - 1])
        return e[i - 1] + t * (e[i] - e[i - 1]), i

    def gemm(self, m: float) -> float:
        return self.at(m)[0]

    def below(self, m: float) -> int:
        return self.at(m)[1]


def shape_from_entry(entry: dict) -> KernelShape | None:
    """The KernelShape of one GPU's JSON entry; None when it has no GEMM curve."""
    if "gemm_m" not in entry:
        return None
    return KernelShape(tuple(entry["gemm_m"]), tuple(entry["gemm_efficiency"]),
                       float(entry["prefill_attention_efficiency"]),
                       float(entry["decode_attention_bandwidth"]),
                       float(entry["attention_floor_us"]), float(entry["kernel_floor_us"]),
                       float(entry["bandwidth_efficiency"]), str(entry.get("source", "")))


__all__ = ["KernelShape", "shape_from_entry", "ELEMENTWISE_PER_LAYER", "ELEMENTWISE_OUTSIDE"]
