"""Trace loading speed and memory: a 1,000,000-row Azure-format CSV (issue #3 target: load in
<= 5 s and <= 1 GB RSS).

    python benchmarks/trace_loading.py [--rows 1000000] [--repeat 3]

Generates the CSV in a temp dir (2023-style TIMESTAMP with 7 fractional digits, ~5 req/s
Poisson arrivals, log-normal lengths), then, each in a fresh subprocess so peak RSS is the
load's own: imports only (baseline), `load_trace` of the whole file, a streamed one-hour
window, and a streamed row slice. Peak RSS is the child's own high-water mark (VmHWM, else
ru_maxrss; the maximum over all children, resource.getrusage(RUSAGE_CHILDREN), is printed as
a cross-check); times are the
best of --repeat runs, measured inside the child around the call (imports excluded; the
baseline row reports them).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
from seqsched.traces.io import load_trace
imported = time.perf_counter() - t0
kw = json.loads({kw!r})
n = 0
elapsed = 0.0
if kw is not None:
    for k in ("rows", "window"):
        if k in kw: kw[k] = tuple(kw[k])
    t1 = time.perf_counter()
    trace = load_trace({path!r}, **kw)
    elapsed = time.perf_counter() - t1
    n = len(trace)
try:  # VmHWM is this process image's own peak; ru_maxrss survives exec() from the parent
    rss = next(int(l.split()[1]) for l in open("/proc/self/status")
               if l.startswith("VmHWM")) / 1024
except (OSError, StopIteration):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"import_s": imported, "load_s": elapsed, "rows": n, "peak_rss_mb": rss}}))
"""


def make_csv(path: Path, n: int, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2023-11-16T18:15:46", "ns")
    ts = t0 + np.cumsum(rng.exponential(1 / 5.4, n) * 1e9).astype("timedelta64[ns]")
    stamps = pd.Series(ts).dt.strftime("%Y-%m-%d %H:%M:%S.%f") + "0"   # 7 digits, as Azure
    pd.DataFrame({
        "TIMESTAMP": stamps,
        "ContextTokens": np.maximum(1, rng.lognormal(np.log(1020), 0.5, n).astype(int)),
        "GeneratedTokens": np.maximum(1, rng.lognormal(np.log(129), 1.0, n).astype(int)),
    }).to_csv(path, index=False)


def run_child(path: Path, kw: dict | None) -> dict:
    """One fresh interpreter per measurement; it reports its own peak RSS (VmHWM).
    RUSAGE_CHILDREN in this process tracks the largest child as a cross-check."""
    code = CHILD.format(root=str(ROOT), kw=json.dumps(kw), path=str(path))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    from tabulate import tabulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--generate", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        make_csv(Path(args.generate[0]), int(args.generate[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "AzureLLMInferenceTrace_1M.csv"
        t = time.perf_counter()
        # generate in a child so this (parent) process stays small: a child's ru_maxrss and
        # RUSAGE_CHILDREN start from the parent's peak across fork/exec
        subprocess.run([sys.executable, __file__, "--generate", str(path), str(args.rows)],
                       check=True)
        gen_s = time.perf_counter() - t
        size_mb = path.stat().st_size / 2**20
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MiB) in {gen_s:.1f} s")
        cases = [("imports only (baseline)", None),
                 ("streamed window 1h:2h", {"window": [3600, 7200]}),
                 ("streamed rows 500k:600k", {"rows": [500_000, 600_000]}),
                 (f"load_trace, all {args.rows:,} rows", {})]
        rows = []
        for label, kw in cases:
            runs = [run_child(path, kw) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["load_s"])
            rows.append([label, f"{best['rows']:,}", f"{best['load_s']:.2f}",
                         f"{min(r['import_s'] for r in runs):.2f}",
                         f"{max(r['peak_rss_mb'] for r in runs):.0f}"])
    headers = ["case", "requests", "load s (best)", "import s", "peak RSS MiB"]
    table = tabulate(rows, headers=headers, tablefmt="github")
    print(table)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nlargest child peak RSS (RUSAGE_CHILDREN): {children:.0f} MiB; "
          f"Python {platform.python_version()}")


if __name__ == "__main__":
    main()
