"""Running a sweep: one `simulate()` per point in local processes (default) or as Ray tasks.

Results are written as they finish: one row per point is appended to `OUT.partial/sweep.csv`
(every RunConfig knob of the point, the trace options, the summary metrics); when all points
are done the rows are sorted into grid order (so the file's bytes do not depend on the number
of workers), the report and plots are written and the folder is renamed to OUT. `resume=True`
skips the points already in `OUT.partial/sweep.csv`.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import numbers
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from seqsched.analysis.sweep_report import read_sweep, write_sweep_report
from seqsched.analysis.metrics import FEATURE_METRICS
from seqsched.app.run import FEATURE_FIELDS, RunConfig
from seqsched.app.trace_args import BENCH_ARRIVAL_KEYS
from seqsched.app.sweep_grid import (TRACE_KEYS, SweepPoint, canonical, check_predictor_keys,
                                     expand, parse_grid, run_fields)
from seqsched.common.errors import UserError

# wall-clock time differs between runs; it would make rows differ for the same point
DROPPED_METRICS = ("sim_wall_s",)
CSV_NAME = "sweep.csv"


def build_traces(points: list[SweepPoint]) -> dict[str, Any]:
    """One Trace per distinct set of trace options (built once, shared by its points)."""
    from seqsched.app.trace_args import trace_from_args
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
                           "policy_params": canonical(cfg.policy_params),
                           "predictor": cfg.predictor,
                           "predictor_params": canonical(cfg.predictor_params)}
    for name in run_fields():
        if point.features or name not in FEATURE_FIELDS:
            row.setdefault(name, getattr(cfg, name))
    row["trace"] = point.trace_options.get("trace") or point.trace_options.get("trace_path")
    for name in TRACE_KEYS:
        row.setdefault(name, point.trace_options.get(name))
    for name in BENCH_ARRIVAL_KEYS:           # vLLM bench's traffic options, when given
        if name in point.trace_options:
            row.setdefault(name, point.trace_options[name])
    for key, value in point.coords.items():
        row.setdefault(key, value)
    row.update({k: v for k, v in summary.items()
                if k not in DROPPED_METRICS and k not in FEATURE_METRICS})
    if point.features:                # the same columns for points with and without them
        row.update({k: summary.get(k, float("nan")) for k in FEATURE_METRICS})
    return row


def run_point(trace, point: SweepPoint) -> dict[str, Any]:
    from seqsched.app.run import simulate
    return point_row(point, simulate(trace, point.config, slos=point.slos,
                                     prices=point.prices).summary)


_WORKER_TRACES: dict[str, Any] = {}
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive the sweep: SIGKILL it when its parent dies, however the
    parent dies (Linux prctl; SIGTERM to the parent is handled there, SIGKILL only here)."""
    import ctypes
    import signal
    import sys
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C reaches the group: parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # not the parent's raise-on-SIGTERM handler
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:                      # the parent died before prctl
        os._exit(1)


def _init_worker(traces: dict[str, Any], parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
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
        return canonical(value)
    return str(value)


def _csv_line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


def read_rows(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """Header and rows of a sweep.csv; a torn last line (a killed writer) is dropped."""
    if not path.exists():
        return None, []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a seqsched sweep.csv (not UTF-8 text); drop --resume "
                        "or use another --out") from None
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
                               initargs=(needed, os.getpid()))
    try:
        pending = {pool.submit(_pool_task, p) for p in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    except BaseException:       # an error, Ctrl-C, SIGTERM: stop the workers now, not later
        for proc in list((pool._processes or {}).values()):   # noqa: SLF001 - no public API
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


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


def note_discarded(out: Path) -> None:
    """A rerun without --resume starts over: say so when an earlier, interrupted run of it left
    finished points (they are deleted with its OUT.partial/)."""
    done = out.with_name(out.name + ".partial") / "sweep.csv"
    rows = max(done.read_text().count("\n") - 1, 0) if done.is_file() else 0
    if rows:
        print(f"seqsched: note: starting over: the {rows} finished point(s) in {done.parent}/ "
              "are discarded (--resume keeps them)", file=sys.stderr)


def sweep(configs: dict[str, RunConfig], trace_options: dict[str, Any],
          grid: list[str] | None, out: str | Path, *, workers: int | None = None,
          use_ray: bool = False, resume: bool = False, overwrite: bool = False,
          progress: bool = False, title: str | None = None,
          objectives: tuple = ((), None)) -> int:
    """`seqsched sweep`: expand, validate (before any file exists), run, report;
    `objectives` = (SLOs, price file) every point is judged by."""
    from seqsched.analysis.output import output_folder

    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if use_ray:
        import_ray()
    axes = parse_grid(grid, [c.policy for c in configs.values()])
    points = expand(configs, trace_options, axes)
    for p in points:
        p.slos, p.prices = objectives
    check_predictor_keys(points, axes)
    traces = build_traces(points)
    check_points(points, traces)
    if not resume:
        note_discarded(Path(out))
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
