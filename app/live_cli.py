"""`seqsched calibrate` and `seqsched validate`: the live backend's commands.

    register(subparsers)      # app/cli.py adds both commands; each sets func(args) -> exit code

calibrate (`app/calibrate_cli.py`): measure a live model, fit the profile cost model.
validate (`app/validate_cli.py`): the same trace and policy live and in simulation, compared.
`python -m seqsched.app.live_cli calibrate|validate ...` works on its own too.
"""

from __future__ import annotations

from seqsched.app.calibrate_cli import cmd_calibrate
from seqsched.app.measured_cli import add_measured_arguments
from seqsched.app.live_common import _add_model_args
from seqsched.app.validate_cli import cmd_validate


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="measure a live model and fit a profile cost model",
        description="Measure prefill (batch x prompt length, chunked and mixed) and decode "
                    "(batch x context) step times of a live model with warm-up and repeats "
                    "(median), fit the profile cost model, and write the profile JSON.")
    _add_model_args(p)
    p.add_argument("--out", default="profile.json", help="profile JSON to write")
    p.add_argument("--grid", default=None,
                   help="measurement grid: cpu, quick or gpu (default gpu on cuda, cpu on cpu)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per point")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs per point")
    p.add_argument("--decode-iterations", type=int, default=None,
                   help="decode iterations per decode point")
    p.add_argument("--name", default=None, help="profile name (default model-device-dtype)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate)

    v = subparsers.add_parser(
        "validate", help="run a trace live and in simulation and compare",
        description="Run a trace live (a real model, LiveExecutor) and in simulation (the "
                    "profile's cost model) with the same policy, predictor and seed; print and "
                    "save simulated vs measured metrics with relative errors and a per-request "
                    "latency scatter plot.")
    v.add_argument("--trace", default=None,
                   help="trace file (any format traces.io reads) or synth:NAME (--requests of "
                        "them, seeded by --seed)")
    v.add_argument("--policy", default="vanilla",
                   help="scheduling policy (default vanilla; with --measured a continuous "
                        "policy, default fcfs)")
    v.add_argument("--policy-param", "--param", dest="param", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="policy parameter, e.g. batch_size=16, vbs=true (repeatable)")
    v.add_argument("--predictor", default="oracle",
                   help="length predictor (default oracle). Its cost is on both timelines; "
                        "live, llm-lora / llm-perception run their length query on the served "
                        "model (a folder with a tokenizer; the LoRA adapter attached to it) "
                        "and every predict step is timed; a predictor that charges a query "
                        "shape (e.g. noisy with query_tokens=30) has that shape timed on the "
                        "served model; proxy charges its own measured seconds")
    v.add_argument("--predictor-param", action="append", default=[], metavar="KEY=VALUE",
                   help="predictor parameter (repeatable)")
    v.add_argument("--profile", default=None,
                   help="profile JSON from `seqsched calibrate` (or a built-in profile name); "
                        "needed for a live run, optional with --measured")
    _add_model_args(v, default_model=None)
    v.add_argument("--requests", type=int, default=None, help="use the first N requests")
    v.add_argument("--max-new-tokens", type=int, default=None,
                   help="clip every response to this many tokens (the run's cap)")
    v.add_argument("--gpu", default=None,
                   help="GPU spec for the engine's KV-memory accounting (default A100-80GB; "
                        "with --measured the GPU that ran the recorded run)")
    v.add_argument("--kv-model", default=None,
                   help="model spec for KV accounting (default: --model if it is a shape, "
                        "else llama-7b)")
    v.add_argument("--memory-fraction", "--gpu-memory-utilization", type=float, default=0.9,
                   help="share of the --gpu's memory for weights + KV cache in the engine's "
                        "accounting (default 0.9); lower it to exercise preemption")
    v.add_argument("--length-mode", default="forced", choices=["forced", "natural"],
                   help="forced: emit the trace's lengths (any weights); natural: stop at EOS")
    v.add_argument("--out", default="validate_out", help="output folder")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_measured_arguments(v)
    v.set_defaults(func=cmd_validate)


def main(argv: list[str] | None = None) -> int:
    """`python -m backends.live_cli ARGS` = `seqsched ARGS`."""
    from seqsched.app.cli import main as seqsched_main
    return seqsched_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
