"""Service-level objectives: `--slo ttft_p99=2s` parsed, per-request attainment and goodput.

Reading of an SLO `METRIC_pQ=BOUND` (DistServe, Zhong et al. OSDI 2024, section 2: "SLO
attainment" is the share of requests that meet their latency targets; "goodput" is the highest
rate served at a target attainment):

- a request *meets* the SLO when its METRIC <= BOUND (per request, no averaging);
- Q / 100 is the SLO's *target attainment*: the SLO holds for a run when at least Q% of its
  requests meet it, i.e. the run's pQ of METRIC is within BOUND (the same statement up to
  percentile interpolation);
- a request meets *all* SLOs when it meets each one (DistServe's joint TTFT-and-TPOT
  attainment); `seqsched capacity --target` sets a target for that joint share.

Per-request metrics (seconds, from the RequestRecords): ttft = first token - arrival; tpot =
(finish - first token) / (generated - 1) (a request of one token has no decode phase and
meets any TPOT bound); e2e = finish - arrival; queue = first scheduled - arrival.

A run's *goodput* (`goodput_rps`) is the number of requests that met every SLO divided by the
run's makespan (first arrival to last finish), the unit `throughput_rps` uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqsched.common.errors import UserError

METRICS = ("ttft", "tpot", "e2e", "queue")
_UNITS = {"s": 1.0, "ms": 1e-3}
_SPEC = re.compile(r"(?P<metric>[a-z0-9]+)_p(?P<pct>[0-9]+(?:\.[0-9]+)?)")
_BOUND = re.compile(r"(?P<value>[-+]?(?:[0-9]*\.)?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?P<unit>[a-z]*)")


@dataclass(frozen=True)
class SLO:
    metric: str         # ttft, tpot, e2e, queue
    percentile: float   # Q in (0, 100]
    bound_s: float      # the per-request bound, seconds

    @property
    def name(self) -> str:
        """`ttft_p99`: the summary column stem (`slo_ttft_p99_attainment`)."""
        return f"{self.metric}_p{self.percentile:g}"

    @property
    def target(self) -> float:
        """Share of requests that must meet the bound."""
        return self.percentile / 100.0

    def __str__(self) -> str:
        return f"{self.name}<={self.bound_s:g}s"


def parse_slo(text: str) -> SLO:
    """'ttft_p99=2s' -> SLO('ttft', 99, 2.0); '100ms' and bare seconds work too."""
    example = "e.g. ttft_p99=2s, tpot_p90=100ms, e2e_p50=30s"
    if "=" not in text:
        raise UserError(f"--slo {text!r} is not METRIC_pQ=BOUND ({example})")
    spec, bound = (part.strip().lower() for part in text.split("=", 1))
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise UserError(f"--slo {text!r}: {spec!r} is not METRIC_pQ (a metric of "
                        f"{', '.join(METRICS)} and a percentile, {example})")
    if m["metric"] not in METRICS:
        raise UserError(f"--slo {text!r}: unknown metric {m['metric']!r}; use one of "
                        f"{', '.join(METRICS)} ({example})")
    pct = float(m["pct"])
    if not 0 < pct <= 100:
        raise UserError(f"--slo {text!r}: target attainment p{m['pct']} is outside (0, 100]; "
                        "use a percentile such as p50, p90, p99")
    b = _BOUND.fullmatch(bound)
    if b is None or b["unit"] not in ("", *_UNITS):
        raise UserError(f"--slo {text!r}: bound {bound!r} is not a time; write seconds or "
                        "milliseconds, e.g. 2s, 2.5, 100ms")
    value = float(b["value"]) * _UNITS.get(b["unit"], 1.0)
    if not np.isfinite(value) or value <= 0:
        raise UserError(f"--slo {text!r}: the bound must be a positive time, got {bound!r}")
    return SLO(m["metric"], pct, value)


def parse_slos(items: list[str] | None) -> tuple[SLO, ...]:
    slos = tuple(parse_slo(t) for t in items or [])
    names = [s.name for s in slos]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise UserError(f"--slo {twice} is given twice; keep one bound per metric and "
                        "percentile")
    return slos


def check_target(value: float | None, what: str = "--target") -> float | None:
    if value is not None and not (np.isfinite(value) and 0 < value <= 1):
        raise UserError(f"{what} {value!r}: a target attainment is a share in (0, 1], e.g. "
                        "0.9 for 90% of requests within every SLO")
    return value


def request_latencies(records: pd.DataFrame) -> pd.DataFrame:
    """Per-request ttft/tpot/e2e/queue in seconds (tpot NaN for one-token responses)."""
    arrival = records["arrival_s"].to_numpy(dtype=float)
    first = records["first_token_s"].to_numpy(dtype=float)
    finish = records["finish_s"].to_numpy(dtype=float)
    gen = records["generated_tokens"].to_numpy(dtype=float)
    tpot = np.full(len(records), np.nan)
    many = gen > 1
    tpot[many] = (finish[many] - first[many]) / (gen[many] - 1)
    return pd.DataFrame({
        "ttft": first - arrival, "tpot": tpot, "e2e": finish - arrival,
        "queue": records["first_scheduled_s"].to_numpy(dtype=float) - arrival})


def meets(records: pd.DataFrame, slos: tuple[SLO, ...]) -> pd.DataFrame:
    """One boolean column per SLO (its name) and `all`: did each request meet it."""
    lat = request_latencies(records)
    out = {}
    for s in slos:
        values = lat[s.metric].to_numpy()
        out[s.name] = np.isnan(values) | (values <= s.bound_s)
    frame = pd.DataFrame(out, index=records.index)
    frame["all"] = frame.all(axis=1) if slos else True
    return frame


def slo_summary(records: pd.DataFrame, slos: tuple[SLO, ...]) -> dict[str, float]:
    """Attainment per SLO and jointly, whether every SLO's target holds, and goodput."""
    if not slos:
        return {}
    ok = meets(records, slos)
    makespan = float(records["finish_s"].max() - records["arrival_s"].min())
    out: dict[str, float] = {f"slo_{s.name}_attainment": float(ok[s.name].mean())
                             for s in slos}
    out["slo_attainment"] = float(ok["all"].mean())
    out["slo_targets_met"] = bool(all(ok[s.name].mean() >= s.target for s in slos))
    out["goodput_rps"] = float(ok["all"].sum() / makespan) if makespan > 0 else float("nan")
    return out


def passes(summary: dict, slos: tuple[SLO, ...], target: float | None) -> bool:
    """Every SLO's own target holds, and the joint attainment reaches `target` if given."""
    if not summary.get("slo_targets_met", not slos):
        return False
    return target is None or summary.get("slo_attainment", 1.0) >= target
