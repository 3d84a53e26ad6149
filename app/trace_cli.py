"""`seqsched trace inspect | convert | synth | concat`: look at, convert and generate traces.

The trace/arrival options shared with simulate/compare/sweep live in `app/trace_args.py`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from seqsched.common.errors import UserError
from seqsched.traces.request import Trace, TraceError
from seqsched.app.trace_args import (SYNTH_PREFIX, add_trace_arguments, synth_count,
                                     trace_from_args)


# ---------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------
QUANTILES = (0.5, 0.9, 0.99)


def describe(trace: Trace) -> dict[str, Any]:
    """Headline numbers of a trace (what `trace inspect` prints)."""
    from seqsched.traces.arrivals import is_offline, mean_rate
    a = trace.arrival_s
    out: dict[str, Any] = {"name": trace.name, "requests": len(trace),
                           "duration_s": float(a[-1] - a[0]) if len(a) else 0.0,
                           "offline": is_offline(trace)}
    rate = mean_rate(trace)
    out["rate_per_s"] = rate if np.isfinite(rate) and not out["offline"] else None
    if not out["offline"] and len(a) > 2:
        gaps = np.diff(a)
        out["gap_cv"] = float(gaps.std() / gaps.mean()) if gaps.mean() > 0 else None
    for col, values in (("prompt_tokens", trace.prompt_tokens),
                        ("output_tokens", trace.output_tokens)):
        out[col] = {"mean": float(values.mean()), "min": int(values.min()),
                    **{f"p{int(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES},
                    "max": int(values.max())}
    out["extra_columns"] = trace.extra_columns
    return out


def summary_table(trace: Trace) -> str:
    from tabulate import tabulate
    d = describe(trace)
    head = [["requests", f"{d['requests']:,}"],
            ["duration", "offline (all at t=0)" if d["offline"] else
             f"{d['duration_s']:,.1f} s"],
            ["mean rate",
             "-" if d["rate_per_s"] is None else f"{d['rate_per_s']:.3f} req/s"]]
    if d.get("gap_cv") is not None:
        head.append(["gap CV", f"{d['gap_cv']:.2f}"])
    if d["extra_columns"]:
        head.append(["extra columns", ", ".join(d["extra_columns"])])
    stats = [[col.replace("_", " "), *(f"{d[col][k]:,.1f}" for k in
              ("mean", "min", "p50", "p90", "p99", "max"))]
             for col in ("prompt_tokens", "output_tokens")]
    return (f"trace {d['name']}\n" + tabulate(head, tablefmt="plain") + "\n\n"
            + tabulate(stats, headers=["tokens", "mean", "min", "p50", "p90", "p99", "max"],
                       tablefmt="github"))


def histogram_png(trace: Trace, path: str | Path) -> Path:
    """Histograms of prompt and output lengths (seaborn, log-x when the range is wide)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(trace)
    df = trace.df
    if n > 200_000:  # the shape does not need every row
        df = df.sample(200_000, random_state=0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, col, color in zip(axes, ("prompt_tokens", "output_tokens"), ("C0", "C1")):
        v = df[col].to_numpy()
        log = bool(v.min() > 0 and v.max() / max(v.min(), 1) > 100)
        sns.histplot(pd.Series(v, name=col), bins=60, log_scale=log, ax=ax, color=color)
        ax.set_xlabel(col.replace("_", " ") + (" (log scale)" if log else ""))
        ax.axvline(float(np.median(v)), color="k", lw=1, ls="--", label="median")
        ax.legend()
    fig.suptitle(f"{trace.name}: {n:,} requests")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time (safe under output capture), each
    distinct line once: `compare` builds one cost model per policy, and each would repeat the
    same one-time warning."""

    def __init__(self):
        super().__init__()
        self.said: set[str] = set()

    def emit(self, record) -> None:
        line = self.format(record)
        if line not in self.said:
            self.said.add(line)
            super().emit(record)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def install_warning_handler(logger: str = "seqsched.traces") -> None:
    """Print `logger`'s warnings as `seqsched: warning: ...` lines on stderr, unless the
    application already configured logging. Called by the CLI, not on import."""
    log = logging.getLogger(logger)
    if not log.handlers and not logging.getLogger().handlers:
        handler = _StderrHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("seqsched: warning: %(message)s"))
        log.addHandler(handler)


def register(subparsers) -> argparse.ArgumentParser:
    """Add `trace inspect | convert | synth` to a subparsers object."""
    from seqsched.traces.synthetic import GENERATOR_INFO
    install_warning_handler()
    p = subparsers.add_parser("trace", help="inspect, convert and synthesise request traces",
                              description="Inspect, convert and synthesise request traces.")
    sub = p.add_subparsers(dest="trace_command", metavar="{inspect,convert,synth,concat}")
    sub.required = True

    pi = sub.add_parser("inspect", help="row count, duration, rate, length quantiles and a "
                                        "histogram PNG of a trace")
    add_trace_arguments(pi)
    pi.add_argument("--plot", default=None, metavar="PNG",
                    help="histogram path (default out/traces/<name>-lengths.png)")
    pi.add_argument("--no-plot", action="store_true", help="skip the histogram")
    pi.set_defaults(func=cmd_inspect)

    pc = sub.add_parser("convert", help="convert a trace to native .jsonl/.csv/.parquet "
                                        "(with any slicing/arrival options applied)")
    add_trace_arguments(pc)
    pc.add_argument("output", metavar="OUT", nargs="?",
                    help="output file: .jsonl, .csv or .parquet (or -o OUT, as synth and concat)")
    pc.add_argument("-o", "--output", dest="output_flag", default=None, metavar="OUT",
                    help="the same, as an option")
    pc.set_defaults(func=cmd_convert)

    names = "\n".join(f"  {k:14s} {v['description']}" for k, v in GENERATOR_INFO.items())
    ps = sub.add_parser("synth", help="generate a synthetic workload",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Generate a synthetic workload.\n\nworkloads:\n" + names)
    ps.add_argument("name", metavar="NAME", choices=list(GENERATOR_INFO),
                    help=", ".join(GENERATOR_INFO))
    add_trace_arguments(ps, positional=False)
    ps.add_argument("-o", "--output", default=None, metavar="OUT",
                    help="output file (default out/traces/<name>-n<N>-s<seed>.jsonl)")
    ps.set_defaults(func=cmd_synth)

    pj = sub.add_parser("concat", help="join traces into one file (merge their timelines, or "
                                       "play them one after another)",
                        description="Join trace files of any readable format into one native "
                        "trace. --mode merge keeps every trace's own arrival times and "
                        "interleaves them (mixing workloads); --mode sequential starts each "
                        "trace --gap seconds after the previous one's last arrival. A `source` "
                        "column records each request's file; ids that collide are prefixed "
                        "with it.")
    pj.add_argument("inputs", nargs="+", metavar="TRACE", help="trace files (two or more)")
    pj.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="output file: .jsonl, .csv or .parquet")
    pj.add_argument("--mode", choices=("merge", "sequential"), default="merge")
    pj.add_argument("--gap", type=float, default=0.0, metavar="S",
                    help="with --mode sequential: seconds between one trace's last arrival and "
                         "the next one's first (default 0)")
    pj.add_argument("--format", default=None, help="reader for every input (default: detect)")
    pj.set_defaults(func=cmd_concat)
    return p


def _check_out_file(path, flag: str, trace_output: bool = True) -> None:
    """Output files are checked before any trace is read (and their extension too)."""
    from seqsched.analysis.output import check_output_file
    from seqsched.traces.io import output_suffix
    check_output_file(path, flag)
    if trace_output:
        output_suffix(Path(path))


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.plot is not None and not args.no_plot:
        _check_out_file(args.plot, "--plot", trace_output=False)
    trace = trace_from_args(args)
    print(summary_table(trace))
    if not args.no_plot:
        path = args.plot or Path("out/traces") / f"{_safe(trace.name)}-lengths.png"
        print(f"\nhistogram: {histogram_png(trace, path)}")
    return 0


def convert_output(args: argparse.Namespace) -> str:
    """OUT as a positional or `-o OUT`; with `--trace IN OUT` argparse fills TRACE with OUT."""
    if args.output_flag is not None:
        if args.output is not None:
            raise UserError(f"two output files given ({args.output!r} and -o "
                            f"{args.output_flag!r}); give one")
        return args.output_flag
    if args.output is None and args.trace and args.trace_path:
        args.output, args.trace = args.trace, None
    if args.output is None:
        raise UserError("no output file given; write seqsched trace convert TRACE -o OUT "
                        "(.jsonl, .csv or .parquet)")
    return args.output


def cmd_convert(args: argparse.Namespace) -> int:
    from seqsched.traces.io import save_trace
    args.output = convert_output(args)
    _check_out_file(args.output, "OUT")
    trace = trace_from_args(args)
    path = save_trace(trace, args.output)
    print(f"wrote {len(trace):,} requests to {path}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from seqsched.traces.io import save_trace
    args.trace = f"{SYNTH_PREFIX}{args.name}"
    args.trace_path = None
    if args.output is not None:
        _check_out_file(args.output, "--output")
    trace = trace_from_args(args)
    n = synth_count(args)
    out = args.output or Path("out/traces") / f"{args.name}-n{n}-s{args.seed}.jsonl"
    path = save_trace(trace, out)
    print(summary_table(trace))
    print(f"\nwrote {path}")
    return 0


def cmd_concat(args: argparse.Namespace) -> int:
    from seqsched.traces.arrivals import concat
    from seqsched.traces.io import load_trace, save_trace
    if len(args.inputs) < 2:
        raise TraceError("trace concat needs two or more trace files")
    if args.gap < 0 or not np.isfinite(args.gap):
        raise TraceError(f"--gap must be a finite number of seconds >= 0, got {args.gap}")
    _check_out_file(args.output, "--output")
    traces = [load_trace(path, args.format) for path in args.inputs]
    joined = concat(traces, mode=args.mode, gap_s=args.gap)
    path = save_trace(joined, args.output)
    print(summary_table(joined))
    print(f"\nwrote {len(joined):,} requests from {len(traces)} traces to {path}")
    return 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name) or "trace"


# ---------------------------------------------------------------------------------------
# stand-alone entry point (python -m traces.cli trace ...), same contract as sim/cli.py
# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """`python -m traces.cli ARGS` = `seqsched ARGS`."""
    from seqsched.app.cli import main as seqsched_main
    return seqsched_main(argv)


if __name__ == "__main__":
    sys.exit(main())
