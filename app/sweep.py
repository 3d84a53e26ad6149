"""Parameter sweeps: the cartesian product of grid values x policies, each point one full
`simulate()`, run in local processes (default) or as Ray tasks.

Grid keys (`seqsched sweep --grid KEY=V1,V2,...`) use the command line's KEY=VALUE spelling
(`sim/params.py`; dashes and underscores are the same):

- a run option, i.e. a `RunConfig` field: gpu, model, backend, profile, replicas, router,
  seed, max_new_tokens, memory_fraction, block_size, iteration_overhead_s, token_overhead_s,
  kv_append_copy, predictor;
- an arrival/trace option: rate, cv, speedup, arrival, sample, max_output_tokens,
  num_requests (or n); `seed` reseeds the trace as well as the run, as on the command line;
- a policy parameter: `batch_size` or `policy.batch_size` (the prefix is needed where the
  name is also a run option: `policy.max_new_tokens`); every swept policy must take it;
- a predictor parameter: `predictor.scale`.

A grid value overrides the same option given otherwise (a flag, a policy spec's parameter).
Policies are not a grid key: `--policy`/`--policies` list them, one line each in the plots.

Results are written as they finish: one row per point is appended to `OUT.partial/sweep.csv`
(every RunConfig knob of the point, the trace options, the summary metrics); when all points
are done the rows are sorted into grid order (so the file's bytes do not depend on the number
of workers), the report and plots are written and the folder is renamed to OUT. `resume=True`
skips the points already in `OUT.partial/sweep.csv`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from seqsched.common.errors import UserError
from seqsched.common.params import VALUE_KINDS, init_params, is_number, parse_value
from seqsched.app.run import RunConfig

# RunConfig fields that are not grid keys (policies are listed, params are addressed by name)
RUN_NOT_KEYS = ("policy", "policy_params", "predictor_params", "progress")
# the trace/arrival options a grid may set (their types come from the trace options' parser)
TRACE_KEYS = ("arrival", "rate", "cv", "speedup", "sample", "max_output_tokens",
              "num_requests", "seed")
ALIASES = {"n": "num_requests"}
# wall-clock time differs between runs; it would make rows differ for the same point
DROPPED_METRICS = ("sim_wall_s",)
PLOT_METRICS = {
    "throughput_rps": "throughput (requests/s)",
    "e2e_s_p50": "p50 end-to-end latency (s)",
    "e2e_s_p99": "p99 end-to-end latency (s)",
    "ttft_s_p50": "p50 time to first token (s)",
}
TABLE_METRICS = {
    "throughput_rps": "req/s",
    "output_tokens_per_s": "out tok/s",
    "e2e_s_p50": "e2e p50 s",
    "e2e_s_p99": "e2e p99 s",
    "ttft_s_p50": "TTFT p50 s",
    "effective_token_ratio": "eff. ratio",
    "preemptions": "preempt",
}
CSV_NAME = "sweep.csv"


# -- keys and types ---------------------------------------------------------------------
@functools.cache
def _trace_actions() -> dict[str, argparse.Action]:
    """The trace/arrival options exactly as simulate/compare/sweep define them."""
    from seqsched.app.trace_cli import add_trace_arguments
    probe = argparse.ArgumentParser(add_help=False)
    add_trace_arguments(probe)
    return {a.dest: a for a in probe._actions}      # noqa: SLF001 - no public API


def trace_option_names() -> list[str]:
    return list(_trace_actions())


def trace_options_from_args(args) -> dict[str, Any]:
    """The `trace_from_args` inputs of a parsed command line, as a plain dict."""
    return {dest: getattr(args, dest, action.default)
            for dest, action in _trace_actions().items()}


@functools.cache
def _run_fields() -> dict[str, tuple[str, bool]]:
    """RunConfig field -> (base type name, None allowed); annotations are strings (PEP 563)."""
    out = {}
    for f in dataclasses.fields(RunConfig):
        if f.name in RUN_NOT_KEYS:
            continue
        parts = [p.strip() for p in str(f.type).split("|")]
        out[f.name] = (parts[0], "None" in parts)
    return out


def _trace_types() -> dict[str, tuple[str, bool, tuple | None]]:
    actions = _trace_actions()
    out = {}
    for key in TRACE_KEYS:
        a = actions[key]
        kind = {int: "int", float: "float"}.get(a.type, "str")
        out[key] = (kind, a.default is None, tuple(a.choices) if a.choices else None)
    return out


def _typed(key: str, text: str, kind: str, optional: bool, choices=None) -> Any:
    """One grid value, checked and converted as the matching command-line option would be."""
    if optional and text.lower() in ("none", "null"):
        return None
    value = text if kind == "str" else parse_value(text)
    words, ok = VALUE_KINDS.get(kind, (kind, lambda v: True))
    if not ok(value):
        raise UserError(f"--grid {key}: {text!r} is not {words}")
    if kind == "float":
        value = float(value)
    if choices and value not in choices:
        raise UserError(f"--grid {key}: {text!r} is not one of {', '.join(map(str, choices))}")
    return value


@dataclass
class GridAxis:
    """One `--grid` option: the column it fills, what it sets and its values."""

    key: str                # column: rate, gpu, batch_size, policy.max_new_tokens, predictor.scale
    kind: str               # "option" (RunConfig field and/or trace option), "policy", "predictor"
    name: str               # the field, option or parameter it sets
    values: list

    @property
    def numeric(self) -> bool:
        return all(is_number(v) for v in self.values)


def _policy_fields(name: str) -> set[str] | None:
    from seqsched.policies import POLICIES
    cls = POLICIES.get(name)
    return None if cls is None else init_params(cls)


def _unknown_key(key: str) -> UserError:
    arrival = ", ".join(k for k in TRACE_KEYS if k not in _run_fields())
    return UserError(
        f"unknown grid key {key!r}; use a run option ({', '.join(_run_fields())}), an arrival "
        f"option ({arrival}), a policy parameter (KEY or policy.KEY) or predictor.KEY")


def grid_axis(item: str, policy_names: list[str]) -> GridAxis:
    """'rate=2,4,8' -> GridAxis('rate', 'option', 'rate', [2.0, 4.0, 8.0]); raises UserError
    for a malformed item, an unknown key or a value of the wrong type."""
    if "=" not in item:
        raise UserError(f"--grid {item!r} is not KEY=V1,V2,..., e.g. rate=2,4,8")
    key, text = item.split("=", 1)
    key = ALIASES.get(key.strip().replace("-", "_"), key.strip().replace("-", "_"))
    raw = [v.strip() for v in text.split(",")]
    if not key or not all(raw):
        raise UserError(f"--grid {item!r}: empty key or value; write KEY=V1,V2,...")
    prefix, _, rest = key.partition(".")
    if rest and prefix == "predictor":
        return GridAxis(key, "predictor", rest, [parse_value(v) for v in raw])
    if rest and prefix == "policy":
        name = rest
    elif rest:
        raise _unknown_key(key)
    elif key == "policy":
        raise UserError("policy is not a grid key; list policies with --policy/--policies "
                        "(one line each in the plots)")
    elif key in _run_fields() or key in TRACE_KEYS:
        if key in TRACE_KEYS:
            kind, optional, choices = _trace_types()[key]
        else:
            (kind, optional), choices = _run_fields()[key], None
        return GridAxis(key, "option", key,
                        [_typed(key, v, kind, optional, choices) for v in raw])
    else:
        name = key
        from seqsched.policies import POLICIES
        if not any(name in _policy_fields(p) for p in POLICIES):
            raise _unknown_key(key)
    for policy in policy_names:
        known = _policy_fields(policy)
        if known is not None and name not in known:
            raise UserError(f"grid key {key}: policy {policy} has no parameter {name}; it "
                            f"takes {', '.join(sorted(known))}")
    column = name if name not in _run_fields() and name not in TRACE_KEYS else f"policy.{name}"
    return GridAxis(column, "policy", name, [parse_value(v) for v in raw])


def parse_grid(items: list[str] | None, policy_names: list[str]) -> list[GridAxis]:
    axes: list[GridAxis] = []
    for item in items or []:
        axis = grid_axis(item, policy_names)
        if any(a.key == axis.key for a in axes):
            raise UserError(f"--grid {axis.key} is given twice; list all its values in one "
                            "--grid KEY=V1,V2,...")
        if len({json.dumps(v) for v in axis.values}) != len(axis.values):
            raise UserError(f"--grid {axis.key}: a value is listed twice")
        axes.append(axis)
    if not axes:
        raise UserError("a sweep needs at least one --grid KEY=V1,V2,... (e.g. rate=2,4,8)")
    return axes


# -- points -----------------------------------------------------------------------------
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class SweepPoint:
    """One point of the sweep: a policy (its spec is the plots' hue), the grid coordinates,
    and the full run it stands for."""

    index: int                                  # position in grid order
    policy: str                                 # the policy spec, e.g. binned:vbs=false
    coords: dict[str, Any]                      # grid key -> value, in grid order
    config: RunConfig
    trace_options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return " ".join([self.policy, *(f"{k}={v}" for k, v in self.coords.items())])

    @property
    def trace_key(self) -> str:
        return _canonical(self.trace_options)

    @property
    def point_id(self) -> str:
        """Digest of everything that defines the run: resume matches rows by it."""
        spec = {"config": dataclasses.asdict(dataclasses.replace(self.config, progress=False)),
                "trace": self.trace_options, "policy": self.policy}
        return hashlib.sha1(_canonical(spec).encode()).hexdigest()[:12]


def expand(configs: dict[str, RunConfig], trace_options: dict[str, Any],
           axes: list[GridAxis]) -> list[SweepPoint]:
    """Policies (outermost, in the order given) x the cartesian product of the axes."""
    points = []
    for label, base in configs.items():
        for combo in itertools.product(*(a.values for a in axes)):
            cfg = dataclasses.replace(base, policy_params=dict(base.policy_params),
                                      predictor_params=dict(base.predictor_params),
                                      progress=False)
            opts = dict(trace_options)
            for axis, value in zip(axes, combo):
                if axis.kind == "policy":
                    cfg.policy_params[axis.name] = value
                elif axis.kind == "predictor":
                    cfg.predictor_params[axis.name] = value
                else:
                    if axis.name in _run_fields():
                        setattr(cfg, axis.name, value)
                    if axis.name in TRACE_KEYS:
                        opts[axis.name] = value
            points.append(SweepPoint(len(points), label,
                                     {a.key: v for a, v in zip(axes, combo)}, cfg, opts))
    return points


def check_predictor_keys(points: list[SweepPoint], axes: list[GridAxis]) -> None:
    """`predictor.KEY` must be a parameter of every predictor it reaches (where the
    predictor declares its parameters as a dataclass)."""
    from seqsched.predictors import PREDICTORS
    keys = [a for a in axes if a.kind == "predictor"]
    for name in dict.fromkeys(p.config.predictor for p in points):
        cls = PREDICTORS.get(name)
        if not keys or not dataclasses.is_dataclass(cls):
            continue
        known = init_params(cls)
        for axis in keys:
            if axis.name not in known:
                raise UserError(f"grid key {axis.key}: predictor {name} has no parameter "
                                f"{axis.name}; it takes {', '.join(sorted(known))}")


def build_traces(points: list[SweepPoint]) -> dict[str, Any]:
    """One Trace per distinct set of trace options (built once, shared by its points)."""
    from seqsched.app.trace_cli import trace_from_args
    traces = {}
    for p in points:
        if p.trace_key not in traces:
            traces[p.trace_key] = trace_from_args(argparse.Namespace(**p.trace_options))
    return traces


def _probe(trace, cap: int | None):
    """The rows of `trace` that bad input trips on first (longest prompt, most KV)."""
    from seqsched.traces.request import Trace
    out = trace.output_tokens
    need = trace.prompt_tokens + (np.minimum(out, cap) if cap is not None else out)
    rows = sorted({int(np.argmax(trace.prompt_tokens)), int(np.argmax(need))})
    return Trace(trace.df.iloc[rows].reset_index(drop=True), trace.name)


def check_points(points: list[SweepPoint], traces: dict[str, Any]) -> None:
    """Build every point on the trace's two most demanding requests: unknown policies,
    predictors, GPUs, bad parameters and requests beyond KV capacity fail here, before any
    file exists (errors only a full run meets, e.g. a padded batch beyond memory, come later
    and keep the finished points)."""
    from seqsched.app.run import prepare
    for p in points:
        prepare(_probe(traces[p.trace_key], p.config.resolved().max_new_tokens), p.config)


# -- one point --------------------------------------------------------------------------
def point_row(point: SweepPoint, summary: dict) -> dict[str, Any]:
    """The CSV row of a finished point: knobs, then the summary metrics."""
    cfg = point.config.resolved()
    row: dict[str, Any] = {"label": point.label, "point_id": point.point_id,
                           "policy": point.policy, "policy_name": cfg.policy,
                           "policy_params": _canonical(cfg.policy_params),
                           "predictor": cfg.predictor,
                           "predictor_params": _canonical(cfg.predictor_params)}
    for name in _run_fields():
        row.setdefault(name, getattr(cfg, name))
    row["trace"] = point.trace_options.get("trace") or point.trace_options.get("trace_path")
    for name in TRACE_KEYS:
        row.setdefault(name, point.trace_options.get(name))
    for key, value in point.coords.items():
        row.setdefault(key, value)
    row.update({k: v for k, v in summary.items() if k not in DROPPED_METRICS})
    return row


def run_point(trace, point: SweepPoint) -> dict[str, Any]:
    from seqsched.app.run import simulate
    return point_row(point, simulate(trace, point.config).summary)


_WORKER_TRACES: dict[str, Any] = {}


def _init_worker(traces: dict[str, Any]) -> None:
    _WORKER_TRACES.clear()
    _WORKER_TRACES.update(traces)


def _pool_task(point: SweepPoint) -> dict[str, Any]:
    return run_point(_WORKER_TRACES[point.trace_key], point)


def _ray_task(trace, point: SweepPoint) -> dict[str, Any]:
    return run_point(trace, point)


# -- CSV --------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """Deterministic, exact text: floats as repr (round-trip), None/NaN empty, dicts JSON."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (dict, list, tuple)):
        return _canonical(value)
    return str(value)


def _csv_line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


def read_rows(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """Header and rows of a sweep.csv; a torn last line (a killed writer) is dropped."""
    if not path.exists():
        return None, []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
        path.write_text(text, encoding="utf-8")
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return None, []
    header, rows = lines[0], lines[1:]
    return header, [r for r in rows if len(r) == len(header)]


class RowWriter:
    """Appends one CSV line per finished point, flushed at once; writes the header first."""

    def __init__(self, path: Path, header: list[str] | None):
        self.path, self.header = path, header

    def append(self, row: dict[str, Any]) -> None:
        columns = list(row)
        if self.header is None:
            self.header = columns
            with self.path.open("w", encoding="utf-8", newline="") as f:
                f.write(_csv_line(columns))
        elif columns != self.header:
            raise UserError(f"{self.path} has other columns than this version of seqsched "
                            "writes; drop --resume or use another --out")
        with self.path.open("a", encoding="utf-8", newline="") as f:
            f.write(_csv_line([format_value(row[c]) for c in columns]))
            f.flush()
            os.fsync(f.fileno())


def finished_ids(path: Path, points: list[SweepPoint]) -> tuple[list[str] | None, set[str]]:
    """The points of this sweep already in `path` (resume); rows of another sweep are an
    error rather than silently mixed in."""
    header, rows = read_rows(path)
    if header is None:
        return None, set()
    if "point_id" not in header:
        raise UserError(f"{path} is not a seqsched sweep.csv; drop --resume or use another "
                        "--out")
    col = header.index("point_id")
    done = {r[col] for r in rows}
    foreign = done - {p.point_id for p in points}
    if foreign:
        raise UserError(f"{path} holds {len(foreign)} rows of a different sweep (other grid or "
                        "options); drop --resume or use another --out")
    return header, done


def sort_rows(path: Path, points: list[SweepPoint]) -> None:
    """Rewrite `path` with its rows in grid order (atomically)."""
    header, rows = read_rows(path)
    order = {p.point_id: p.index for p in points}
    col = header.index("point_id")
    rows = sorted({r[col]: r for r in rows}.values(), key=lambda r: order[r[col]])
    if len(rows) != len(points):
        raise RuntimeError(f"{path}: {len(rows)} rows for {len(points)} points")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_csv_line(header) + "".join(_csv_line(r) for r in rows), encoding="utf-8")
    os.replace(tmp, path)


# -- running ----------------------------------------------------------------------------
def _serial(todo, traces) -> Iterator[dict]:
    for p in todo:
        yield run_point(traces[p.trace_key], p)


def _processes(todo, traces, workers: int) -> Iterator[dict]:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    needed = {p.trace_key: traces[p.trace_key] for p in todo}
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                               initargs=(needed,))
    try:
        pending = {pool.submit(_pool_task, p) for p in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray, an optional extra: pip install -e .[ray]") from None
    return ray


def _ray(todo, traces, workers: int) -> Iterator[dict]:
    import shutil
    import tempfile
    ray = import_ray()
    own = not ray.is_initialized()
    tmp = None
    if own:
        os.environ["RAY_AUTH_MODE"] = "disabled"
        tmp = tempfile.mkdtemp(prefix="seqsched-ray-")
        ray.init(num_cpus=workers, object_store_memory=100 * 1024 * 1024, _temp_dir=tmp,
                 include_dashboard=False, log_to_driver=False)
    try:
        refs = {key: ray.put(traces[key]) for key in {p.trace_key for p in todo}}
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        pending = [task.remote(refs[p.trace_key], p) for p in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                if isinstance(e.cause, UserError):
                    raise UserError(str(e.cause)) from None
                raise
    finally:
        if own:
            ray.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)


def run_points(points: list[SweepPoint], traces: dict[str, Any], folder: Path, *,
               workers: int | None = None, use_ray: bool = False, resume: bool = False,
               progress: bool = False) -> pd.DataFrame:
    """Run the points not yet in `folder/sweep.csv`, appending a row as each finishes; then
    sort the file into grid order and return it as a DataFrame."""
    from tqdm import tqdm

    path = folder / CSV_NAME
    header, done = finished_ids(path, points) if resume else (None, set())
    if not resume and path.exists():
        path.unlink()
    todo = [p for p in points if p.point_id not in done]
    if workers is None:
        workers = min(os.cpu_count() or 1, max(len(todo), 1))
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    writer = RowWriter(path, header)
    if todo:
        if use_ray:
            rows = _ray(todo, traces, workers)
        elif workers == 1:
            rows = _serial(todo, traces)
        else:
            rows = _processes(todo, traces, workers)
        with tqdm(total=len(points), initial=len(points) - len(todo), desc="sweep",
                  unit="point", leave=False, disable=not progress) as bar:
            for row in rows:
                writer.append(row)          # finished work is on disk at once
                bar.set_postfix_str(row["label"][:40])
                bar.update()
    sort_rows(path, points)
    return read_sweep(path)


def read_sweep(path: Path) -> pd.DataFrame:
    """sweep.csv as a DataFrame, floats exact (pandas 3 parses round-trip by default)."""
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], **exact)


# -- output -----------------------------------------------------------------------------
def sweep_table(df: pd.DataFrame, axes: list[GridAxis]) -> str:
    from tabulate import tabulate
    cols = ["policy"] + [a.key for a in axes] + [c for c in TABLE_METRICS if c in df]
    table = df[cols].rename(columns=TABLE_METRICS)
    return tabulate(table, headers="keys", tablefmt="github", showindex=False, floatfmt=".3g")


def x_axis(axes: list[GridAxis]) -> GridAxis:
    """The plots' x: the first numeric grid key, else the first key (as categories)."""
    return next((a for a in axes if a.numeric), axes[0])


def write_sweep_plots(folder: Path, df: pd.DataFrame, axes: list[GridAxis]) -> list[str]:
    from seqsched.analysis.plots import sweep_lines
    x = x_axis(axes)
    rest = [a.key for a in axes if a is not x]
    style = None
    if rest:
        df = df.assign(_other=df[rest].astype(str).agg(
            lambda r: ", ".join(f"{k}={v}" for k, v in zip(rest, r)), axis=1))
        style = "_other"
    names = []
    for metric, ylabel in PLOT_METRICS.items():
        name = f"sweep_{metric}.png"
        sweep_lines(df, x.key, metric, ylabel, folder / name, hue="policy", style=style,
                    categorical=not x.numeric)
        names.append(name)
    return names


def write_sweep_report(folder: Path, title: str, df: pd.DataFrame, axes: list[GridAxis],
                       context: dict[str, str]) -> str:
    """Plots and report.md; returns the terminal table."""
    table = sweep_table(df, axes)
    plots = write_sweep_plots(folder, df, axes)
    x = x_axis(axes)
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items()]
    lines += ["", "## Results", "", table, "",
              f"Plots: each metric against `{x.key}`, one line per policy"
              + (" (line style: the other grid keys)." if len(axes) > 1 else "."), ""]
    lines += [f"![{name[6:-4]}]({name})" for name in plots]
    lines += ["", "## Files", "",
              "- `sweep.csv`: one row per point, in grid order: every RunConfig knob of the "
              "point, the trace options and all summary metrics (metric definitions as in "
              "`seqsched compare`'s report; latencies from arrival).",
              "- `sweep_<metric>.png`: the plots above."]
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    return table


def sweep(configs: dict[str, RunConfig], trace_options: dict[str, Any],
          grid: list[str] | None, out: str | Path, *, workers: int | None = None,
          use_ray: bool = False, resume: bool = False, overwrite: bool = False,
          progress: bool = False, title: str | None = None) -> int:
    """`seqsched sweep`: expand, validate (before any file exists), run, report."""
    from seqsched.analysis.output import output_folder

    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if use_ray:
        import_ray()
    axes = parse_grid(grid, [c.policy for c in configs.values()])
    points = expand(configs, trace_options, axes)
    check_predictor_keys(points, axes)
    traces = build_traces(points)
    check_points(points, traces)
    with output_folder(out, overwrite, resume=resume) as folder:
        df = run_points(points, traces, folder, workers=workers, use_ray=use_ray,
                        resume=resume, progress=progress)
        sizes = sorted({len(t) for t in traces.values()})
        first = next(iter(traces.values()))
        context = {
            "trace": f"{first.name} ({', '.join(map(str, sizes))} requests)",
            "policies": ", ".join(configs),
            "grid": "; ".join(f"{a.key} = {', '.join(map(str, a.values))}" for a in axes),
            "points": str(len(points)),
            "predictor": ", ".join(sorted({str(v) for v in df["predictor"]})),
            "backend": ", ".join(sorted({f"{g} / {m}" for g, m in zip(df["gpu"], df["model"])})),
        }
        table = write_sweep_report(folder, title or "seqsched sweep", df, axes, context)
    print(table)
    print(f"\nwrote {out}/ (report.md, sweep.csv, sweep_*.png)")
    return 0


__all__ = ["GridAxis", "SweepPoint", "grid_axis", "parse_grid", "expand", "build_traces",
           "check_points", "run_point", "run_points", "sweep", "read_sweep", "format_value",
           "trace_options_from_args", "trace_option_names"]
