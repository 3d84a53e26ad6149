"""The highest request rate a setup sustains within its SLOs (DistServe's "goodput" at a
target attainment), by a bracketing search over rate.

A rate *passes* when every SLO's own target holds (`ttft_p99=2s`: >= 99% of requests within
2 s), the joint attainment reaches `target` if one is given, and the run is not saturated
(`analysis/saturation.py`: the waiting queue does not keep growing while requests
arrive). The search assumes pass/fail is monotone in rate:

1. probe `rate_min`; if it fails, stop: nothing lower was asked for (`LowestRateFails`);
2. multiply the rate by `GROWTH` until a probe fails or `rate_max` passes (then the capacity
   is reported as at least `rate_max`, `bounded=False`);
3. bisect between the highest passing and the lowest failing rate until they are within
   `tolerance` (relative) of each other. The capacity is the highest passing rate.

Every probe replays the same requests with the arrival shape kept: the shape's timestamps
scaled to the probe's mean rate (`traces.arrivals.rescale_rate`), so a Poisson or Gamma
shape is the same seeded draw at every rate and a real trace keeps its burstiness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from seqsched.analysis.slo import passes
from seqsched.common.errors import UserError
from seqsched.traces import arrivals
from seqsched.traces.request import Trace

GROWTH = 2.0
MAX_PROBES = 40


@dataclass
class Probe:
    rate: float
    passed: bool
    summary: dict
    result: object = None           # the RunResult (records, steps) of this probe

    @property
    def saturated(self) -> bool:
        return bool(self.summary.get("saturated", False))


@dataclass
class Capacity:
    capacity_rps: float             # highest passing rate
    failing_rps: float              # lowest failing rate (NaN when none failed)
    bounded: bool                   # False: rate_max itself passed
    probes: list[Probe] = field(default_factory=list)

    @property
    def best(self) -> Probe:
        return next(p for p in self.probes if p.passed and p.rate == self.capacity_rps)


class LowestRateFails(UserError):
    def __init__(self, probe: Probe):
        self.probe = probe
        super().__init__(f"the lowest rate probed, {probe.rate:.4g} req/s, already misses "
                         "the objectives")


def search(evaluate: Callable[[float], Probe], rate_min: float, rate_max: float,
           tolerance: float = 0.02, max_probes: int = MAX_PROBES) -> Capacity:
    """Bracket then bisect `evaluate` (rate -> Probe) over [rate_min, rate_max]."""
    if not (np.isfinite(rate_min) and rate_min > 0):
        raise UserError(f"--rate-min must be a positive rate, got {rate_min!r}")
    if not rate_max > rate_min:
        raise UserError(f"--rate-max ({rate_max:g}) must exceed --rate-min ({rate_min:g})")
    if not 0 < tolerance < 1:
        raise UserError(f"--tolerance must be in (0, 1), got {tolerance!r}")
    probes = [evaluate(rate_min)]
    if not probes[0].passed:
        raise LowestRateFails(probes[0])
    good, bad = rate_min, float("nan")
    while len(probes) < max_probes and good < rate_max:
        probes.append(evaluate(min(good * GROWTH, rate_max)))
        if not probes[-1].passed:
            bad = probes[-1].rate
            break
        good = probes[-1].rate
    if np.isnan(bad):
        return Capacity(good, bad, False, probes)
    while len(probes) < max_probes and (bad - good) > tolerance * good:
        mid = (good + bad) / 2
        probes.append(evaluate(mid))
        if probes[-1].passed:
            good = mid
        else:
            bad = mid
    return Capacity(good, bad, True, probes)


def arrival_shape(trace: Trace, cv: float | None = None, seed: int = 0) -> Trace:
    """The trace's timing to rescale: its own timestamps, or a seeded Poisson (Gamma with
    `cv`) draw at 1 req/s when it has none (an offline trace)."""
    if len(trace) < 2:
        raise UserError("a capacity search needs at least 2 requests (a rate is requests "
                        "over time)")
    if not arrivals.is_offline(trace):
        return trace
    if cv is not None:
        return arrivals.gamma(trace, 1.0, cv, seed)
    return arrivals.poisson(trace, 1.0, seed)


def at_rate(shape: Trace, rate: float) -> Trace:
    return arrivals.rescale_rate(shape, rate=rate)


def make_evaluate(shape: Trace, config, slos: tuple, target: float | None,
                  prices: str | None = None, executor=None, keep: bool = True
                  ) -> Callable[[float], Probe]:
    """rate -> Probe: one full simulation of `shape` at that mean rate."""
    from seqsched.app.run import simulate

    def evaluate(rate: float) -> Probe:
        result = simulate(at_rate(shape, rate), config, executor=executor, slos=slos,
                          prices=prices)
        ok = passes(result.summary, slos, target) and not result.summary["saturated"]
        return Probe(rate, bool(ok), result.summary, result if keep else None)
    return evaluate


def offline_throughput(shape: Trace, config, executor=None) -> float:
    """Requests/s with every request queued at t = 0, the most a full batch serves: the
    default search range is [it / 32, 4 x it] (spread-out arrivals batch worse, but a short
    trace's offline makespan is stretched by its longest request)."""
    from seqsched.app.run import simulate
    return float(simulate(arrivals.offline(shape), config, executor=executor)
                 .summary["throughput_rps"])
