"""The operator-profile cost model: an iteration's time is the sum of measured kernel times of
its shape (LLMServingSim's per-layer composition), read from a kernel-profile JSON.

    dense ops (QKV/O/MLP GEMMs, norms, rotary, activation)  by the iteration's total tokens
    attention                                               by the prefill chunks and cached
                                                            context, decode rows and contexts
    per-sequence ops (LM head, sampler)                     by the iteration's rows
    MoE expert FFN (router + fused experts, `moe`)          by tokens and the expected
                                                            distinct experts (moe_profile.py)
    all-reduce (TP > 1)                                     by bytes = tokens x d_model x dtype
    logits all-gather (TP > 1, `logits_gather` set)         by rows (logits_gather.py)

each multiplied by how many times it runs per iteration (`count`: layers x per-layer uses).
Attention comes in two kinds:
- `grid4`: LLMServingSim's 4-D table over (prefill_chunk, kv_prefill, n_decode, kv_decode) of
  one mixed batch, looked up as their simulator does: all prefill chunks summed into one chunk,
  their cached contexts summed, the decode rows at their mean KV history (kv_decode is the
  tokens cached before this step's one, `profiler/core/hooks/batch.py`: context - 1 here);
  with a `skew` table, rows of different lengths cost t_mean + alpha (t_max - t_mean)
  (backends/skew.py), which needs the longest and shortest decode context: the engine passes
  them (`decode_max`/`decode_min`, `context_max`/`context_min`) to a model whose
  `wants_decode_spread` is true;
- `split`: a prefill grid over (chunk tokens, cached tokens) per sequence, summed over the
  chunks, plus a decode grid over (rows, context) at the mean context (aiconfigurator / roofline);
  with a `mixed` curve, the decode rows of a batch that also prefills cost their tiles by
  context on top (`compose` add) or at least that (max): FlashAttention's tiling of a batch
  that is not decode-only (backends/fa_tiles.py).
Times are microseconds in the JSON, seconds out of the model. Shapes beyond a grid are
extrapolated linearly from its last two samples, with one warning per axis saying how far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from seqsched.backends import kernel_tables
from seqsched.backends.interp import SMALL, max0
from seqsched.backends.kernel_tables import Grid2, Grid4, Op, Slice
from seqsched.backends.moe_profile import MoeTable, moe_from_dict
from seqsched.backends.skew import SkewTable, apply_skew, skew_from_dict
from seqsched.common.errors import UserError

FORMAT = "seqsched-kernel-profile"
VERSION = 1
logger = logging.getLogger("seqsched.backends")


def _zero(q):
    """The start of a sum over ops: a float64 scalar for one query (no 0-d array)."""
    return _ZERO if np.ndim(q) == 0 else np.zeros(np.shape(q))


_ZERO = np.float64(0.0)


@dataclass
class KernelProfileCostModel:
    """`CostModel` from measured kernels (see the module docstring)."""
    dense: list[Op]
    per_sequence: list[Op]
    attention_count: float
    grid4: Grid4 | None = None
    prefill_grid: Grid2 | None = None       # split kind: (chunk tokens, cached tokens)
    decode_grid: Grid2 | None = None        # split kind: (rows, context)
    mixed_row: Op | None = None             # split kind: a decode row's tiles in a mixed batch
    mixed_overlap: bool = False             # ... max(decode-only, tiles), else decode + tiles
    allreduce: Op | None = None             # x = bytes; count = all-reduces per iteration
    allreduce_bytes_per_token: float = 0.0
    logits_gather: Callable | None = None   # rows -> s of the TP logits all-gather
    iteration_overhead_s: float = 0.0
    skew: SkewTable | None = None           # grid4 only: the mixed-context correction
    moe: MoeTable | None = None             # MoE models: the expert FFN table
    name: str = "kernel-profile"
    meta: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)      # axis -> largest profiled value
    warned: dict = field(default_factory=dict)      # axis -> largest query beyond its grid
    _dp_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _check(self, axis: str, value: float) -> None:
        top = self.limits.get(axis)
        if top is None or value <= top * (1 + 1e-9) or axis in self.warned:
            return
        self.warned[axis] = float(value)
        logger.warning("%s: %s %.0f is beyond the profiled grid (max %.0f, %s); "
                       "extrapolating linearly from the last two samples (warned once)",
                       self.name, axis, value, top,
                       f"{value / top:.1f}x" if top > 0 else "only 0 profiled")

    def _linear(self, tokens, rows, moe_tokens=None, moe_largest=None) -> np.ndarray:
        """Dense + per-sequence + all-reduce seconds (tokens/rows scalars or arrays; rows None:
        no per-sequence ops); `moe_tokens`: what the MoE layers gather, when known
        (`moe_largest`: the largest rank's share of it)."""
        t = sum((op.seconds(tokens) for op in self.dense), _zero(tokens))
        if rows is not None:
            t = t + sum((op.seconds(rows) for op in self.per_sequence), _zero(rows))
            if self.logits_gather is not None:
                t = t + self.logits_gather(rows)
        if self.allreduce is not None:
            t = t + self.allreduce.seconds(np.asarray(tokens, float) * self.allreduce_bytes_per_token)
        if self.moe is not None:
            t = t + self.moe.seconds(tokens, moe_tokens, moe_largest)
        return t + self.iteration_overhead_s

    # In a DP lockstep group (sim/lockstep.py) a rank runs its dense layers (and the TP
    # all-reduce) over its DP-padded token count and its MoE layers over the group's gathered
    # tokens; attention and the LM head / sampler see only its real rows (the padded slots
    # have no KV and no logits: vLLM computes logits at `logits_indices` of real requests).
    wants_dp_tokens = True

    def _token_part(self, tokens: int, moe_tokens: int | None,
                    moe_largest: int | None = None) -> float:
        """Dense + all-reduce + MoE seconds of one iteration (memoised: a lockstep group asks
        for the same few padded / gathered counts over and over)."""
        tables, held = (self.dense, self.allreduce, self.moe), self._dp_cache.get("tables")
        if (held is None or any(a is not b for a, b in zip(held, tables))
                or len(self._dp_cache) > 1 << 16):
            self._dp_cache.clear()          # a table was swapped since (cost.moe = ...)
            self._dp_cache["tables"] = tables
        key = (int(tokens), None if moe_tokens is None else int(moe_tokens),
               None if moe_largest is None else int(moe_largest))
        if key not in self._dp_cache:
            self._dp_cache[key] = float(self._linear(float(tokens), None, moe_tokens,
                                                     moe_largest) - self.iteration_overhead_s)
        return self._dp_cache[key]

    def padded_time(self, alone_s: float, tokens: int, rows: int, padded_tokens: int,
                    moe_tokens: int, moe_largest: int | None = None) -> float:
        """The iteration of `tokens` tokens (in `rows` rows) that costs `alone_s` on its own,
        run instead with its dense layers over `padded_tokens` and its MoE layers over the
        group's `moe_tokens` (`moe_largest`: the group's largest rank count, which times the
        EP collectives): only the token-linear ops change (attention and the per-row ops
        see the real rows)."""
        return float(alone_s + self._token_part(max(padded_tokens, tokens), moe_tokens,
                                                moe_largest)
                     - self._token_part(tokens, None))

    def dummy_time(self, padded_tokens: int, moe_tokens: int,
                   moe_largest: int | None = None) -> float:
        """vLLM's `execute_dummy_batch` on an idle DP rank: a one-token forward padded to
        `padded_tokens`, its MoE layers over the group's `moe_tokens`; no attention rows, no
        logits (`_dummy_run` samples nothing)."""
        return (self._token_part(padded_tokens, moe_tokens, moe_largest)
                + self.iteration_overhead_s)

    @property
    def wants_decode_spread(self) -> bool:
        """Whether the engine should pass the decode rows' longest and shortest context."""
        return self.skew is not None

    def _decode_attention(self, rows: int, mean_ctx, max_ctx=None, min_ctx=None,
                          pc: float = 0.0, kp: float = 0.0) -> np.ndarray:
        """Seconds of one layer's attention x layers for `rows` decode rows at contexts
        `mean_ctx` (array: one per iteration); with a grid4 table the same kernel also runs
        the prefill chunk `pc` on `kp` cached tokens. `max_ctx`/`min_ctx` (arrays like
        `mean_ctx`, or None) switch on the skew correction."""
        mean_ctx = np.asarray(mean_ctx, dtype=float)
        self._check("n_decode", rows)
        top = mean_ctx if max_ctx is None else np.asarray(max_ctx, dtype=float)
        self._check("kv_decode", float(np.max(top)) if top.size else 0.0)
        if self.grid4 is None:
            return self.attention_count * self.decode_grid(float(rows), mean_ctx) * 1e-6
        if kernel_tables.FAST and mean_ctx.size <= SMALL:
            few = self._grid4_few(rows, mean_ctx, max_ctx, min_ctx, pc, kp)
            if few is not None:
                return few
        kd = np.maximum(mean_ctx - 1.0, 0.0)        # the profiler's kv_decode: history

        def lookup(q):
            return self.grid4(pc, kp, float(rows), q)
        us = lookup(kd)
        if self.skew is not None and max_ctx is not None and min_ctx is not None and rows > 1:
            kmax = np.maximum(np.asarray(max_ctx, dtype=float) - 1.0, 0.0)
            kmin = np.maximum(np.asarray(min_ctx, dtype=float) - 1.0, 0.0)
            gap = kmax - kmin
            rate = np.where(gap > 0, (kd - kmin) / np.where(gap > 0, gap, 1.0), 0.5)
            alpha = self.skew.lookup(int(pc), rows, rate, kmax, int(kp))
            us = apply_skew(us, lookup(kmax), alpha, rows, kmax <= kd)
        return self.attention_count * us * 1e-6

    def _grid4_few(self, rows: int, mean_ctx: np.ndarray, max_ctx, min_ctx, pc: float,
                   kp: float) -> np.ndarray | None:
        """`_decode_attention` of a grid4 table on Python floats, element by element: the same
        operations in the same order (None: shapes it does not cover, numpy's path)."""
        kd = [max0(v - 1.0) for v in mean_ctx.ravel().tolist()]
        nd, g = float(rows), self.grid4
        us = g.values(float(pc), float(kp), nd, kd)
        if self.skew is not None and max_ctx is not None and min_ctx is not None and rows > 1:
            hi, lo = np.asarray(max_ctx, dtype=float), np.asarray(min_ctx, dtype=float)
            if hi.shape != mean_ctx.shape or lo.shape != mean_ctx.shape:
                return None
            kmax = [max0(v - 1.0) for v in hi.ravel().tolist()]
            kmin = [max0(v - 1.0) for v in lo.ravel().tolist()]
            rate = []
            for d, a, b in zip(kd, kmax, kmin):
                gap = a - b
                rate.append(min(max((d - b) / gap, 0.0), 1.0) if gap > 0 else 0.5)
            alpha = self.skew.values(int(pc), rows, rate, kmax, int(kp))
            top = g.values(float(pc), float(kp), nd, kmax)
            us = [m + al * (t - m) if not (a <= d) and t > m else m
                  for m, t, al, a, d in zip(us, top, alpha, kmax, kd)]
        c = self.attention_count
        return np.array([c * u * 1e-6 for u in us]).reshape(mean_ctx.shape)

    def prefill_time(self, new_tokens, past_tokens, decode_rows: int = 0,
                     decode_context: int = 0, decode_max: int | None = None,
                     decode_min: int | None = None) -> float:
        new = np.asarray(new_tokens, dtype=float).ravel()
        past = np.asarray(past_tokens, dtype=float).ravel()
        decode_rows = int(decode_rows)
        if new.size == 0 and not decode_rows:
            return 0.0
        tokens = float(new.sum()) + decode_rows
        rows = new.size + decode_rows
        self._check("tokens", tokens)
        self._check("sequences", rows)
        mean_ctx = np.array([decode_context / decode_rows if decode_rows else 0.0])
        spread = ((None, None) if decode_max is None or decode_min is None or not decode_rows
                  else (np.array([float(decode_max)]), np.array([float(decode_min)])))
        if new.size == 0:
            attn = float(self._decode_attention(decode_rows, mean_ctx, *spread)[0])
        elif self.grid4 is not None:
            pc, kp = float(new.sum()), float(past.sum())
            self._check("prefill_chunk", pc)
            self._check("kv_prefill", kp)
            attn = float(self._decode_attention(decode_rows, mean_ctx, *spread, pc=pc,
                                                kp=kp)[0])
        else:
            self._check("prefill_chunk", float(new.max()))
            self._check("kv_prefill", float((past + new).max()))
            attn = self.attention_count * float(self.prefill_grid(new, past).sum()) * 1e-6
            if decode_rows:
                dec = float(self._decode_attention(decode_rows, mean_ctx)[0])
                if self.mixed_row is not None:
                    tiles = decode_rows * float(self.mixed_row.seconds(mean_ctx)[0])
                    dec = max(dec, tiles) if self.mixed_overlap else dec + tiles
                attn += dec
        return float(self._linear(tokens, float(rows))) + attn

    def decode_times(self, rows: int, context_sum: int, iterations: int,
                     context_max: int | None = None,
                     context_min: int | None = None) -> np.ndarray:
        """Every row grows by one token per iteration: its mean, longest and shortest
        context each grow by one."""
        if iterations <= 0:
            return np.zeros(0)
        self._check("tokens", rows)
        self._check("sequences", rows)
        step = np.arange(iterations, dtype=float)
        mean_ctx = (context_sum + rows * step) / max(rows, 1)
        spread = ((None, None) if context_max is None or context_min is None
                  else (context_max + step, context_min + step))
        return self._linear(float(rows), float(rows)) + self._decode_attention(
            rows, mean_ctx, *spread)


# -- loading ---------------------------------------------------------------------------------
def _bad(path, what: str) -> UserError:
    return UserError(f"{path}: malformed kernel profile ({what}); regenerate it with "
                     "`seqsched profile import FORMAT PATH --model M --out P.json`")


def _arr(sec: dict, key: str, path, where: str) -> np.ndarray:
    try:
        a = np.asarray(sec[key], dtype=float)
    except (KeyError, TypeError, ValueError):
        raise _bad(path, f"'{where}.{key}' missing or not numbers") from None
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise _bad(path, f"'{where}.{key}' is empty or not finite")
    return a


def _op(name: str, sec: dict, axis: str, path, where: str) -> Op:
    x, us = _arr(sec, axis, path, where), _arr(sec, "us", path, where)
    if x.shape != us.shape or np.any(np.diff(x) <= 0):
        raise _bad(path, f"'{where}': {axis} must increase and match 'us' in length")
    return Op(name, float(sec.get("count", 1)), x, us)


def _grid2(sec: dict, a0: str, a1: str, path, where: str) -> Grid2:
    x0, x1, us = (_arr(sec, a0, path, where), _arr(sec, a1, path, where),
                  _arr(sec, "us", path, where))
    if us.shape != (len(x0), len(x1)):
        raise _bad(path, f"'{where}.us' is not a {len(x0)} x {len(x1)} grid")
    return Grid2(x0, x1, us)


def kernel_profile_from_dict(data: dict, path: str = "<profile>") -> KernelProfileCostModel:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(path, f"'format' is not {FORMAT!r}")
    if data.get("version") != VERSION:
        raise _bad(path, f"version {data.get('version')!r}, this seqsched reads {VERSION}")
    for key in ("dense", "per_sequence", "attention"):
        if not isinstance(data.get(key), dict):
            raise _bad(path, f"no '{key}' section")
    dense = [_op(k, v, "tokens", path, f"dense.{k}") for k, v in data["dense"].items()]
    per_seq = [_op(k, v, "sequences", path, f"per_sequence.{k}")
               for k, v in data["per_sequence"].items()]
    att = data["attention"]
    model = KernelProfileCostModel(dense, per_seq, float(att.get("count", 1)),
                                   name=f"profile:{data.get('name', 'kernel')}",
                                   meta={k: v for k, v in data.items()
                                         if k not in ("dense", "per_sequence", "attention",
                                                      "allreduce")})
    limits = {"tokens": max(float(op.x[-1]) for op in dense) if dense else None,
              "sequences": max(float(op.x[-1]) for op in per_seq) if per_seq else None}
    if att.get("kind") == "grid4":
        slices = {}
        for i, s in enumerate(att.get("slices") or []):
            where = f"attention.slices[{i}]"
            try:
                key = (int(s["pc"]), int(s["nd"]))
                rows = [(_arr(r, "kd", path, where), _arr(r, "us", path, where))
                        for r in s["rows"]]
                kp = np.array([float(r["kp"]) for r in s["rows"]])
            except (KeyError, TypeError, ValueError):
                raise _bad(path, f"{where} needs pc, nd and rows of kp, kd, us") from None
            if not rows or np.any(np.diff(kp) <= 0) or any(
                    kd.shape != us.shape or np.any(np.diff(kd) <= 0) for kd, us in rows):
                raise _bad(path, f"{where}: kp and each row's kd must increase, kd match us")
            slices[key] = Slice(kp, rows)
        if not slices:
            raise _bad(path, "'attention.slices' is empty")
        model.grid4 = Grid4(slices)
        if isinstance(att.get("skew"), dict):
            try:
                model.skew = skew_from_dict(att["skew"])
            except (KeyError, TypeError, ValueError, IndexError):
                raise _bad(path, "'attention.skew' needs alpha_default, axes and rows of "
                                 "bucket indices") from None
        limits.update(prefill_chunk=model.grid4.pc[-1], n_decode=model.grid4.nd[-1],
                      kv_prefill=max(float(g.kp[-1]) for g in slices.values()),
                      kv_decode=max(float(r[0][-1]) for g in slices.values() for r in g.rows))
    elif att.get("kind") == "split":
        for part in ("prefill", "decode"):
            if not isinstance(att.get(part), dict):
                raise _bad(path, f"no 'attention.{part}' grid")
        model.prefill_grid = _grid2(att["prefill"], "tokens", "cached", path, "attention.prefill")
        model.decode_grid = _grid2(att["decode"], "rows", "context", path, "attention.decode")
        if isinstance(att.get("mixed"), dict):
            model.mixed_row = _op("mixed", {**att["mixed"], "count": model.attention_count},
                                  "context", path, "attention.mixed")
            model.mixed_overlap = att["mixed"].get("compose") == "max"
        limits.update(prefill_chunk=model.prefill_grid.ax0[-1],
                      kv_prefill=model.prefill_grid.ax1[-1],
                      n_decode=model.decode_grid.ax0[-1], kv_decode=model.decode_grid.ax1[-1])
    else:
        raise _bad(path, f"attention kind {att.get('kind')!r}, expected 'grid4' or 'split'")
    if isinstance(data.get("allreduce"), dict):
        model.allreduce = _op("allreduce", data["allreduce"], "bytes", path, "allreduce")
        model.allreduce_bytes_per_token = float(data["allreduce"].get("bytes_per_token", 0))
    if isinstance(data.get("moe"), dict):
        try:
            model.moe = moe_from_dict(data["moe"])
        except (KeyError, TypeError, ValueError) as e:
            raise _bad(path, f"'moe' needs count, n_experts, top_k and rows of experts, "
                             f"tokens, us ({e})") from None
    model.iteration_overhead_s = float(data.get("iteration_overhead_us", 0.0)) * 1e-6
    model.limits = {k: float(v) for k, v in limits.items() if v is not None}
    return model


__all__ = ["KernelProfileCostModel", "kernel_profile_from_dict", "Op", "Grid2", "Grid4", "Slice",
           "FORMAT", "VERSION"]
