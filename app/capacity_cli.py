"""`seqsched capacity` (the highest sustainable rate per policy) and `seqsched plan` (the
cheapest configuration of a grid that carries given traffic within SLOs).

    register(subparsers)      # app/cli.py adds both commands
"""

from __future__ import annotations

import sys

import pandas as pd

from seqsched.app.capacity import (LowestRateFails, arrival_shape, make_evaluate,
                                   offline_throughput, search)
from seqsched.app.cli import SpecList, add_run_options, policy_configs
from seqsched.app.objectives import check_slo_target
from seqsched.common.errors import UserError

CAPACITY_COLUMNS = {
    "policy": "policy", "capacity_rps": "capacity req/s", "failing_rps": "fails at",
    "probes": "probes", "slo_attainment": "attain.", "goodput_rps": "goodput",
    "ttft_s_p99": "TTFT p99 s", "tpot_s_p90": "TPOT p90 s", "e2e_s_p99": "e2e p99 s",
    "usd_per_m_output_tokens": "$/M tok", "j_per_output_token": "J/tok",
}


def shape_from_args(args):
    from seqsched.app.trace_args import trace_from_args
    if args.arrival in ("poisson", "gamma") and args.rate is None:
        args.rate = 1.0                 # only the shape matters: probes rescale it
    return arrival_shape(trace_from_args(args), args.cv, args.seed)


def capacity_row(spec: str, cap=None, failed=None) -> dict:
    if cap is None:
        return {"policy": spec, "capacity_rps": float("nan"), "failing_rps": failed.rate,
                "bounded": True, "probes": 1, "below_rate_min": True}
    best = cap.best.summary
    row = {"policy": spec, "capacity_rps": cap.capacity_rps, "failing_rps": cap.failing_rps,
           "bounded": cap.bounded, "probes": len(cap.probes), "below_rate_min": False}
    row.update({k: best[k] for k in CAPACITY_COLUMNS if k in best and k not in row})
    return row


def cmd_capacity(args) -> int:
    from contextlib import nullcontext

    from seqsched.analysis import capacity_report as rep
    from seqsched.analysis.output import output_folder
    from seqsched.analysis.timeseries import write_timeseries
    from seqsched.app.run import prepare

    from seqsched.analysis.output import check_output_folder
    if args.out is not None:
        check_output_folder(args.out, args.overwrite)   # before any trace or run
    slos, prices, target = check_slo_target(args)
    configs = policy_configs(args, args.policies or ["fcfs"])
    shape = shape_from_args(args)
    for cfg in configs.values():
        prepare(shape, cfg)                     # bad input fails before any file or run
    rows, probes, at_capacity, failures = [], [], {}, []
    with (output_folder(args.out, args.overwrite) if args.out else nullcontext()) as folder:
        for spec, cfg in configs.items():
            full = offline_throughput(shape, cfg) if None in (args.rate_min, args.rate_max) else 0
            lo = args.rate_min if args.rate_min is not None else full / 32
            hi = args.rate_max if args.rate_max is not None else full * 4
            evaluate = make_evaluate(shape, cfg, slos, target, prices)
            seen = []

            def logged(rate, evaluate=evaluate, seen=seen):
                seen.append(evaluate(rate))
                if not args.no_progress and sys.stderr.isatty():
                    print(f"  {spec}: {rate:.4g} req/s {'pass' if seen[-1].passed else 'fail'}",
                          file=sys.stderr)
                return seen[-1]
            try:
                cap = search(logged, lo, hi, args.tolerance)
                rows.append(capacity_row(spec, cap))
                at_capacity[spec] = cap.best.result
            except LowestRateFails as e:
                rows.append(capacity_row(spec, failed=e.probe))
                failures.append(f"{spec} ({e.probe.rate:.4g} req/s)")
            probes += [{"policy": spec, "rate_rps": p.rate, "passed": p.passed, **p.summary}
                       for p in seen]
        result = pd.DataFrame(rows)
        probe_df = pd.DataFrame(probes).drop(columns=["sim_wall_s"], errors="ignore")
        text = rep.table(result, CAPACITY_COLUMNS)
        if folder is not None:
            result.to_csv(folder / "capacity.csv", index=False)
            probe_df.to_csv(folder / "probes.csv", index=False)
            rep.capacity_curve(probe_df, folder / "capacity_curve.png", target)
            if at_capacity:
                write_timeseries(folder, at_capacity, slos)
            rep.write_markdown(folder, "seqsched capacity", {
                "trace": f"{shape.name} ({len(shape)} requests, arrival shape rescaled)",
                "SLOs": ", ".join(map(str, slos)) or "none (saturation only)",
                "target joint attainment": target, "tolerance": args.tolerance},
                ["## Capacity", "", text, "", "![curve](capacity_curve.png)", "",
                 "![at capacity](timeseries.png)" if at_capacity else "", "",
                 "Capacity: the highest probed rate at which every SLO's target holds, the "
                 "joint attainment reaches the target and the waiting queue does not keep "
                 "growing (`analysis/slo.py`, `analysis/saturation.py`). `probes.csv`: every "
                 "probe's full summary; `timeseries.*`: each policy's run at its capacity."])
    print(text)
    for row in rows:
        if not row["bounded"]:
            print(f"{row['policy']}: even --rate-max {row['capacity_rps']:.4g} req/s passed; "
                  "the capacity is at least that (raise --rate-max, or use a longer trace if "
                  "the run is shorter than a few request lifetimes)")
    if folder is not None:
        print(f"\nwrote {args.out}/ (report.md, capacity.csv, probes.csv, *.png, "
              "timeseries.parquet)")
    if failures:
        raise UserError(f"the lowest rate probed already misses the objectives for "
                        f"{', '.join(failures)}; lower --rate-min or loosen --slo/--target")
    return 0


def _common(p) -> None:
    p.add_argument("--policies", nargs="+", metavar="SPEC", action=SpecList,
                   help="NAME[:KEY=VALUE...] each (default fcfs), e.g. fcfs sjf "
                        "sjf:admission=predicted (or comma-separated)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size of the static policies (vanilla, sorted, binned)")
    p.add_argument("--target", type=float, default=None, metavar="SHARE",
                   help="joint SLO attainment to reach, in (0, 1], e.g. 0.9 (default: only "
                        "each SLO's own pQ)")
    add_run_options(p)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "capacity", help="the highest request rate each policy sustains within SLOs",
        description="Search, per policy, the highest mean arrival rate at which the SLOs "
        "hold and the waiting queue does not keep growing: probe --rate-min, double until a "
        "probe fails, then bisect to --tolerance. Every probe replays the trace's requests "
        "with its arrival shape rescaled to the probe's rate (an offline trace gets a seeded "
        "Poisson shape, Gamma with --cv). Prints a table; --out adds capacity.csv, "
        "probes.csv, the attainment-vs-rate curve, time series at capacity and report.md. "
        "Exit 2 if even "
        "--rate-min misses the SLOs.")
    _common(p)
    g = p.add_argument_group("search")
    g.add_argument("--rate-min", type=float, default=None, metavar="R",
                   help="first probe, req/s (default: offline throughput / 32)")
    g.add_argument("--rate-max", type=float, default=None, metavar="R",
                   help="highest probe, req/s (default: 4 x offline throughput)")
    g.add_argument("--tolerance", type=float, default=0.02,
                   help="stop when passing and failing rates are this close, relative "
                        "(default 0.02)")
    p.set_defaults(func=cmd_capacity)
    from seqsched.app.plan import register_plan
    register_plan(subparsers, _common)
