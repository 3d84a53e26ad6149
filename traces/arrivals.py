"""Arrival processes and trace transforms. Every function takes a `Trace` and returns a new
one (the input is never modified); all work is vectorised and every random choice is seeded.

Arrival processes (they re-time the requests in their current order):
    offline(t)                      all at t = 0 (the paper's batch setting)
    poisson(t, rate, seed)          exponential gaps with mean 1/rate
    gamma(t, rate, cv, seed)        Gamma gaps with mean 1/rate and coefficient of variation cv
                                    (cv > 1: burstier than Poisson; cv = 1 is Poisson)
    replay(t, speedup)              recorded timestamps divided by `speedup`
    vllm_bench(t, rate, b, ramp, s) `vllm bench serve`'s own draws (traces/bench_arrivals.py):
                                    --request-rate / --burstiness / --ramp-up-*, seed s
Transforms:
    window(t, start_s, end_s)       requests arriving in [start_s, end_s), shifted to start at 0
    slice_rows(t, a, b)             rows a <= i < b in arrival order
    rescale_rate(t, factor | rate)  compress time so the mean rate is multiplied by `factor`
                                    (or becomes `rate`)
    sample(t, n, seed)              n requests chosen at random (arrival order kept)
    cap_output(t, max_tokens)       cap output lengths (the paper's 512-token generation cap)
    concat(traces, mode)            merge several traces by time, or play them one after another
    apply_arrival(t, kind, ...)     dispatch on a process name (what the CLI uses)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqsched.traces.bench_arrivals import RampUp, bench_arrivals
from seqsched.traces.request import Trace, TraceError

ARRIVALS = ("offline", "poisson", "gamma", "replay")


def _retime(trace: Trace, arrival: np.ndarray, name: str) -> Trace:
    df = trace.df.copy()
    df["arrival_s"] = np.asarray(arrival, dtype=float)
    if len(df) > 1 and (np.diff(df["arrival_s"].to_numpy()) < 0).any():
        df = df.iloc[np.argsort(df["arrival_s"].to_numpy(), kind="stable")]
    return Trace._trusted(df, name)


def _positive(value, what: str) -> float:
    if value is None or not np.isfinite(value) or value <= 0:
        raise TraceError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def mean_rate(trace: Trace) -> float:
    """Requests per second: (n - 1) / (last - first arrival); inf for offline traces."""
    a = trace.arrival_s
    span = float(a[-1] - a[0]) if len(a) else 0.0
    return (len(a) - 1) / span if span > 0 else float("inf")


def is_offline(trace: Trace) -> bool:
    """True when every request arrives at t = 0 (no recorded timestamps to replay)."""
    return not bool(np.any(trace.arrival_s != 0))


def offline(trace: Trace) -> Trace:
    return _retime(trace, np.zeros(len(trace)), trace.name)


def poisson(trace: Trace, rate: float, seed: int = 0) -> Trace:
    """Poisson process at `rate` req/s starting at t = 0 (first arrival after one gap)."""
    rate = _positive(rate, "--rate (requests per second)")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=len(trace))
    return _retime(trace, np.cumsum(gaps), trace.name)


def gamma(trace: Trace, rate: float, cv: float, seed: int = 0) -> Trace:
    """Renewal process with Gamma gaps: mean 1/rate, coefficient of variation `cv`
    (shape k = 1/cv^2, scale = cv^2/rate)."""
    rate = _positive(rate, "--rate (requests per second)")
    cv = _positive(cv, "--cv (coefficient of variation of the gaps)")
    shape = 1.0 / cv**2
    gaps = np.random.default_rng(seed).gamma(shape, 1.0 / (rate * shape), size=len(trace))
    return _retime(trace, np.cumsum(gaps), trace.name)


def vllm_bench(trace: Trace, request_rate: float | None = None, burstiness: float | None = None,
               ramp: RampUp | None = None, seed: int = 0) -> Trace:
    """The send times `vllm bench serve --request-rate R --burstiness B [--ramp-up-*] --seed S`
    gives these requests, in their current order (R default inf, B default 1)."""
    rate = np.inf if request_rate is None else request_rate
    if ramp is not None and np.isfinite(rate):
        raise TraceError("a ramp-up sets the rate itself: drop --request-rate (vLLM bench "
                         "refuses a finite --request-rate with --ramp-up-strategy)")
    burst = 1.0 if burstiness is None else burstiness
    return _retime(trace, bench_arrivals(len(trace), rate, burst, seed, ramp), trace.name)


def replay(trace: Trace, speedup: float = 1.0) -> Trace:
    """Recorded timestamps, played `speedup` times faster (2 = twice the rate)."""
    speedup = _positive(speedup, "--speedup")
    if speedup == 1.0:
        return trace
    return _retime(trace, trace.arrival_s / speedup, trace.name)


def rescale_rate(trace: Trace, factor: float | None = None, *,
                 rate: float | None = None) -> Trace:
    """Multiply the mean arrival rate by `factor`, or set it to `rate` req/s; gaps shrink
    proportionally (burstiness is kept), times are scaled about the first arrival."""
    if (factor is None) == (rate is None):
        raise TraceError("rescale_rate needs exactly one of factor= or rate=")
    if rate is not None:
        rate = _positive(rate, "--rate (requests per second)")
        current = mean_rate(trace)
        if not np.isfinite(current):
            raise TraceError("cannot rescale the rate of an offline trace (all arrivals at "
                             "one time); use --arrival poisson --rate R instead")
        factor = rate / current
    factor = _positive(factor, "rate factor")
    a = trace.arrival_s
    first = a[0] if len(a) else 0.0
    return _retime(trace, first + (a - first) / factor, trace.name)


def window(trace: Trace, start_s: float | None = None, end_s: float | None = None, *,
           rebase: bool = True) -> Trace:
    """Requests with start_s <= arrival_s < end_s; shifted so the window starts at 0."""
    a = trace.arrival_s
    mask = np.ones(len(a), bool)
    if start_s is not None:
        mask &= a >= start_s
    if end_s is not None:
        mask &= a < end_s
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise TraceError(f"time window {start_s}:{end_s} is empty; END must exceed START")
    if not mask.any():
        raise TraceError(f"{trace.name}: no request arrives in the window "
                         f"[{start_s}, {end_s}) s; the trace spans "
                         f"{a[0]:.3f}..{a[-1]:.3f} s")
    df = trace.df.loc[mask].copy()
    if rebase and start_s:
        df["arrival_s"] = df["arrival_s"] - float(start_s)
    return Trace._trusted(df, trace.name)


def slice_rows(trace: Trace, start: int | None = None, stop: int | None = None) -> Trace:
    """Rows start <= i < stop of the trace in arrival order (Python slice semantics)."""
    df = trace.df.iloc[slice(start, stop)]
    if len(df) == 0:
        raise TraceError(f"{trace.name}: rows {start}:{stop} select nothing from "
                         f"{len(trace)} requests")
    return Trace._trusted(df.copy(), trace.name)


def head(trace: Trace, n: int) -> Trace:
    return slice_rows(trace, 0, n)


def sample(trace: Trace, n: int, seed: int = 0, *, replace: bool = False) -> Trace:
    """`n` requests drawn at random (seeded), kept in arrival order. With replace=True the
    same request may be drawn again; repeats get ids `<id>#<k>`."""
    if n is None or n < 1:
        raise TraceError(f"--sample must be a positive number of requests, got {n!r}")
    if n > len(trace) and not replace:
        raise TraceError(f"cannot sample {n} requests from {len(trace)} without replacement; "
                         f"use --sample <= {len(trace)}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(trace), size=n, replace=replace))
    df = trace.df.iloc[idx].copy()
    if replace:
        ids = df["id"].astype(str)
        k = ids.groupby(ids).cumcount()
        df["id"] = np.where(k > 0, ids + "#" + k.astype(str), ids)
    return Trace._trusted(df, trace.name)


LENGTH_COLUMN_PREFIXES = ("len_t",)
LENGTH_COLUMNS = ("max_of_samples",)


def cap_output(trace: Trace, max_output_tokens: int = 512) -> Trace:
    """Cap `output_tokens` (and per-temperature/max-of-samples length columns) at the
    generation limit; the paper caps generation at 512 new tokens."""
    cap = int(_positive(max_output_tokens, "--max-output-tokens"))
    df = trace.df.copy()
    for col in df.columns:
        if col == "output_tokens" or col in LENGTH_COLUMNS or col.startswith(
                LENGTH_COLUMN_PREFIXES):
            if pd.api.types.is_numeric_dtype(df[col]):
                df[col] = np.minimum(df[col], cap)
    return Trace._trusted(df, trace.name)


def concat(traces: list[Trace], *, mode: str = "merge", gap_s: float = 0.0,
           name: str | None = None) -> Trace:
    """Concatenate traces. mode="merge" keeps every trace's own times and interleaves them
    (mixing workloads); mode="sequential" starts each trace `gap_s` after the previous one's
    last arrival. A `source` column records each request's trace; ids that collide across
    traces are prefixed with `<source>/`."""
    if not traces:
        raise TraceError("concat needs at least one trace")
    if mode not in ("merge", "sequential"):
        raise TraceError(f"concat mode must be 'merge' or 'sequential', got {mode!r}")
    names = [t.name for t in traces]
    if len(set(names)) < len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    frames, offset = [], 0.0
    for t, src in zip(traces, names):
        df = t.df.copy()
        if mode == "sequential":
            a = df["arrival_s"].to_numpy()
            df["arrival_s"] = a - a[0] + offset
            offset = float(df["arrival_s"].iloc[-1]) + float(gap_s)
        df["source"] = src
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if out["id"].duplicated().any():
        out["id"] = out["source"].astype(str) + "/" + out["id"].astype(str)
    order = np.argsort(out["arrival_s"].to_numpy(), kind="stable")
    return Trace._trusted(out.iloc[order], name or "+".join(t.name for t in traces))


def apply_arrival(trace: Trace, kind: str | None = None, *, rate: float | None = None,
                  cv: float | None = None, speedup: float | None = None,
                  seed: int = 0) -> Trace:
    """Apply an arrival process by name. kind=None picks: replay when the trace has recorded
    times (rescaled to `rate` if given), else Poisson at `rate` if given, else offline."""
    recorded = not is_offline(trace)
    if kind is None:
        if speedup is not None or (recorded and cv is None):
            kind = "replay"
        elif rate is not None:
            kind = "gamma" if cv is not None else "poisson"
        else:
            kind = "offline"
    if kind not in ARRIVALS:
        raise TraceError(f"unknown arrival process {kind!r}; choose {', '.join(ARRIVALS)}")
    if kind != "gamma" and cv is not None:
        raise TraceError("--cv only applies to --arrival gamma")
    if kind != "replay" and speedup is not None:
        raise TraceError("--speedup only applies to --arrival replay (recorded timestamps)")
    if kind == "offline":
        if rate is not None:
            raise TraceError("--rate does not apply to --arrival offline (all requests at t=0)")
        return offline(trace)
    if kind == "poisson":
        if rate is None:
            raise TraceError("--arrival poisson needs --rate (requests per second)")
        return poisson(trace, rate, seed)
    if kind == "gamma":
        if rate is None or cv is None:
            raise TraceError("--arrival gamma needs --rate (requests per second) and --cv "
                             "(gap coefficient of variation; 1 = Poisson, >1 = bursty)")
        return gamma(trace, rate, cv, seed)
    # replay
    if not recorded:
        raise TraceError(f"{trace.name}: --arrival replay needs recorded timestamps, but every "
                         "request arrives at the same time; use --arrival poisson --rate R")
    if speedup is not None and rate is not None:
        raise TraceError("give either --speedup or --rate with --arrival replay, not both")
    if rate is not None:
        return rescale_rate(trace, rate=rate)
    return replay(trace, 1.0 if speedup is None else speedup)
