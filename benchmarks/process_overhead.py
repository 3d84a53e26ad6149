"""Whole-process cost of the `seqsched` command outside the simulation (issue #11: the Vidur
shape, 100,000 requests, whole process <= 5 s): start-up imports, `--help`, and what a run
does before and after the simulation (trace synthesis, summary, the output folder).

    python benchmarks/process_overhead.py [--baseline DIR] [--n 100000] [--repeat 5]

Every case is a fresh process, timed from the parent (interpreter start included; CPU is the
child's user + system time, less sensitive to other jobs than wall time). The child reports
the simulation's wall time (`RunResult.wall_s`) and the CPU time of `execute()` (simulation,
records, step log, summary): `outside sim` = whole process - those. With `--baseline DIR`
(another checkout, e.g. `git worktree add /tmp/base <commit>`) each case runs alternately on
the baseline and on this tree and the table gives both medians and their ratio; the output
folders and trace files of both are compared byte for byte (`same output`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("analysis", "app", "backends", "common", "policies", "predictors", "sim", "traces")
# the child reports the simulation's wall time (execute() measures it around engine.run()) and
# the CPU time of execute() (the simulation plus its records, step log and summary)
CHILD = r"""
import sys, time
import seqsched.app.run as run
_execute = run.execute
def execute(*a, **k):
    cpu = time.process_time()
    result = _execute(*a, **k)
    print(f"SIM_S {result.wall_s} {time.process_time() - cpu}", file=sys.stderr)
    return result
run.execute = execute
from seqsched.app.cli import main
sys.exit(main(sys.argv[1:]))
"""
# per-run measurements -> table column (medians over the runs; outside sim = whole - sim)
METRICS = {"wall": "s", "cpu": "CPU s", "outside sim": "outside sim s",
           "outside sim CPU": "outside sim CPU s"}
VIDUR = ("simulate synth:azure-conv -n {n} --rate 5 --policy fcfs --gpu A100-80GB "
         "--model llama-2-7b --backend roofline --no-progress --engine fast")


def namespace_root(tree: Path, into: Path) -> Path:
    """A folder whose `seqsched/` links to the tree's package folders, put first on
    PYTHONPATH so the child imports that tree whatever is installed."""
    pkg = into / "seqsched"
    pkg.mkdir(parents=True)
    for name in FOLDERS:
        (pkg / name).symlink_to(tree / name, target_is_directory=True)
    return into


def cases(n: int, synth_n: int) -> list[tuple[str, list[str], str | None]]:
    """(label, child argv, output path the case writes or None)."""
    cli = ["-c", CHILD]
    return [
        ("import seqsched.app.cli", ["-c", "import seqsched.app.cli"], None),
        ("seqsched --help", cli + ["--help"], None),
        ("seqsched simulate --help", cli + ["simulate", "--help"], None),
        (f"Vidur shape, {n:,} requests", cli + VIDUR.format(n=n).split(), None),
        (f"Vidur shape, {n:,} requests, --out", cli + VIDUR.format(n=n).split() + ["--out"],
         "run"),
        (f"trace synth alpaca-vicuna -n {synth_n:,}",
         cli + ["trace", "synth", "alpaca-vicuna", "-n", str(synth_n), "--output"],
         "trace.jsonl"),
    ]


def run_case(argv: list[str], out: str | None, nsroot: Path, work: Path) -> dict:
    target = work / out if out else None
    args = argv + ([str(target)] if target else [])
    env = {**os.environ, "PYTHONPATH": str(nsroot), "MPLBACKEND": "Agg"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True,
                       text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)     # one child ran: its own CPU
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {r.stderr.strip()[-500:]}")
    sim = [line.split()[1:] for line in r.stderr.splitlines() if line.startswith("SIM_S")]
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    out = {"wall": wall, "cpu": cpu, "target": target}
    if sim:
        out["outside sim"] = wall - sum(float(w) for w, _ in sim)
        out["outside sim CPU"] = cpu - sum(float(c) for _, c in sim)
    return out


def contents(path: Path | None) -> dict | None:
    if path is None:
        return None
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return {str(f.relative_to(path) if path.is_dir() else f.name): f.read_bytes()
            for f in files if f.is_file()}


def clear(path: Path | None) -> None:
    if path is not None and path.is_dir():
        shutil.rmtree(path)
    elif path is not None and path.exists():
        path.unlink()


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, default=None, help="checkout to compare with")
    ap.add_argument("--n", type=int, default=100_000, help="requests of the Vidur shape")
    ap.add_argument("--synth-n", type=int, default=100_000, help="requests of trace synth")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case and tree (median)")
    ap.add_argument("--only", default=None, help="run only cases whose label contains this")
    args = ap.parse_args()
    trees = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    print(f"{platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.2f} at start; {args.repeat} alternating runs per case")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        roots = {k: namespace_root(tree, tmp / f"ns-{k}") for k, tree in trees.items()}
        warm = tmp / "warm-up"                     # compiles each tree's bytecode, untimed
        warm.mkdir()
        for k in trees:
            for _, argv, out in cases(200, 20)[-2:]:
                clear(run_case(argv, out, roots[k], warm)["target"])
        for label, argv, out in cases(args.n, args.synth_n):
            if args.only and args.only not in label:
                continue
            times = {k: [] for k in trees}
            outputs = {}
            for _ in range(args.repeat):
                for k in reversed(list(trees)):            # baseline first, then this tree
                    work = tmp / "work"                     # the same path for both trees
                    work.mkdir(exist_ok=True)
                    r = run_case(argv, out, roots[k], work)
                    times[k].append(r)
                    outputs[k] = contents(r["target"])
                    clear(r["target"])
            row = {"case": label}
            for k in trees:
                for key, col in METRICS.items():
                    value = median(t.get(key) for t in times[k])
                    if value is not None:
                        row[f"{k} {col}"] = value
            if "baseline" in trees:
                row["speed-up"] = row["baseline s"] / row["this s"]
                if out:
                    row["same output"] = outputs["this"] == outputs["baseline"]
            rows.append(row)
            runs = {k: [{m: round(t[m], 3) for m in METRICS if m in t} for t in times[k]]
                    for k in trees}
            print(json.dumps({**row, "runs": runs}), file=sys.stderr)
    cols = ["case"] + [c for c in (*(f"{k} {col}" for col in METRICS.values()
                                     for k in ("baseline", "this")), "speed-up", "same output")
                       if any(c in r for r in rows)]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [r.get(c, "") for c in cols]
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v)
                                for v in cells) + " |")
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
