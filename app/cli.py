"""`seqsched` command line: simulate | compare | sweep | demo, plus the commands other packages
register (trace, predict, calibrate, validate).

Bad input prints one line `seqsched: error: ...` and exits with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from seqsched.app.cli_parser import Parser, SpecList, Version
from seqsched.app.experiment import apply_experiment
from seqsched.app.help_text import (BACKEND_HELP, GPU_HELP, MODEL_HELP, POLICY_HELP,
                                    PREDICTOR_HELP, ROUTER_HELP)
from seqsched.app.objectives import add_objective_arguments, objectives_from_args
from seqsched.common.defaults import DEFAULT_GPU, DEFAULT_MODEL
from seqsched.common.errors import UserError
from seqsched.common.params import parse_params

# Packages that add their own sub-commands with `register(subparsers)`.
COMMAND_MODULES = ("seqsched.app.trace_cli", "seqsched.app.predict_cli", "seqsched.app.live_cli",
                   "seqsched.app.capacity_cli", "seqsched.app.profile_cli")



def parse_policy_spec(spec: str) -> tuple[str, dict]:
    """`binned:vbs=false:fcr=true` -> ("binned", {"vbs": False, "fcr": True})."""
    name, *items = spec.split(":")
    return name, parse_params(items, f"policy {name} parameter")


# -- shared options ---------------------------------------------------------------------
def add_run_options(p: argparse.ArgumentParser) -> None:
    from seqsched.app.trace_args import add_trace_arguments
    from seqsched.app.vllm_args import add_vllm_options
    add_trace_arguments(p)
    g = p.add_argument_group("backend")
    g.add_argument("--backend", default=None, help=BACKEND_HELP)
    g.add_argument("--gpu", default=DEFAULT_GPU, help=GPU_HELP)
    g.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    g.add_argument("--profile", default=None,
                   help="profile JSON or built-in name: a kernel profile (seqsched profile "
                        "list/import) or a calibration profile (seqsched calibrate); "
                        "'roofline' forces the roofline. Default: the built-in kernel profile "
                        "of --gpu x --model x --tp if one ships, else the roofline")
    g.add_argument("--tp", type=int, default=1,
                   help="tensor-parallel GPUs per replica (weights and KV split, all-reduce; "
                        "default 1)")
    g.add_argument("--replicas", type=int, default=1, help="number of replicas (default 1)")
    g.add_argument("--router", default="round-robin", help=ROUTER_HELP)
    g.add_argument("--dp-lockstep", type=int, default=0, metavar="D",
                   help="data-parallel MoE: replicas step in lockstep groups of D, each step "
                        "as long as the group's slowest (vLLM's DP ranks; default off)")
    g.add_argument("--memory-fraction", "--gpu-memory-utilization", type=float, default=0.9,
                   help="share of GPU memory for weights, activations and KV cache (vLLM's "
                        "gpu_memory_utilization; default 0.9)")
    g.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap every response at this many tokens, vLLM's max_tokens (default: "
                        "none, each request's own length; static policies: 512)")
    add_vllm_options(p)
    g = p.add_argument_group("serving features")
    g.add_argument("--swap-space", type=float, default=4.0, metavar="GIB",
                   help="host memory per replica for preemption=swap, GiB (vLLM's "
                        "--swap-space; default 4)")
    g.add_argument("--prefill-replicas", type=int, default=0, metavar="P",
                   help="disaggregated serving: P prefill replicas (with --decode-replicas; "
                        "replaces --replicas)")
    g.add_argument("--decode-replicas", type=int, default=0, metavar="D",
                   help="disaggregated serving: D decode replicas")
    g.add_argument("--decode-gpu", default=None,
                   help="GPU of the decode replicas (default --gpu)")
    g.add_argument("--decode-tp", type=int, default=None, metavar="N",
                   help="tensor-parallel degree of each decode replica (default --tp)")
    g.add_argument("--decode-profile", default=None,
                   help="cost profile of the decode replicas (default: the built-in kernel "
                        "profile of their GPU x model x TP, else the roofline; --profile is "
                        "reused only when the decode side has the same GPU and TP)")
    g.add_argument("--kv-link", default=None,
                   help="prefill -> decode KV link: nvlink3, nvlink4, ib-hdr, ib-ndr, pcie4, "
                        "pcie5 or GB/s (default: the GPU's NVLink)")
    g.add_argument("--host-link", default=None,
                   help="link to host memory for swap: pcie4, pcie5 or GB/s (default: the "
                        "GPU's PCIe generation)")
    g = p.add_argument_group("prediction")
    g.add_argument("--predictor", default="oracle", help=PREDICTOR_HELP)
    g.add_argument("--predictor-param", action="append", metavar="KEY=VALUE",
                   help="predictor parameter, e.g. scale=62 (repeatable)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder (CSV, Parquet, PNG, report.md)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--engine", default="auto", choices=("auto", "fast", "baseline"),
                   help="simulation engine: fast (array engine, continuous policies on the cost "
                        "model), baseline (object engine) or auto (fast where it applies; "
                        "default); both give the same results")
    add_objective_arguments(p)


def config_from_args(args, policy: str, policy_params: dict):
    from seqsched.app.run import RunConfig
    from seqsched.app.vllm_args import apply_to_config, vllm_settings
    return apply_to_config(RunConfig(policy=policy, policy_params=policy_params, predictor=args.predictor,
                     predictor_params=parse_params(args.predictor_param, "predictor parameter"),
                     backend=args.backend, gpu=args.gpu, model=args.model,
                     profile=args.profile, tp=args.tp, replicas=args.replicas,
                     router=args.router, dp_lockstep=getattr(args, "dp_lockstep", 0),
                     seed=args.seed, max_new_tokens=args.max_new_tokens,
                     memory_fraction=args.memory_fraction, engine=args.engine,
                     swap_space=args.swap_space, host_link=args.host_link,
                     prefill_replicas=args.prefill_replicas,
                     decode_replicas=args.decode_replicas, decode_gpu=args.decode_gpu,
                     decode_tp=args.decode_tp, decode_profile=args.decode_profile,
                     kv_link=args.kv_link,
                     progress=not args.no_progress and sys.stderr.isatty()),
                           *vllm_settings(args))


def run_all(trace, configs: dict, out: str | None, overwrite: bool, title: str,
            context: dict, baseline: str | None = None, objectives: tuple = ((), None),
            say_setup: bool = True) -> int:
    """Run every config; print what ran on what (`say_setup`) and the table; write the output
    folder if asked. `objectives`: (SLOs, price file) that every summary is judged by."""
    from contextlib import nullcontext

    from seqsched.analysis.output import output_folder
    from seqsched.analysis.report import summary_frame, terminal_table, write_report, write_run
    from seqsched.analysis.timeseries import write_timeseries
    from seqsched.app.run import execute, prepare

    from tqdm import tqdm

    # every run is validated and built before any file exists: bad input leaves nothing behind
    prepared = {label: prepare(trace, cfg) for label, cfg in configs.items()}
    results = {}
    with (output_folder(out, overwrite) if out else nullcontext()) as folder:
        bar = tqdm(prepared.items(), desc="runs", unit="run", leave=False,
                   disable=len(prepared) < 2 or not sys.stderr.isatty())
        for label, run in bar:
            bar.set_postfix_str(label)
            results[label] = execute(run, *objectives)
            if folder is not None:
                write_run(folder, label, results[label])      # finished work is kept
        if folder is not None:
            table = write_report(folder, title, results, context, baseline)
            write_timeseries(folder, results, objectives[0])
        else:
            table = terminal_table(summary_frame(results), baseline)
    if say_setup:           # the GPU, model and cost model that ran: no default goes unseen
        print(f"{context['trace']} on {context['backend']}\n")
    print(table)
    if out:
        print(f"\nwrote {out}/ (report.md, summary.csv, records_*.csv, steps_*.parquet, "
              "timeseries.parquet, *.png)")
    return 0


# -- commands ---------------------------------------------------------------------------
def check_out(args, resume: bool = False) -> None:
    """The output folder is checked before the trace is read or anything is simulated."""
    from seqsched.analysis.output import check_output_folder
    if args.out is not None:
        check_output_folder(args.out, args.overwrite, resume)


def cmd_simulate(args) -> int:
    from seqsched.app.run import describe_backend
    from seqsched.app.trace_args import trace_from_args
    check_out(args)
    params = parse_params(args.policy_param, f"policy {args.policy} parameter")
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    cfg = config_from_args(args, args.policy, params)
    objectives = objectives_from_args(args)
    trace = trace_from_args(args)
    return run_all(trace, {args.policy: cfg}, args.out, args.overwrite,
                   f"seqsched simulate: {args.policy}",
                   {"trace": f"{trace.name} ({len(trace)} requests)",
                    "policy": f"{args.policy} {params}", "predictor": args.predictor,
                    "backend": describe_backend(cfg)},
                   objectives=objectives)


def policy_configs(args, specs: list[str]) -> dict:
    """spec -> RunConfig for each `NAME[:KEY=VALUE...]` policy spec; `--batch-size` is the
    default batch size of the static policies."""
    from seqsched.policies import STATIC_POLICIES
    configs = {}
    for spec in specs:
        name, params = parse_policy_spec(spec)
        if args.batch_size is not None and name in STATIC_POLICIES:
            params.setdefault("batch_size", args.batch_size)
        configs[spec] = config_from_args(args, name, params)
    return configs


def cmd_compare(args) -> int:
    from seqsched.app.run import describe_backend
    from seqsched.app.trace_args import trace_from_args
    args.title = None
    if args.experiment:
        apply_experiment(args, args.parser)
    if not args.policies:
        raise UserError("no policies to compare; pass --policies or an --experiment file")
    twice = next((p for i, p in enumerate(args.policies) if p in args.policies[:i]), None)
    if twice is not None:
        raise UserError(f"policy {twice} is listed twice; list each policy once")
    check_out(args)
    configs = policy_configs(args, args.policies)
    objectives = objectives_from_args(args)
    trace = trace_from_args(args)
    return run_all(trace, configs, args.out, args.overwrite, args.title or "seqsched compare",
                   {"trace": f"{trace.name} ({len(trace)} requests)",
                    "predictor": args.predictor,
                    "backend": describe_backend(next(iter(configs.values())))},
                   baseline=args.policies[0], objectives=objectives)


def cmd_sweep(args) -> int:
    from seqsched.app.sweep_grid import trace_options_from_args
    from seqsched.app.sweep_runner import sweep
    args.title = None
    if args.experiment:
        apply_experiment(args, args.parser)
    if args.out is None:
        raise UserError("a sweep needs --out DIR (each point's row is written as it finishes)")
    check_out(args, resume=args.resume)
    specs = [*(args.policy or []), *(args.policies or [])] or ["fcfs"]
    twice = next((spec for i, spec in enumerate(specs) if spec in specs[:i]), None)
    if twice is not None:
        raise UserError(f"policy {twice} is listed twice")
    configs = policy_configs(args, specs)
    return sweep(configs, trace_options_from_args(args), args.grid, args.out,
                 workers=args.workers, use_ray=args.ray, resume=args.resume,
                 overwrite=args.overwrite,
                 progress=not args.no_progress and sys.stderr.isatty(), title=args.title,
                 objectives=objectives_from_args(args))


DEMO_POLICIES = {
    "vanilla": ("vanilla", {}),
    "sorted": ("sorted", {}),
    "binned+VBS+FCR": ("binned", {"vbs": True, "fcr": True}),
    "fcfs": ("fcfs", {}),
    "sjf": ("sjf", {}),
}


def cmd_demo(args) -> int:
    from seqsched.app.run import RunConfig
    from seqsched.traces.synthetic import alpaca_vicuna
    if args.num_requests < 1:
        raise UserError(f"the number of requests (-n) must be >= 1, got {args.num_requests}")
    if args.out is not None:
        from seqsched.analysis.output import check_output_folder
        check_output_folder(args.out, overwrite=True)
    trace = alpaca_vicuna(args.num_requests, seed=args.seed)
    # The paper's accuracy: MAE ~62 tokens against the max over sampled lengths (Laplace scale
    # 76 gives MAE ~62 after clipping to [1, 512]; benchmarks/paper_reproduction.py calibrates
    # 72-79 on the real data); the length query costs a prefill of the prompt + ~30
    # instruction tokens and 8 answer tokens.
    predictor = {"base": "max-of-samples", "scale": 76.0, "seed": args.seed, "clip": 512,
                 "query_tokens": 30}
    configs = {label: RunConfig(policy=name, policy_params=params, predictor="noisy",
                                predictor_params=predictor, backend="paper-a100",
                                max_new_tokens=512, seed=args.seed)
               for label, (name, params) in DEMO_POLICIES.items()}
    t0 = time.perf_counter()
    print(f"seqsched demo: {len(trace)} synthetic Alpaca/Vicuna requests (offline), Vicuna-7B "
          "on the paper-a100 preset, noisy length predictor (MAE ~62), cap 512\n")
    code = run_all(trace, configs, args.out, True, "seqsched demo",
                   {"trace": f"{trace.name} ({len(trace)} requests, offline)",
                    "predictor": f"noisy {predictor}", "backend": "paper-a100"},
                   baseline="vanilla", say_setup=False)
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="seqsched", description="Simulation-first lab for LLM inference "
                    "scheduling: what if I scheduled this traffic with that policy on that GPU?")
    parser.add_argument("--version", action=Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("simulate", help="one trace x one policy x one backend",
                       description="Simulate one trace under one policy and backend.")
    p.add_argument("--policy", default="fcfs", help=POLICY_HELP)
    p.add_argument("--policy-param", action="append", metavar="KEY=VALUE",
                   help="policy parameter (repeatable)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size of a static policy (default 16)")
    add_run_options(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("compare", help="several policies side by side on the same trace",
                       description="Run several policies on the same trace and backend; "
                       "prints a table, writes CSV, plots and report.md with --out.")
    p.add_argument("--policies", nargs="+", metavar="SPEC", action=SpecList,
                   help="NAME[:KEY=VALUE...], e.g. vanilla sorted binned:vbs=false fcfs sjf "
                        "(or comma-separated); the first is the baseline")
    p.add_argument("--experiment", metavar="TOML",
                   help="read options from an experiment file (experiments/*.toml); options "
                        "given on the command line win")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size of the static policies (vanilla, sorted, binned)")
    add_run_options(p)
    p.set_defaults(func=cmd_compare, parser=p)

    p = sub.add_parser("sweep", help="a parameter grid x policies, one simulation per point "
                       "(local processes or Ray)",
                       description="Run the cartesian product of --grid values for each "
                       "policy, each point a full simulation, in local processes (--workers) "
                       "or as Ray tasks (--ray). Each finished point appends a row to "
                       "OUT.partial/sweep.csv (--resume skips the rows already there); at the "
                       "end: a table, sweep.csv in grid order, one plot per metric against the "
                       "first numeric grid key, report.md. Grid keys: a run option (gpu, model, "
                       "backend, replicas, router, seed, max_new_tokens, memory_fraction, "
                       "block_size, predictor, ...), an arrival option (rate, cv, speedup, "
                       "arrival, sample, max_output_tokens, num_requests), a policy parameter "
                       "(batch_size or policy.batch_size) or predictor.KEY; a grid value "
                       "overrides the same option given otherwise.")
    p.add_argument("--policy", action="append", metavar="SPEC",
                   help="NAME[:KEY=VALUE...], e.g. binned:vbs=false (repeatable; default "
                        "fcfs); " + POLICY_HELP.split(" (default fcfs")[0])
    p.add_argument("--policies", nargs="+", metavar="SPEC", action=SpecList,
                   help="more policies, as compare")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="one swept knob and its values, e.g. rate=2,4,8, batch_size=8,16, "
                        "gpu=A100-80GB,H100-SXM, predictor.scale=20,62 (repeatable: the "
                        "sweep is their cartesian product)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size of the static policies (vanilla, sorted, binned)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel points (default: min(CPUs, points))")
    p.add_argument("--ray", action="store_true",
                   help="run points as Ray tasks (extra: pip install -e .[ray])")
    p.add_argument("--resume", action="store_true",
                   help="keep OUT.partial/sweep.csv and run only the points missing from it")
    p.add_argument("--experiment", metavar="TOML",
                   help="read options from an experiment file (keys: these long option names, "
                        "e.g. grid = [\"rate=2,4\"]); the command line wins")
    add_run_options(p)
    p.set_defaults(func=cmd_sweep, parser=p)

    p = sub.add_parser("demo", help="the paper's setup on 1,024 synthetic requests, all policies",
                       description="1,024 synthetic Alpaca/Vicuna requests (lengths derived from "
                       "the Sequence Scheduling data), Vicuna-7B on the paper-a100 preset, "
                       "every policy; prints the table and writes a report folder.")
    p.add_argument("-n", "--num-requests", type=int, default=1024,
                   help="synthetic requests (default 1024, the paper's)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the workload and the noisy predictor (default 0)")
    p.add_argument("--out", default="seqsched-demo", help="output folder (default seqsched-demo)")
    p.set_defaults(func=cmd_demo)

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)   # which flags were typed
    from seqsched.app.guard import run_command
    return run_command(args)     # one error line, exit 2; SIGTERM/SIGINT clean up first


if __name__ == "__main__":
    sys.exit(main())
