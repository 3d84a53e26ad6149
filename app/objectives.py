"""The options every run command shares for what a run is judged by: SLOs and GPU prices.

    add_objective_arguments(parser)     # --slo METRIC_pQ=BOUND (repeatable), --prices FILE
    slos, prices = objectives_from_args(args)

SLO semantics are in `seqsched.analysis.slo`; the price table in `seqsched.analysis.economics`.
"""

from __future__ import annotations

import argparse

from seqsched.analysis.economics import load_prices
from seqsched.analysis.slo import check_target, parse_slos
from seqsched.common.errors import UserError

SLO_HELP = ("service-level objective METRIC_pQ=BOUND, metric ttft, tpot, e2e or queue, bound "
            "in s or ms, e.g. ttft_p99=2s tpot_p90=100ms: a request meets it when its metric "
            "is <= BOUND; Q%% of requests must (repeatable). Summaries gain per-SLO and joint "
            "attainment and goodput_rps")


def add_objective_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("objectives")
    g.add_argument("--slo", action="append", metavar="METRIC_pQ=BOUND", help=SLO_HELP)
    g.add_argument("--prices", default=None, metavar="FILE",
                   help="GPU price/power table, JSON as analysis/figures/gpu_costs.json or CSV "
                        "gpu,usd_per_gpu_hour[,tdp_w,idle_w] (default: the shipped, cited "
                        "figures)")


def objectives_from_args(args) -> tuple[tuple, str | None]:
    """(SLOs, price file); both checked now, before any run or file."""
    slos = parse_slos(getattr(args, "slo", None))
    prices = getattr(args, "prices", None)
    load_prices(prices)
    return slos, prices


def check_slo_target(args) -> tuple[tuple, str | None, float | None]:
    """(SLOs, price file, joint target) of capacity/plan; a target needs SLOs."""
    slos, prices = objectives_from_args(args)
    target = check_target(getattr(args, "target", None))
    if target is not None and not slos:
        raise UserError("--target is the share of requests within every SLO; give the SLOs "
                        "with --slo METRIC_pQ=BOUND")
    return slos, prices, target
