"""`seqsched plan`: the cheapest configuration of a grid that carries given traffic within SLOs.

The grid is a sweep grid (`app/sweep_grid.py`): any `--grid KEY=V1,V2,...` a sweep takes
(gpu, replicas, model, memory_fraction, a policy parameter, ...; new run options such as a
tensor-parallel degree or max_num_seqs are grid keys as soon as RunConfig has them) x
`--policies`. Every point is one simulation of the same traffic, run by the sweep's runner
(local processes or `--ray`). A point is *feasible* when every SLO's target holds, the joint
attainment reaches `--target` if given and the run is not saturated. Its cost per hour is the
price table's $/GPU-hour x GPUs (replicas x GPUs per replica). Ranking: feasible first, then
cheaper, then higher joint attainment, then lower p99 end-to-end latency.
"""

from __future__ import annotations

import sys

import pandas as pd

from seqsched.common.errors import UserError

PLAN_COLUMNS = {"rank": "rank", "label": "configuration", "gpus": "GPUs",
                "cost_usd_per_hour": "$/h", "feasible": "feasible",
                "slo_attainment": "attain.", "goodput_rps": "goodput",
                "e2e_s_p99": "e2e p99 s", "ttft_s_p99": "TTFT p99 s",
                "usd_per_m_output_tokens": "$/M tok", "j_per_output_token": "J/tok",
                "saturated": "saturated"}


def rank(df: pd.DataFrame, target: float | None) -> pd.DataFrame:
    """Rows with `feasible` and `rank` (1 = the cheapest feasible), best first."""
    ok = df["slo_targets_met"].astype(bool) & ~df["saturated"].astype(bool)
    if target is not None:
        ok &= df["slo_attainment"] >= target
    out = df.assign(feasible=ok, _cost=df["cost_usd_per_hour"].fillna(float("inf")))
    out = out.sort_values(["feasible", "_cost", "slo_attainment", "e2e_s_p99"],
                          ascending=[False, True, False, True], kind="stable")
    out = out.drop(columns="_cost").reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def plan(args) -> int:
    from seqsched.analysis import capacity_report as rep
    from seqsched.analysis.output import output_folder
    from seqsched.app.objectives import check_slo_target
    from seqsched.app.cli import policy_configs
    from seqsched.analysis.output import check_output_folder
    from seqsched.app.sweep_grid import expand, parse_grid, trace_options_from_args
    from seqsched.app.sweep_runner import build_traces, check_points, run_points
    from seqsched.traces.arrivals import is_offline

    slos, prices, target = check_slo_target(args)
    if not slos:
        raise UserError("a plan needs SLOs to meet: --slo METRIC_pQ=BOUND, e.g. "
                        "--slo ttft_p99=2s --slo tpot_p90=100ms")
    if not args.grid:
        raise UserError("the plan grid is empty; give the options to choose among, e.g. "
                        "--grid gpu=A100-80GB,H100-SXM --grid replicas=1,2,4")
    if args.out is None:
        raise UserError("a plan needs --out DIR (each point's row is written as it finishes)")
    check_output_folder(args.out, args.overwrite)      # before any trace or run
    configs = policy_configs(args, args.policies or ["fcfs"])
    axes = parse_grid(args.grid, [c.policy for c in configs.values()])
    points = expand(configs, trace_options_from_args(args), axes)
    for p in points:
        p.slos, p.prices = slos, prices
    traces = build_traces(points)
    if any(is_offline(t) for t in traces.values()):
        raise UserError("a plan needs traffic with a rate: pass --rate R (Poisson; --cv for "
                        "Gamma) or a trace with timestamps")
    check_points(points, traces)
    with output_folder(args.out, args.overwrite) as folder:
        df = run_points(points, traces, folder, workers=args.workers, use_ray=args.ray,
                        progress=not args.no_progress and sys.stderr.isatty())
        ranked = rank(df, target)
        ranked.to_csv(folder / "plan.csv", index=False)
        rep.pareto_plot(ranked, folder / "pareto.png", "e2e_s_p99")
        text = rep.table(ranked, PLAN_COLUMNS)
        best = ranked.iloc[0] if bool(ranked["feasible"].iloc[0]) else None
        verdict = (f"cheapest feasible: {best['label']} at ${best['cost_usd_per_hour']:.4g}/h"
                   if best is not None else "no configuration of the grid meets the SLOs")
        first = next(iter(traces.values()))
        rep.write_markdown(folder, "seqsched plan", {
            "traffic": f"{first.name} ({len(first)} requests)",
            "SLOs": ", ".join(map(str, slos)), "target joint attainment": target,
            "grid": "; ".join(f"{a.key} = {', '.join(map(str, a.values))}" for a in axes),
            "policies": ", ".join(configs), "verdict": verdict},
            ["## Ranked configurations", "", text, "", "![pareto](pareto.png)", "",
             "Feasible: every SLO's target met, the joint attainment at --target, not "
             "saturated. Cost: $/GPU-hour (price table) x GPUs. `plan.csv`: ranked rows "
             "with every summary metric; `sweep.csv`: the raw rows in grid order."])
    print(text)
    print(f"\n{verdict}\nwrote {args.out}/ (report.md, plan.csv, sweep.csv, pareto.png)")
    return 0 if best is not None else 1


def register_plan(subparsers, add_common) -> None:
    p = subparsers.add_parser(
        "plan", help="the cheapest configuration of a grid that meets SLOs for given traffic",
        description="Simulate the traffic (a trace with timestamps, or --rate R) on every "
        "point of --grid x --policies (as `seqsched sweep`: local processes or --ray) and "
        "rank the points: those meeting every --slo (and --target) and not saturated first, "
        "cheapest first ($/GPU-hour x GPUs from the price table, --prices to override). "
        "Writes plan.csv, pareto.png (cost vs attainment and vs p99 latency), report.md. "
        "Exit 1 when no point is feasible.")
    add_common(p)
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="an option to choose among, as in sweep: gpu=A100-80GB,H100-SXM, "
                        "replicas=1,2,4, memory_fraction=0.8,0.9, ... (repeatable)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel points (default: min(CPUs, points))")
    p.add_argument("--ray", action="store_true", help="run points as Ray tasks")
    p.set_defaults(func=plan)
