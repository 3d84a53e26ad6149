"""`seqsched validate --measured RUN`: replay a run someone already measured on a real server
and report the simulator's error per metric.

    seqsched validate --measured runs/rtxpro6000-llama-3.1-8b-vllm-0.19/ --gpu RTX-PRO-6000 \
        --out val/ [--profile P] [--max-num-seqs 128 ...]

The recorded workload (arrivals, prompt and output lengths) runs through the simulator with
the run's engine settings (its metadata; vLLM options on the command line override them) and
a continuous policy (fcfs, as vLLM). Output: a table; OUT/errors.csv
(`metric,simulated,measured,error_pct`), OUT/requests.csv (per request, side by side),
OUT/report.md, scatter and CDF plots, and when the run has a per-second log, running /
waiting / KV use over time simulated beside measured. Everything that bad input can break is
checked before OUT exists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError
from seqsched.common.params import parse_params


def add_measured_arguments(p) -> None:
    from seqsched.app.trace_args import add_bench_arrivals
    from seqsched.app.vllm_args import add_vllm_options
    from seqsched.traces.recorded import RECORDED_FORMATS

    g = p.add_argument_group("recorded run (--measured)")
    g.add_argument("--measured", metavar="RUN", default=None,
                   help="compare with a recorded run instead of a live one: an LLMServingSim "
                        "bench folder (workload.jsonl, requests.jsonl, meta.json, "
                        "timeseries.csv) or a vLLM bench result JSON")
    g.add_argument("--measured-format", choices=RECORDED_FORMATS, default=None,
                   help="override format detection")
    g.add_argument("--workload", metavar="JSONL", default=None,
                   help="an LLMServingSim run's workload when its folder has no workload.jsonl "
                        "(LLMServingSim keeps it in workloads/, meta.json's dataset_path)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_bench_arrivals(lambda *flags, **kw: g.add_argument(*flags, **kw))
    add_vllm_options(p)


def builtin_model(name: str) -> str:
    """A built-in model for a run's model name: as given (a built-in name, alias or
    config.json), else the built-in shape its Hugging Face id names with release tags peeled
    (backends/specs.builtin_model_name: mistralai/Mixtral-8x7B-Instruct-v0.1 -> mixtral-8x7b,
    meta-llama/Meta-Llama-3-8B-Instruct -> llama-3-8b). Fine-tunes keep their base model's
    shape; a quantised name (-AWQ, -FP8) is not peeled: its weights differ, so it needs its
    config.json."""
    from seqsched.backends.spec_files import resolve_model
    from seqsched.backends.specs import MODELS, builtin_model_name

    try:
        spec = resolve_model(name)
    except UserError:
        found = builtin_model_name(name)
        if found is None:
            raise
        return found
    return spec.name if spec.name in MODELS else name


def measured_config(args, run):
    """The RunConfig that replays `run`: flags first, then the run's metadata."""
    from seqsched.app.run import RunConfig
    from seqsched.app.vllm_args import apply_to_config, vllm_settings

    unsupported_settings(run)
    gpu = args.gpu or run.engine.get("gpu") or recorded_gpu(run)
    model = args.model or run.engine.get("model") or run.engine.get("model_id")
    if not model:
        raise UserError(f"recorded run {run.name}: its metadata names no model; pass --model")
    from seqsched.policies import STATIC_POLICIES

    policy = "fcfs" if args.policy in (None, "vanilla") else args.policy
    if policy in STATIC_POLICIES:
        raise UserError(f"policy {policy} is a static (HF generate) policy; a recorded serving "
                        "run replays under a continuous one (fcfs, sjf, srpt, ltr)")
    cfg = RunConfig(policy=policy,
                    policy_params=parse_params(args.param, "--policy-param"),
                    predictor=args.predictor,
                    predictor_params=parse_params(args.predictor_param, "--predictor-param"),
                    gpu=gpu, model=builtin_model(str(model)), profile=args.profile,
                    seed=args.seed, max_new_tokens=args.max_new_tokens)
    if not run.engine.get("vllm_version") and not getattr(args, "vllm_version", None) and \
            getattr(args, "async_scheduling", None) is None:
        run.notes.append("the run names no vLLM version: scheduled with seqsched's defaults "
                         "(async scheduling and full-prompt admission off, as vLLM before "
                         "0.19); for a newer server give --vllm-version (e.g. 0.19)")
    # a vLLM server runs its CUDA graphs unless the run says --enforce-eager
    return apply_to_config(cfg, *vllm_settings(args, {"cudagraph_padding": True, **run.engine}))


def unsupported_settings(run) -> None:
    """Say what the replay models only in part: pipeline parallelism (app/pipeline_setup.py;
    stage times split from the cost model, activations over the GPU's link). A quantised KV
    cache is replayed with a note: the KV capacity is the run's own where its metadata
    records the block count, but attention is timed at the model's dtype."""
    pp = int(run.engine.get("pipeline_parallel_size") or 1)
    if pp > 1:
        run.notes.append(f"pipeline_parallel_size {pp}: stages of the model's layers (vLLM's "
                         "split), each timed as its share of the cost model's step plus the LM "
                         "head on the last, activations sent over the GPU's interconnect")
    kv = str(run.engine.get("kv_cache_dtype") or "auto").lower()
    if kv not in ("auto", "bfloat16", "float16", "half"):
        run.notes.append(f"kv_cache_dtype {kv}: attention is timed as at the model's dtype"
                         + ("" if run.engine.get("kv_blocks") else
                            " and the KV cache sized so (the metadata records no block count;"
                            " pass --kv-blocks N from vLLM's log)"))


def recorded_gpu(run) -> str:
    """The built-in GPU a run ran on, from the device name its metadata logged, else from its
    folder names (LLMServingSim files runs under bench/examples/<GPU>/...); said in a note."""
    from seqsched.backends.device_names import gpu_for_device, gpu_in_name
    from seqsched.backends.specs import GPUS

    device = run.engine.get("device_name")
    if device:
        gpu = gpu_for_device(device)
        if gpu is None:
            raise UserError(f"recorded run {run.name} ran on {device!r}, which is not a "
                            f"built-in GPU ({', '.join(GPUS)}); pass --gpu NAME or --gpu "
                            "my_gpu.toml")
        run.notes.append(f"GPU {gpu}: the run's metadata names its device {device!r}")
        return gpu
    parts = Path(run.path).resolve().parts[-4:] if run.path else (run.name,)
    gpu = gpu_in_name(parts, GPUS)
    if gpu is None:
        raise UserError(f"recorded run {run.name}: its metadata does not say which GPU ran it; "
                        "pass --gpu NAME")
    run.notes.append(f"GPU {gpu}: read from the run's folder name (its metadata names no "
                     "device); pass --gpu to change it")
    return gpu


def cmd_measured(args) -> int:
    import sys

    from seqsched.analysis.measured import (engine_receipt, error_table, paired,
                                            sim_latencies)
    from seqsched.analysis.output import output_folder
    from seqsched.app.run import build_cost_model, execute, policy_params, prepare
    from seqsched.app.trace_args import bench_traffic
    from seqsched.backends.executor import CostModelExecutor
    from seqsched.traces.recorded import read_recorded

    if args.trace is not None:
        raise UserError("give either --measured RUN (a recorded run brings its own workload) "
                        "or --trace, not both")
    run = read_recorded(args.measured, args.measured_format,
                        seed=args.seed if args.seed else None, workload=args.workload,
                        traffic=bench_traffic(args))
    cfg = measured_config(args, run)
    cost = build_cost_model(cfg)      # with the run's expert parallelism (app/cost_setup.py)
    executor = CostModelExecutor(cost)         # built once: its mismatch warning says once
    prepared = prepare(run.trace, cfg, executor=executor)   # every check before the folder
    out = Path(args.out)
    with output_folder(out, args.overwrite) as folder:
        result = execute(prepared)
        # the measured clock starts at the engine's receipt (queued_ts) or the client's send
        sim = sim_latencies(result.records, engine_receipt(result.records, result.steps)
                            if run.clock == "queued" else None)
        table = error_table(sim, run.measured)
        settings = {"policy": cfg.policy, **policy_params(cfg), "gpu": cfg.gpu,
                    "model": cfg.model, "gpu_memory_utilization": cfg.memory_fraction,
                    "block_size": cfg.block_size, "kv_blocks": cfg.kv_blocks,
                    "kv_capacity_tokens": result.kv_capacity_tokens,
                    "cost_model": cost.name, **({"replicas": cfg.replicas}
                                                if cfg.replicas > 1 else {}),
                    **({"dp_lockstep": cfg.dp_lockstep} if cfg.dp_lockstep > 1 else {}),
                    **({"pipeline_parallel_size": cfg.pp} if cfg.pp > 1 else {}),
                    **({"max_concurrency": cfg.max_concurrency}
                       if cfg.max_concurrency is not None else {}),
                    **({"enforce_eager": "on (no CUDA graphs: no DP padding)"}
                       if cfg.enforce_eager else {}),
                    **({"cudagraph_padding": "off"} if not cfg.cudagraph_padding else {})}
        write_outputs(folder, run, result, sim, table, settings, paired(sim, run.measured))
    from seqsched.backends.efficiency import borrowed_from

    what = settings["cost_model"]
    shape = getattr(cost, "shape", None)
    if shape is not None:                        # the roofline with kernel-measured shapes
        what += (f" with kernel-measured efficiencies by shape (GEMMs at "
                 f"{min(shape.gemm_efficiency):.0%}-{max(shape.gemm_efficiency):.0%} of their "
                 "roofline bound by token count; attention and per-kernel floors"
                 + (f"; {borrowed}" if (borrowed := borrowed_from(cfg.gpu)) else "") + ")"
                 " -- no built-in kernel profile for this GPU x model x TP")
    elif hasattr(cost, "flops_efficiency"):     # the roofline: at which efficiency, and why
        eff = (cost.flops_efficiency, cost.bandwidth_efficiency)
        what += (f" at {eff[0]:.1%} of peak FLOP/s and {eff[1]:.1%} of peak bandwidth "
                 + ("(kernel-measured efficiency)" if eff != (1.0, 1.0) else
                    f"(datasheet peaks: no kernel measurements of {cfg.gpu})")
                 + " -- no built-in kernel profile for this GPU x model x TP")
    where = f"{cfg.gpu} / {cfg.model}" + (f" / TP{cfg.tp}" if cfg.tp > 1 else "") + (
        f" / PP{cfg.pp}" if cfg.pp > 1 else "") + (
        f" x {cfg.replicas} DP replicas" if cfg.replicas > 1 else "")
    print(f"{run.name} ({run.format}, {len(run.trace)} requests) replayed on {where}, "
          f"{what}; KV {result.kv_capacity_tokens} tokens")
    for text in run.notes:
        print(f"seqsched: note: {text}", file=sys.stderr)
    print(markdown_errors(table))
    print(f"\nwrote {out}/ (errors.csv, requests.csv, report.md, *.png)")
    return 0


def write_outputs(folder: Path, run, result, sim, table, settings: dict, pairs) -> None:
    from seqsched.analysis import measured_plots
    from seqsched.analysis.measured import sim_timeseries

    table.to_csv(folder / "errors.csv", index=False, float_format="%.6g")
    pairs.to_csv(folder / "requests.csv", index=False, float_format="%.6g")
    result.records.to_csv(folder / "records_sim.csv", index=False)
    figures = [measured_plots.scatter(pairs, folder / "scatter.png",
                                      f"{run.name}: simulated vs measured, per request"),
               measured_plots.cdfs(sim, run.measured, folder / "cdf.png")]
    if run.timeseries is not None:
        ticks = run.timeseries["t"].to_numpy(float)
        ts = sim_timeseries(result.records, result.steps, result.kv_capacity_tokens, ticks)
        both = ts.merge(run.timeseries[["t", "running", "waiting", "kv_cache_pct"]], on="t",
                        suffixes=("_simulated", "_measured"))
        both.to_csv(folder / "timeseries.csv", index=False, float_format="%.6g")
        figures.append(measured_plots.timeseries(ts, run.timeseries, folder / "timeseries.png"))
    (folder / "settings.json").write_text(json.dumps(
        {"run": run.name, "format": run.format, "engine_metadata": run.engine,
         "notes": run.notes, "simulated_with": settings}, indent=1, default=str) + "\n",
        encoding="utf-8")
    lines = [f"# seqsched validate --measured: {run.name}", "",
             f"Recorded run `{run.name}` ({run.format}, {len(run.trace)} requests) replayed "
             "with its own arrivals and lengths.", "",
             "Simulated with: " + ", ".join(f"{k} {v}" for k, v in settings.items()), "",
             *[f"- {n}" for n in run.notes], "",
             markdown_errors(table), "",
             "error_pct = 100 (simulated - measured) / measured. TTFT = first token - arrival, "
             "end-to-end = last token - arrival (arrival: "
             + ("the engine's receipt, queued_ts; simulated: the end of the step running "
                "when the request arrived" if run.clock == "queued" else "the client's send")
             + "), TPOT = (end-to-end - TTFT) / (output - 1); ITL "
             "pools inter-token gaps (a request without per-token times contributes its TPOT "
             "once per gap).", "",
             *[f"![{p.stem}]({p.name})" for p in figures]]
    (folder / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def markdown_errors(table) -> str:
    from tabulate import tabulate

    def fmt(v: float) -> str:
        return "nan" if not math.isfinite(v) else f"{v:.4g}"

    rows = [[r.metric, fmt(r.simulated), fmt(r.measured),
             "n/a" if not np.isfinite(r.error_pct) else f"{r.error_pct:+.1f}%"]
            for r in table.itertuples()]
    return tabulate(rows, headers=["metric", "simulated", "measured", "error"],
                    tablefmt="github")
