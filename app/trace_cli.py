"""`seqsched trace inspect | convert | synth`, and the trace/arrival options every simulate /
compare / sweep command shares.

For the lead's parsers:

    from seqsched.app.trace_cli import add_trace_arguments, trace_from_args
    p = sub.add_parser("simulate"); p.add_argument("--seed", type=int, default=0); ...
    add_trace_arguments(p)            # TRACE (positional) or --trace, --arrival, --rate, ...
    trace = trace_from_args(args)     # a Trace, arrivals applied; TraceError on bad input

`add_trace_arguments` never redefines an option the parser already has (so a shared --seed,
or -n, stays the lead's); `trace_from_args` reads `args.seed` whoever defined it.

Order of operations in `trace_from_args`: read (with --rows/--window pushed down into CSV
reads) -> --sample -> --max-output-tokens -> arrival process (--arrival/--rate/--cv/--speedup).

Warnings (unsorted timestamps sorted, failed BurstGPT rows skipped, chars/4 estimates) are
logged on the ``seqsched.traces`` logger (Python `logging`), printed to stderr by default.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from seqsched.common.errors import UserError
from seqsched.common.params import parse_params
from seqsched.traces.request import Trace, TraceError

SYNTH_PREFIX = "synth:"
DEFAULT_SYNTH_N = 1000
_ADDED = "_trace_arguments_added"


# ---------------------------------------------------------------------------------------
# shared options
# ---------------------------------------------------------------------------------------
def add_trace_arguments(parser: argparse.ArgumentParser, *, positional: bool = True,
                        group_title: str = "trace and arrivals") -> argparse.ArgumentParser:
    """Add the trace source and arrival options to `parser` (skipping any flag it already
    defines). The source is a file path (any format `traces.io` reads) or synth:NAME."""
    from seqsched.traces.arrivals import ARRIVALS
    from seqsched.traces.io import FORMATS
    from seqsched.traces.synthetic import GENERATORS

    existing = set(parser._option_string_actions)  # noqa: SLF001 - argparse has no public API
    g = parser.add_argument_group(group_title)

    def add(*flags: str, **kw: Any) -> None:
        flags = tuple(f for f in flags if f not in existing)
        if flags and any(f.startswith("--") for f in flags):
            g.add_argument(*flags, **kw)

    source_help = (f"trace file (formats: {', '.join(FORMATS)}; detected from content) or "
                   f"synth:NAME ({', '.join(GENERATORS)})")
    if positional:
        g.add_argument("trace", nargs="?", metavar="TRACE", help=source_help)
    add("--trace", dest="trace_path", metavar="TRACE", help="the same, as an option")
    add("--format", dest="trace_format", choices=list(FORMATS), default=None,
        help="override format detection")
    add("-n", "--num-requests", type=int, default=None, metavar="N",
        help=f"requests to generate for synth:NAME (default {DEFAULT_SYNTH_N})")
    add("--seed", type=int, default=0, help="random seed (sampling, arrivals, synthesis)")
    add("--arrival", choices=ARRIVALS, default=None,
        help="arrival process (default: replay recorded times if the trace has them, "
             "else poisson when --rate is given, else offline)")
    add("--rate", type=float, default=None, metavar="R",
        help="requests/s: poisson/gamma rate, or with replay the target mean rate")
    add("--cv", type=float, default=None,
        help="gamma: coefficient of variation of inter-arrival gaps (1 = Poisson)")
    add("--speedup", type=float, default=None, metavar="X",
        help="replay recorded timestamps X times faster")
    add("--sample", type=int, default=None, metavar="N",
        help="keep N requests drawn at random (seeded), in arrival order")
    add("--max-output-tokens", type=int, default=None, metavar="N",
        help="cap output lengths (the paper's generation cap is 512)")
    add("--window", default=None, metavar="START:END",
        help="keep requests arriving in [START, END) seconds (units s/m/h/d allowed, either "
             "side may be empty: 1h:2h, :600), shifted to start at 0")
    add("--rows", default=None, metavar="A:B",
        help="keep file rows A <= i < B (before sorting; streamed for CSV)")
    add("--skip-invalid-rows", action="store_true",
        help="drop rows with missing/non-numeric/negative/zero token counts (counted)")
    add("--tokenizer", default=None, metavar="PATH",
        help="ShareGPT: local Hugging Face tokenizer dir or tokenizer.json for exact token "
             "counts (default: a labelled chars/4 estimate)")
    add("--trace-option", action="append", default=[], metavar="KEY=VALUE",
        help="reader option (burstgpt model=GPT-4, log_type='API log'; paper-lengths "
             "prompt_tokens=100) or synth parameter (e.g. prompt_median=512); repeatable")
    setattr(parser, _ADDED, True)
    return parser


def parse_span(text: str | None, what: str, *, integer: bool = False):
    """'A:B' -> (A, B) with empty sides None; durations accept s/m/h/d suffixes."""
    if text is None:
        return None
    if ":" not in text:
        raise TraceError(f"--{what} must look like START:END (e.g. 0:3600, 1h:2h, :1000), got "
                         f"{text!r}")
    lo, hi = text.split(":", 1)
    span = (_number(lo, what, integer), _number(hi, what, integer))
    if None not in span and span[1] <= span[0]:
        raise TraceError(f"--{what} {text} selects nothing: END must be greater than START")
    if integer and any(v is not None and v < 0 for v in span):
        raise TraceError(f"--{what} {text}: row numbers start at 0 (A:B keeps rows A <= i < B)")
    return span


_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _number(s: str, what: str, integer: bool):
    s = s.strip()
    if not s:
        return None
    if integer:
        try:
            v = int(s.replace("_", ""))
        except ValueError:
            raise TraceError(f"--{what}: {s!r} is not a whole row number") from None
        return v
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-z]*)", s.lower())
    if not m or m.group(2) not in _UNITS:
        raise TraceError(f"--{what}: {s!r} is not a time; use seconds or a number with s, m, "
                         "h or d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    try:
        return parse_params(items, "--trace-option")
    except UserError as e:
        raise TraceError(str(e)) from None


def trace_source(args: argparse.Namespace) -> str:
    pos = getattr(args, "trace", None)
    opt = getattr(args, "trace_path", None)
    if pos and opt and pos != opt:
        raise TraceError(f"two traces given ({pos!r} and --trace {opt!r}); give one")
    src = pos or opt
    if not src:
        raise TraceError("no trace given; pass a trace file path or synth:NAME "
                         "(e.g. synth:alpaca-vicuna -n 1024)")
    return str(src)


def synth_count(args: argparse.Namespace) -> int:
    """-n for synth:NAME (DEFAULT_SYNTH_N when not given; 0 or less is an error, not the
    default)."""
    n = getattr(args, "num_requests", None)
    return DEFAULT_SYNTH_N if n is None else n


def load_source(source: str, args: argparse.Namespace) -> Trace:
    """Read a file or run a generator, applying --rows/--window (no arrivals, no sampling)."""
    from seqsched.traces import arrivals
    from seqsched.traces.io import load_trace
    from seqsched.traces.synthetic import generate

    rows = parse_span(getattr(args, "rows", None), "rows", integer=True)
    window = parse_span(getattr(args, "window", None), "window")
    options = _parse_options(getattr(args, "trace_option", None))
    seed = getattr(args, "seed", 0) or 0
    if source.startswith(SYNTH_PREFIX):
        name = source[len(SYNTH_PREFIX):]
        trace = generate(name, synth_count(args), seed, **options)
        if rows is not None:
            trace = arrivals.slice_rows(trace, *rows)
        if window is not None:
            trace = arrivals.window(trace, *window)
        return trace
    tokenizer = getattr(args, "tokenizer", None)
    if tokenizer:
        options["tokenizer"] = tokenizer
    return load_trace(source, getattr(args, "trace_format", None), rows=rows, window=window,
                      skip_invalid=bool(getattr(args, "skip_invalid_rows", False)), **options)


def trace_from_args(args: argparse.Namespace) -> Trace:
    """The Trace the options describe: source, slicing, sampling, cap, arrival process."""
    from seqsched.traces import arrivals

    trace = load_source(trace_source(args), args)
    seed = getattr(args, "seed", 0) or 0
    if getattr(args, "sample", None) is not None:
        trace = arrivals.sample(trace, args.sample, seed)
    if getattr(args, "max_output_tokens", None) is not None:
        trace = arrivals.cap_output(trace, args.max_output_tokens)
    return arrivals.apply_arrival(trace, getattr(args, "arrival", None),
                                  rate=getattr(args, "rate", None),
                                  cv=getattr(args, "cv", None),
                                  speedup=getattr(args, "speedup", None), seed=seed)


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
    """Writes to whatever sys.stderr is at emit time (safe under output capture)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def install_warning_handler() -> None:
    """Print ``seqsched.traces`` warnings as `seqsched: warning: ...` lines on stderr, unless
    the application already configured logging. Called by the CLI, not on import."""
    log = logging.getLogger("seqsched.traces")
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
    pc.add_argument("output", metavar="OUT", help="output file: .jsonl, .csv or .parquet")
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


def cmd_inspect(args: argparse.Namespace) -> int:
    trace = trace_from_args(args)
    print(summary_table(trace))
    if not args.no_plot:
        path = args.plot or Path("out/traces") / f"{_safe(trace.name)}-lengths.png"
        print(f"\nhistogram: {histogram_png(trace, path)}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from seqsched.traces.io import save_trace
    trace = trace_from_args(args)
    path = save_trace(trace, args.output)
    print(f"wrote {len(trace):,} requests to {path}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from seqsched.traces.io import save_trace
    args.trace = f"{SYNTH_PREFIX}{args.name}"
    args.trace_path = None
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
