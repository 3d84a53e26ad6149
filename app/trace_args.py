"""The trace/arrival options every simulate / compare / sweep / validate command shares.

For the lead's parsers:

    from seqsched.app.trace_args import add_trace_arguments, trace_from_args
    p = sub.add_parser("simulate"); p.add_argument("--seed", type=int, default=0); ...
    add_trace_arguments(p)            # TRACE (positional) or --trace, --arrival, --rate, ...
    trace = trace_from_args(args)     # a Trace, arrivals applied; TraceError on bad input

`add_trace_arguments` never redefines an option the parser already has (so a shared --seed,
or -n, stays the lead's); `trace_from_args` reads `args.seed` whoever defined it.

Order of operations in `trace_from_args`: read (with --rows/--window pushed down into CSV
reads) -> --sample -> --max-output-tokens -> arrival process (--arrival/--rate/--cv/--speedup, or
vLLM bench's --request-rate/--burstiness/--ramp-up-* as `vllm bench serve` draws them).

Warnings (unsorted timestamps sorted, failed BurstGPT rows skipped, chars/4 estimates) are
logged on the ``seqsched.traces`` logger (Python `logging`), printed to stderr by default.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any


from seqsched.common.errors import UserError
from seqsched.common.params import parse_params
from seqsched.traces.request import Trace, TraceError
from seqsched.traces.validate import check_arrivals

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

    source_help = (f"trace file (formats: {', '.join(FORMATS)}; detected from content), a "
                   "recorded run's traffic (an LLMServingSim bench folder, a vLLM bench "
                   f"result JSON) or synth:NAME ({', '.join(GENERATORS)})")
    if positional:
        g.add_argument("trace", nargs="?", metavar="TRACE", help=source_help)
    add("--trace", dest="trace_path", metavar="TRACE", help="the same, as an option")
    add("--format", dest="trace_format", choices=list(FORMATS), default=None,
        help="override format detection")
    add("-n", "--num-requests", type=int, default=None, metavar="N",
        help=f"requests to generate for synth:NAME (default {DEFAULT_SYNTH_N})")
    add("--seed", type=int, default=0,
        help="random seed (sampling, arrivals, synthesis; default 0)")
    add("--arrival", choices=ARRIVALS, default=None,
        help="arrival process (default: replay recorded times if the trace has them, "
             "else poisson when --rate is given, else offline)")
    add("--rate", type=float, default=None, metavar="R",
        help="requests/s: poisson/gamma rate, or with replay the target mean rate")
    add("--cv", type=float, default=None,
        help="gamma: coefficient of variation of inter-arrival gaps (1 = Poisson)")
    add("--speedup", type=float, default=None, metavar="X",
        help="replay recorded timestamps X times faster")
    add_bench_arrivals(add)
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


# vLLM bench's traffic options (`vllm bench serve`'s names, traces/bench_arrivals.py): given,
# they draw the arrivals as vLLM's client does; left out, a command's inputs are as before
BENCH_ARRIVAL_KEYS = ("request_rate", "burstiness", "ramp_up_strategy", "ramp_up_start_rps",
                      "ramp_up_end_rps")


def add_bench_arrivals(add) -> None:
    """`vllm bench serve`'s traffic options; `add(*flags, **kw)` adds one to a parser."""
    from seqsched.traces.bench_arrivals import RAMP_STRATEGIES

    add("--request-rate", type=float, default=None, metavar="R",
        help="vLLM bench's arrivals: R requests/s (inf: all at t = 0) drawn as `vllm bench "
             "serve --request-rate R --burstiness B --seed S` draws them (numpy's seeded "
             "gamma gaps, rescaled so the last is sent at N / R); --seed is its seed")
    add("--burstiness", type=float, default=None, metavar="B",
        help="vLLM bench's gamma shape for --request-rate or a ramp-up (1 = Poisson, the "
             "default; < 1 burstier; inf: even gaps)")
    add("--ramp-up-strategy", choices=RAMP_STRATEGIES, default=None,
        help="vLLM bench's ramp-up: request i of N has rate start + (end - start) i/(N-1) "
             "(linear) or start (end/start)^(i/(N-1)) (exponential), gaps drawn as with "
             "--request-rate but not rescaled")
    add("--ramp-up-start-rps", type=int, default=None, metavar="R",
        help="the ramp-up's first rate, requests/s (> 0)")
    add("--ramp-up-end-rps", type=int, default=None, metavar="R",
        help="the ramp-up's last rate, requests/s (>= the start)")


def bench_traffic(args) -> dict:
    """The vLLM bench traffic options given on a command line (key -> value)."""
    return {k: getattr(args, k) for k in BENCH_ARRIVAL_KEYS
            if getattr(args, k, None) is not None}


def bench_arrival_trace(trace: Trace, traffic: dict, args) -> Trace:
    """`trace` re-timed by vLLM bench's traffic options (`traffic`, from `bench_traffic`)."""
    from seqsched.traces import arrivals
    from seqsched.traces.bench_arrivals import ramp_up

    mixed = [f for f, k in (("--arrival", "arrival"), ("--rate", "rate"), ("--cv", "cv"),
                            ("--speedup", "speedup")) if getattr(args, k, None) is not None]
    if mixed:
        raise TraceError(f"{', '.join(mixed)} and vLLM bench's --request-rate/--burstiness/"
                         "--ramp-up-* both set the arrivals; give one of the two")
    ramp = ramp_up(traffic.get("ramp_up_strategy"), traffic.get("ramp_up_start_rps"),
                   traffic.get("ramp_up_end_rps"))
    if ramp is None and "request_rate" not in traffic:
        raise TraceError("--burstiness shapes vLLM bench's arrivals: give --request-rate R "
                         "or a ramp-up (--ramp-up-strategy ...) with it")
    return arrivals.vllm_bench(trace, traffic.get("request_rate"), traffic.get("burstiness"),
                               ramp, getattr(args, "seed", 0) or 0)


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
    from seqsched.traces.recorded import recorded_traffic
    from seqsched.traces.synthetic import generate

    rows = parse_span(getattr(args, "rows", None), "rows", integer=True)
    window = parse_span(getattr(args, "window", None), "window")
    options = _parse_options(getattr(args, "trace_option", None))
    seed = getattr(args, "seed", 0) or 0
    if Path(source).is_dir() and (Path(source) / "workload.jsonl").is_file():
        source = str(Path(source) / "workload.jsonl")     # a recorded run's folder: its traffic
    if source.startswith(SYNTH_PREFIX):
        trace = generate(source[len(SYNTH_PREFIX):], synth_count(args), seed, **options)
    else:
        trace = recorded_traffic(source)    # a vLLM bench result JSON; None for a trace file
    if trace is not None:
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
    traffic = bench_traffic(args)
    if traffic:
        trace = bench_arrival_trace(trace, traffic, args)
    else:
        trace = arrivals.apply_arrival(trace, getattr(args, "arrival", None),
                                       rate=getattr(args, "rate", None),
                                       cv=getattr(args, "cv", None),
                                       speedup=getattr(args, "speedup", None), seed=seed)
    # an arrival process can push times past float64's resolution (--rate 1e-300)
    check_arrivals(trace.arrival_s, trace.name)
    return trace
