"""Send times as vLLM's benchmark client draws them (`vllm bench serve`), ramp-up included.

What vLLM does (v0.19.0, `vllm/benchmarks/serve.py`):
- `main_async` seeds numpy's global generator with `--seed` (`np.random.seed(args.seed)`,
  :1638); the common datasets sample with their own generators (`np.random.default_rng`,
  `random`), so the arrival draws are the first the global generator makes;
- `_get_current_request_rate` (:218-240) gives request i of N its rate: with a ramp-up
  strategy and both ends set, progress p = i / max(N - 1, 1) and the rate is
  start + (end - start) p (linear) or start (end / start)^p (exponential); otherwise the
  constant `--request-rate`;
- `get_request` (:243-341) takes one delay per request, in order (:283-310): 0 for an
  infinite rate; 1 / rate when burstiness is infinite; else `np.random.gamma(shape=burstiness,
  scale=1 / (rate x burstiness))` (Poisson at burstiness 1); it asserts every rate > 0
  (:301-303). The send times are the running sums (:313-315). Only without a ramp-up
  (:318-330) are they rescaled so the last request goes out at N / request_rate;
- `main_async` refuses (:1640-1655) a ramp-up with a finite `--request-rate`, a strategy
  without both ends, negative ends, start > end, and exponential from 0; the flags are ints
  (`type=int`, :1562-1574). A linear ramp from 0 fails the rate > 0 assert at request 0.

The rates are computed with the same IEEE operations (the exponential's power with Python's
float pow, which numpy's vectorised power does not always match in the last bit). Legacy
`RandomState.gamma` with an array of scales draws element by element in the same
order and with the same arithmetic as N scalar calls, so one vectorised call gives vLLM's
delays; `np.cumsum` adds sequentially as vLLM's loop does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seqsched.traces.errors import TraceError

RAMP_STRATEGIES = ("linear", "exponential")
# the result JSON's keys for them (serve.py:1854-1857: written only when a ramp-up was used)
RAMP_KEYS = ("ramp_up_strategy", "ramp_up_start_rps", "ramp_up_end_rps")


@dataclass(frozen=True)
class RampUp:
    """`--ramp-up-strategy S --ramp-up-start-rps A --ramp-up-end-rps B`, checked as vLLM
    checks them (requests/s; the rate is raised from A to B over the N requests)."""

    strategy: str
    start_rps: float
    end_rps: float

    def __post_init__(self) -> None:
        if self.strategy not in RAMP_STRATEGIES:
            raise TraceError(f"unknown ramp-up strategy {self.strategy!r}; use "
                             f"{' or '.join(RAMP_STRATEGIES)}")
        for what, v in (("start", self.start_rps), ("end", self.end_rps)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                raise TraceError(f"--ramp-up-{what}-rps must be a number of requests/s > 0, "
                                 f"got {v!r} (vLLM bench asserts every request's rate > 0)")
        if self.start_rps > self.end_rps:
            raise TraceError(f"--ramp-up-start-rps {self.start_rps} is above "
                             f"--ramp-up-end-rps {self.end_rps}; a ramp-up raises the rate")

    def rates(self, n: int) -> np.ndarray:
        """Request i's rate (serve.py:230-237)."""
        progress = np.arange(n) / max(n - 1, 1)
        start, end = float(self.start_rps), float(self.end_rps)
        if self.strategy == "linear":
            return start + (end - start) * progress
        ratio = end / start               # Python's float pow, as vLLM's (numpy's differs
        return np.array([start * ratio ** p for p in progress.tolist()])   # in the last bit)


def ramp_up(strategy: str | None, start_rps, end_rps) -> RampUp | None:
    """The ramp-up the three options describe, or None when none is asked for; the bad
    combinations vLLM refuses are one error each."""
    if strategy is None:
        if start_rps is not None or end_rps is not None:
            raise TraceError("--ramp-up-start-rps/--ramp-up-end-rps need --ramp-up-strategy "
                             f"({' or '.join(RAMP_STRATEGIES)})")
        return None
    if start_rps is None or end_rps is None:
        raise TraceError("--ramp-up-strategy needs both --ramp-up-start-rps and "
                         "--ramp-up-end-rps (requests/s)")
    return RampUp(strategy, start_rps, end_rps)


def bench_arrivals(n: int, rate: float, burstiness: float, seed: int,
                   ramp: RampUp | None = None) -> np.ndarray:
    """Send times (s from the first draw's start) of N requests as `get_request` computes
    them; `rate` is ignored under a ramp-up (vLLM requires it to be inf then)."""
    if not burstiness > 0:
        raise TraceError(f"burstiness must be > 0, got {burstiness!r}")
    if n == 0:
        return np.zeros(0)
    if ramp is None:
        if not rate > 0:
            raise TraceError(f"request rate must be > 0 or inf, got {rate!r}")
        if math.isinf(rate):
            return np.zeros(n)
        rates = np.full(n, float(rate))
    else:
        rates = ramp.rates(n)
    if math.isinf(burstiness):
        delays = 1.0 / rates
    else:
        rng = np.random.RandomState(seed)        # np.random.seed(seed) as the benchmark does
        delays = rng.gamma(shape=burstiness, scale=1.0 / (rates * burstiness))
    t = np.cumsum(delays)
    if ramp is None and t[-1] != 0:
        t *= (n / rate) / t[-1]
    return t
