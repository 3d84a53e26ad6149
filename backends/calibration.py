"""Calibration: measure a live model's step times on a grid of batch shapes and fit the profile
cost model (backends/profile.py).

Every point is measured through the `LiveExecutor` itself (the same code path that validation
and live runs use), with warm-up and repeats (the median is kept):

* prefill, static: a padded batch of B rows x L prompt tokens, one iteration;
* prefill, continuous: B rows each continuing a cached prompt of `past` tokens with a chunk of
  `new` tokens; and mixed iterations: one fresh prompt of `new` tokens plus D decode rows of
  context c (what a continuous batch runs when a request joins);
* decode: a padded batch of B rows x L prompt tokens, then `decode_iterations` decode
  iterations; each decode iteration's time is a sample at context_sum = B * (L + i).

Points whose KV cache or attention scores would not fit the device's free memory are skipped
(and a CUDA out-of-memory error on a point skips it too).
"""

from __future__ import annotations

import datetime as _dt
import platform
import statistics
from dataclasses import dataclass, field

from seqsched.common.errors import UserError


@dataclass
class Grid:
    prefill_batches: list[int]
    prefill_lengths: list[int]
    decode_batches: list[int]
    decode_contexts: list[int]
    chunk_points: list[tuple[int, int, int]] = field(default_factory=list)   # (rows, past, new)
    mixed_points: list[tuple[int, int, int]] = field(default_factory=list)   # (new, D, context)
    step_points: list[tuple[int, int]] = field(default_factory=list)        # (D, context)
    max_prefill_tokens: int = 1 << 30       # B * L bound for prefill points
    max_decode_tokens: int = 1 << 30        # B * context bound for decode points
    decode_iterations: int = 8
    warmup: int = 1
    repeats: int = 3


DECODE_SETTLE = 2      # decode iterations run after the prefill before sampling


GRIDS = {
    # the CPU tiny model (CI profile): seconds of work
    "cpu": Grid([1, 4, 16, 64, 256], [16, 64, 128, 256, 448], [1, 4, 16, 64, 256],
                [32, 128, 384, 768],
                chunk_points=[(1, 32, 16), (4, 32, 16), (1, 128, 64), (4, 128, 64), (8, 64, 32),
                              (64, 128, 128), (128, 128, 64), (160, 192, 192)],
                mixed_points=[(16, 4, 32), (64, 4, 128), (16, 16, 64), (64, 16, 128),
                              (32, 8, 256)],
                # up to the ~250 rows x ~100-600 cached tokens an offline continuous run holds
                step_points=[(4, 64), (16, 128), (32, 256), (64, 128), (16, 512), (128, 64),
                             (256, 128), (192, 256), (128, 448)],
                max_prefill_tokens=65536, max_decode_tokens=32768, decode_iterations=8,
                warmup=1, repeats=5),
    # a quick grid for tests
    "quick": Grid([1, 4], [8, 32], [1, 4, 8], [16, 64],
                  chunk_points=[(1, 16, 8), (4, 16, 8)], mixed_points=[(8, 2, 16), (16, 4, 32)],
                  step_points=[(2, 16), (4, 32), (8, 16)],
                  max_prefill_tokens=512, decode_iterations=4, warmup=1, repeats=2),
    # a GPU serving a 7B-class model: the paper's shapes (prompts up to ~450 tokens, outputs up
    # to 512, batches 16..256)
    "gpu": Grid([1, 2, 4, 8, 16, 32, 64, 128, 256], [16, 32, 64, 128, 256, 512, 1024],
                [1, 4, 16, 32, 64, 128, 192, 256], [64, 256, 512, 1024],
                chunk_points=[(1, 256, 128), (4, 256, 128), (1, 512, 512), (8, 128, 64),
                              (16, 256, 32), (64, 256, 256), (128, 256, 128)],
                mixed_points=[(128, 8, 256), (512, 8, 512), (128, 32, 256), (256, 64, 384),
                              (64, 128, 512), (512, 32, 768)],
                step_points=[(8, 256), (32, 256), (64, 512), (128, 256), (16, 1024),
                             (192, 128), (256, 384), (128, 768)],
                max_prefill_tokens=65536, max_decode_tokens=131072, decode_iterations=8,
                warmup=1, repeats=3),
}


def _host_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_meta(executor) -> dict:
    import torch

    dev = executor.device
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        total = torch.cuda.get_device_properties(dev).total_memory
        return {"type": "cuda", "name": name, "memory_gib": round(total / 2**30, 1),
                "cuda": torch.version.cuda, "host": _host_name()}
    return {"type": "cpu", "name": _host_name(), "threads": torch.get_num_threads()}


class _Budget:
    """Skip points that would not fit: KV cache and eager attention scores vs free memory."""

    def __init__(self, executor) -> None:
        from seqsched.backends.live.model import DTYPE_BYTES, free_memory_bytes

        shape = executor.lm.shape
        self.bytes = DTYPE_BYTES[executor.lm.dtype_name]
        self.kv_per_token = (2 * shape["n_layers"] * shape["n_kv_heads"]
                             * (shape["d_model"] // shape["n_heads"]) * self.bytes)
        self.heads = shape["n_heads"]
        self.vocab = shape["vocab_size"]
        self.d_model = shape["d_model"]
        self.d_ff = shape["d_ff"]
        self.free = free_memory_bytes(executor.device) * 0.8

    def fits(self, rows: int, query: int, context: int) -> bool:
        kv = rows * (context + query) * self.kv_per_token * 1.1
        scores = rows * self.heads * query * (context + query) * (2 * self.bytes + 4)
        acts = rows * query * (4 * self.d_model + 3 * self.d_ff) * self.bytes
        logits = rows * self.vocab * 4
        return kv + scores + acts + logits < self.free


def _seqs(tag: str, rows: int, prompt: int, out: int = 1_000_000):
    from seqsched.sim.sequence import Seq
    return [Seq(j, f"__cal_{tag}_{j}", 0.0, prompt, out, out, target_tokens=out)
            for j in range(rows)]


def _cleanup(executor, seqs) -> None:
    for s in seqs:
        executor.release(s)
        executor.outputs.pop(s.id, None)
        executor._prompts.pop(s.id, None)


def _is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _empty_cache(executor) -> None:
    import torch
    if executor.device.type == "cuda":
        torch.cuda.empty_cache()


def measure_prefill_static(executor, rows: int, length: int, warmup: int, repeats: int) -> float:
    from seqsched.sim.step import Step
    times = []
    for i in range(warmup + repeats):
        seqs = _seqs(f"ps{i}", rows, length)
        res = executor.run(Step(seqs, [length] * rows, padded=True), 1, None)
        _cleanup(executor, seqs)
        if i >= warmup:
            times.append(res.duration_s)
    return statistics.median(times)


def measure_chunk(executor, rows: int, past: int, new: int, warmup: int, repeats: int) -> float:
    from seqsched.sim.step import Step
    times = []
    for i in range(warmup + repeats):
        seqs = _seqs(f"pc{i}", rows, past + new)
        executor.run(Step(seqs, [past] * rows), 1, None)
        for s in seqs:
            s.prefilled = past
        res = executor.run(Step(seqs, [new] * rows), 1, None)
        _cleanup(executor, seqs)
        if i >= warmup:
            times.append(res.duration_s)
    return statistics.median(times)


def _decoding(executor, prefix: str, rows: int, context: int) -> list:
    """`rows` requests prefilled live to `context - 1` prompt tokens plus one generated token,
    ready for a decode iteration that attends to `context` positions."""
    from seqsched.sim.step import Step
    seqs = _seqs(prefix, rows, context - 1)
    executor.run(Step(seqs, [context - 1] * rows), 1, None)
    for s in seqs:
        s.prefilled, s.generated = context - 1, 1
    return seqs


def measure_mixed(executor, new: int, decode_rows: int, context: int, warmup: int,
                  repeats: int) -> float:
    """One fresh prompt of `new` tokens joining `decode_rows` rows that attend to `context`
    positions each (cached prompt context-1, one generated token)."""
    from seqsched.sim.step import Step
    times = []
    for i in range(warmup + repeats):
        dec = _decoding(executor, f"md{i}", decode_rows, context)
        fresh = _seqs(f"mf{i}", 1, new)
        res = executor.run(Step(fresh + dec, [new] + [0] * decode_rows), 1, None)
        _cleanup(executor, dec + fresh)
        if i >= warmup:
            times.append(res.duration_s)
    return statistics.median(times)


def measure_step(executor, rows: int, context: int, warmup: int, repeats: int) -> float:
    """One pure-decode iteration of a continuous step: `rows` rows attending to `context`
    positions each (their KV is gathered from and scattered back to per-request caches)."""
    from seqsched.sim.step import Step
    times = []
    for i in range(warmup + repeats):
        seqs = _decoding(executor, f"cs{i}", rows, context)
        res = executor.run(Step(seqs, [0] * rows), 1, None)
        _cleanup(executor, seqs)
        if i >= warmup:
            times.append(res.duration_s)
    return statistics.median(times)


def measure_decode(executor, rows: int, context: int, iterations: int, warmup: int,
                   repeats: int) -> tuple[float, float]:
    """Median decode-iteration seconds of a padded batch of `rows` x `context` prompt tokens,
    and the context_sum at the middle sampled decode iteration. The first DECODE_SETTLE decode
    iterations after the prefill are run but not sampled: on a CPU they run ~8% slower while
    the prefill's activations leave the caches, which a long decode never sees."""
    from seqsched.sim.step import Step
    samples = []
    settle = DECODE_SETTLE
    for i in range(warmup + repeats):
        seqs = _seqs(f"d{i}", rows, context)
        executor.run(Step(seqs, [context] * rows, padded=True), settle + iterations + 1, None)
        _cleanup(executor, seqs)
        if i >= warmup:
            samples.extend(executor.iteration_s[1 + settle:])
    mid = settle + (iterations + 1) / 2.0      # sampled iterations settle+1..settle+iterations
    return statistics.median(samples), rows * (context + mid)


def calibrate(executor, grid: Grid | str = "cpu", progress: bool = False,
              name: str | None = None) -> dict:
    """Measure `executor` on `grid` and return the fitted profile dict."""
    import torch
    import transformers
    from tqdm import tqdm

    from seqsched.backends.profile import build_profile

    if isinstance(grid, str):
        if grid not in GRIDS:
            raise UserError(f"unknown calibration grid {grid!r}; choose one of "
                            f"{', '.join(GRIDS)}")
        grid_name, grid = grid, GRIDS[grid]
    else:
        grid_name = "custom"
    budget = _Budget(executor)
    jobs = []
    for b in grid.prefill_batches:
        for length in grid.prefill_lengths:
            if b * length <= grid.max_prefill_tokens and budget.fits(b, length, 0):
                jobs.append(("prefill", b, length))
    for (b, past, new) in grid.chunk_points:
        if budget.fits(b, new, past):
            jobs.append(("chunk", b, past, new))
    for (new, d, ctx) in grid.mixed_points:
        if budget.fits(d + 1, new, ctx):
            jobs.append(("mixed", new, d, ctx))
    for (d, ctx) in grid.step_points:
        if budget.fits(d, ctx, 0):
            jobs.append(("step", d, ctx))
    for b in grid.decode_batches:
        for ctx in grid.decode_contexts:
            if (b * ctx <= grid.max_decode_tokens
                    and budget.fits(b, ctx, grid.decode_iterations + DECODE_SETTLE)
                    and budget.fits(b, 1, ctx + 16)):
                jobs.append(("decode", b, ctx))
    # measure in a seeded random order: a burst of load on a shared machine (or a clock
    # change) then spreads over the grid instead of biasing one corner of it
    import random
    random.Random(0).shuffle(jobs)
    executor.warmup()
    prefill_points, decode_points, step_points, skipped = [], [], [], []
    w, r = grid.warmup, grid.repeats
    for job in tqdm(jobs, desc="calibrating", unit="pt", disable=not progress, leave=False):
        try:
            if job[0] == "prefill":
                _, b, length = job
                t = measure_prefill_static(executor, b, length, w, r)
                prefill_points.append({"kind": "static", "new": [length] * b, "past": [0] * b,
                                       "seconds": t})
            elif job[0] == "chunk":
                _, b, past, new = job
                t = measure_chunk(executor, b, past, new, w, r)
                prefill_points.append({"kind": "chunk", "new": [new] * b, "past": [past] * b,
                                       "seconds": t})
            elif job[0] == "mixed":
                _, new, d, ctx = job
                t = measure_mixed(executor, new, d, ctx, w, r)
                prefill_points.append({"kind": "mixed", "new": [new], "past": [0],
                                       "decode_rows": d, "decode_context": d * ctx,
                                       "seconds": t})
            elif job[0] == "step":
                _, d, ctx = job
                t = measure_step(executor, d, ctx, w, r)
                step_points.append({"kind": "step", "new": [], "past": [], "decode_rows": d,
                                    "decode_context": d * ctx, "seconds": t})
            else:
                _, b, ctx = job
                t, csum = measure_decode(executor, b, ctx, grid.decode_iterations, w, r)
                decode_points.append({"rows": b, "context_sum": csum, "prompt": ctx,
                                      "seconds": t})
        except RuntimeError as e:          # torch's OutOfMemoryError is a RuntimeError
            if not _is_oom(e):
                raise
            skipped.append(list(job))
            _empty_cache(executor)
    executor.log.clear()
    lm = executor.lm
    meta = {
        "name": name or f"{lm.name}-{executor.device.type}-{lm.dtype_name}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_meta(executor),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "dtype": lm.dtype_name,
        "attn_implementation": lm.attn_implementation,
        "clock": getattr(executor, "clock", "wall"),
        "executor": "seqsched.backends.live.LiveExecutor (HF DynamicCache, 4-D mask, greedy)",
        "model": {**lm.shape, "source": lm.source, "weights": "random" if lm.source == "shape"
                  else "folder"},
        "settings": {"grid": grid_name, "warmup": w, "repeats": r, "statistic": "median",
                     "decode_iterations": grid.decode_iterations, "skipped": skipped},
    }
    return build_profile(prefill_points, decode_points, meta, step_points)


__all__ = ["Grid", "GRIDS", "calibrate", "measure_prefill_static", "measure_decode",
           "measure_step",
           "measure_chunk", "measure_mixed", "device_meta"]
