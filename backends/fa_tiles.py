"""The decode rows of a mixed prefill + decode batch, as vLLM's FlashAttention backend runs them:
what they cost beyond a decode-only batch, from FlashAttention's tiling and a measured
context-attention table (no fitted constant).

vLLM V1's FLASH_ATTN backend runs a whole batch as ONE `flash_attn_varlen_func` call on the
paged KV cache (vllm/v1/attention/backends/flash_attn.py:741 @ vLLM 0.19.0). Which kernel runs,
and how it tiles a one-token query, depends on the FlashAttention version vLLM picks by GPU
(`get_flash_attn_version`, vllm/v1/attention/backends/fa_utils.py:56-83: SM 9.x FA3, SM 10.x
FA4, everything else FA2). vllm-project/flash-attention @ 617264c:

- FA2 (SM 8.x, 12.x): `mha_varlen_fwd` (csrc/flash_attn/flash_api.cpp:646) packs the query
  heads of a KV group into the rows of one tile ("seqlenq_ngroups_swapped") only when
  max_seqlen_q == 1, i.e. a decode-only batch; otherwise every query head of every sequence
  gets its own kBlockM-row tile. Paged KV always takes the split-KV kernel (`run_mha_fwd(...,
  paged_KV)`, :798), kBlockM = 64, kBlockN = 256 / 128 / 64 for head dim <= 64 / <= 128 / more
  (csrc/flash_attn/src/flash_fwd_launch_template.h:180-184; vLLM passes num_splits = 0 to FA2).
  A decode row therefore costs n_q x 64 MMA rows per key block in a mixed batch against
  n_kv x 64 x ceil(g / 64) in a decode-only one (g = n_q / n_kv).
- FA3 (SM 9.x): PackGQA is always on for paged KV without TMA (vLLM's 16-token pages are not a
  multiple of kBlockN; hopper/flash_api.cpp:476-479 `get_pack_gqa`), so a tile covers the g
  query heads of one KV head; kBlockM = 64 when max_seqlen_q x g <= 64 (decode-only: one MMA
  warpgroup, hopper/heuristics.h:10-13) and 128 otherwise (hopper/tile_size.h:40-45), kBlockN
  128 (causal / paged without TMA). A decode row costs n_kv x 128 x ceil(g / 128) rows in a
  mixed batch against n_kv x 64 x ceil(g / 64) alone.
- FA4 (SM 10.x) and unknown GPUs: not modelled (no extra cost).

Tiles are timed at the rate the same kernel reaches on a measured causal prefill whose CTAs
hold as many key blocks on average (a CTA's fixed cost is amortised over its key blocks: short
CTAs cost more per tile). How they add to the decode kernel's measured time (which holds the
rows' KV traffic and their own tiles) follows the kernel's pipeline:
- FA2 ("add"): the decode-only time plus the MMA rows the packed decode kernel does not
  compute. FA2's mainloop issues the next key block's loads, then computes the current one in
  the same warps (csrc/flash_attn/src/flash_fwd_kernel.h, `compute_attn_1rowblock_splitkv`):
  little of the added math hides under the KV reads;
- FA3 ("max"): producer warps load K/V while consumer warpgroups compute
  (hopper/mainloop_fwd_sm90_tma_gmma_ws.hpp), so the rows cost the larger of the decode-only
  time (same KV bytes: PackGQA reads each KV head once) and their tiles' compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# CUDA compute capability of the built-in GPUs (NVIDIA CUDA GPUs list), x 10
SM_ARCH = {"A100-40GB": 80, "A100-80GB": 80, "H100-SXM": 90, "H100-PCIe": 90, "H200": 90,
           "L4": 89, "L40S": 89, "RTX-4090": 89, "RTX-3090": 86, "RTX-A6000": 86,
           "RTX-PRO-6000": 120}


def fa_version(sm: int | None) -> int | None:
    """FlashAttention version vLLM 0.19 runs on compute capability `sm` (x 10); None: FA4 or
    unknown, whose tiling is not modelled here."""
    if sm is None or sm // 10 == 10:
        return None
    return 3 if sm // 10 == 9 else 2


@dataclass(frozen=True)
class Tiling:
    """One FlashAttention version's tiles for a model's per-GPU heads."""
    version: int
    n_heads: int
    n_kv_heads: int
    head_dim: int

    @property
    def group(self) -> int:
        return max(self.n_heads // max(self.n_kv_heads, 1), 1)

    @property
    def block_n(self) -> int:
        if self.version == 3:
            return 128
        return 256 if self.head_dim <= 64 else (128 if self.head_dim <= 128 else 64)

    @property
    def block_m(self) -> int:
        """The prefill kernel's query tile (rows of packed heads for FA3)."""
        return 128 if self.version == 3 else 64

    def decode_rows(self, mixed: bool) -> int:
        """MMA rows a one-token query costs per key block, in a mixed or decode-only batch."""
        g = self.group
        if self.version == 3:
            m = 128 if mixed else 64
            return self.n_kv_heads * m * -(-g // m)
        if mixed:
            return self.n_heads * 64
        return self.n_kv_heads * 64 * -(-g // 64)

    def prefill_tiles(self, isl) -> tuple[np.ndarray, np.ndarray]:
        """(tiles, CTAs) of one causal prefill of `isl` tokens (no cached prefix), all heads:
        query block m (of block_m rows; FA3 packs g heads a row) sees key blocks up to its
        last query, ceil(q_end / block_n)."""
        out_t, out_c = [], []
        for s in np.atleast_1d(np.asarray(isl, dtype=float)):
            rows = s * (self.group if self.version == 3 else 1)
            m = np.arange(int(np.ceil(rows / self.block_m)), dtype=float)
            per_row = self.group if self.version == 3 else 1
            q_end = np.minimum((m + 1) * self.block_m / per_row, s)
            heads = self.n_kv_heads if self.version == 3 else self.n_heads
            out_t.append(heads * np.ceil(q_end / self.block_n).sum())
            out_c.append(heads * m.size)
        return np.array(out_t), np.array(out_c)


def tile_rate(tiling: Tiling, isl, batch, latency_us) -> tuple[np.ndarray, np.ndarray]:
    """(mean key blocks per CTA, us per tile) of measured causal prefills (no cached prefix):
    per prompt length the largest measured batch (the most saturated launch), from
    2 x block_n tokens up (shorter ones give every CTA the same single key block)."""
    isl, batch, lat = (np.asarray(v, dtype=float) for v in (isl, batch, latency_us))
    keep = (isl >= 2 * tiling.block_n) & np.isfinite(lat) & (lat > 0)
    isl, batch, lat = isl[keep], batch[keep], lat[keep]
    order = np.lexsort((-batch, isl))
    isl, batch, lat = isl[order], batch[order], lat[order]
    first = np.r_[True, isl[1:] != isl[:-1]]
    isl, batch, lat = isl[first], batch[first], lat[first]
    tiles, ctas = tiling.prefill_tiles(isl)
    return tiles / ctas, lat / (batch * tiles)


def tiling_for(gpu: str, n_heads: int, n_kv_heads: int, head_dim: int) -> Tiling | None:
    """The tiling vLLM's FlashAttention uses on built-in GPU `gpu` for these per-GPU heads;
    None where it is not modelled (FA4, a GPU of unknown architecture)."""
    version = fa_version(SM_ARCH.get(gpu))
    return None if version is None else Tiling(version, n_heads, max(n_kv_heads, 1), head_dim)


def compose(tiling: Tiling) -> str:
    """How a mixed batch's decode-row tiles combine with the decode-only time (docstring)."""
    return "max" if tiling.version == 3 else "add"


def mixed_extra_us(tiling: Tiling, context, blocks_per_cta, us_per_tile) -> np.ndarray:
    """us (one layer) of a decode row of `context` tokens (cached + this step's) in a mixed
    batch, to compose with the decode-only time as `compose` says: the MMA rows it adds (add)
    or all its rows (max), per key block, in tiles of the prefill kernel at that kernel's
    per-tile time for CTAs of as many key blocks."""
    nb = np.ceil(np.maximum(np.asarray(context, dtype=float), 1.0) / tiling.block_n)
    rows = tiling.decode_rows(True) - (tiling.decode_rows(False)
                                       if compose(tiling) == "add" else 0)
    rate = np.interp(nb, blocks_per_cta, us_per_tile)
    return nb * max(rows, 0) / tiling.block_m * rate


__all__ = ["SM_ARCH", "fa_version", "Tiling", "tile_rate", "mixed_extra_us", "compose",
           "tiling_for"]
