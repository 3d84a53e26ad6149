"""What borrowing another GPU's kernel efficiencies costs (backends/efficiency.SIBLINGS): each
recorded run replayed as `seqsched validate --measured RUN --profile roofline` does, once with
its own GPU's measured efficiency curves and once with each other measured GPU's in their place.

    .venv/bin/python benchmarks/efficiency_transfer.py [RUN[=GPU] ...]

A GPU with no kernel measurements of its own (L4, L40S, H100-PCIe, A100-40GB; the RTX 3090
and RTX A6000 for attention only) borrows a sibling's curves: same chip or same architecture. No recorded run of such a
GPU is public, so this measures the nearest thing: the error of borrowing across the measured
GPUs, where the donor is of ANOTHER architecture (Ada <-> Blackwell, Ampere <-> Hopper) - an
upper bound on a same-architecture borrow's - beside the error with the GPU's own curves and
with none (the datasheet roofline). Nothing here is fitted: the table is a diagnostic.
Defaults: the shared run, plus LLMServingSim's held-out RTX 4090 and Qwen3-32B TP2 runs when
extracted at /tmp/rtx4090run and /tmp/qwen32b.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

from seqsched.app.cli import main as cli_main
from seqsched.backends import efficiency

SHARED = Path(os.environ.get("SEQSCHED_DATA", "/work/shared/data"),
              "serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19")
DEFAULT_RUNS = (f"{SHARED}=RTX-PRO-6000", "/tmp/rtx4090run=RTX-4090",
                "/tmp/qwen32b=RTX-PRO-6000")
METRICS = ("ttft_mean_ms", "ttft_p50_ms", "tpot_mean_ms", "e2e_mean_ms")


@contextlib.contextmanager
def curves_of(gpu: str, donor: str | None):
    """The efficiency table with `gpu`'s entry replaced by `donor`'s (None: removed, so the
    datasheet roofline applies)."""
    table = dict(efficiency._table())
    if donor is None:
        table.pop(gpu, None)
    else:
        table[gpu] = table[donor]
    real = efficiency._table
    efficiency._table = lambda: table
    efficiency.kernel_shape.cache_clear()
    try:
        yield
    finally:
        efficiency._table = real
        efficiency.kernel_shape.cache_clear()


def replay(run: str, gpu: str) -> pd.Series:
    """validate --measured with the roofline; the errors (%) of METRICS."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "out")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            rc = cli_main(["validate", "--measured", run, "--gpu", gpu, "--profile", "roofline",
                           "--out", str(out), "--no-progress"])
        if rc:
            raise SystemExit(f"replay of {run} failed (exit {rc})")
        errors = pd.read_csv(out / "errors.csv").set_index("metric")["error_pct"]
    return errors.reindex(list(METRICS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", default=list(DEFAULT_RUNS), metavar="RUN[=GPU]")
    a = p.parse_args()
    measured = sorted(efficiency._table())
    rows = []
    for spec in a.runs:
        run, _, gpu = spec.partition("=")
        if not Path(run).exists():
            print(f"skip {run}: not found", file=sys.stderr)
            continue
        gpu = gpu or "RTX-PRO-6000"
        for donor in [gpu, *[g for g in measured if g != gpu], None]:
            with curves_of(gpu, donor):
                err = replay(run, gpu)
            rows.append({"run": Path(run).name, "gpu": gpu,
                         "curves": "datasheet" if donor is None else
                         (f"own ({donor})" if donor == gpu else donor),
                         **{m: round(float(err[m]), 1) for m in METRICS}})
    if not rows:
        raise SystemExit("no recorded run found (the shared data folder is absent)")
    table = pd.DataFrame(rows)
    print("error % vs measured (simulated - measured) / measured, roofline cost model")
    print(table.to_markdown(index=False))
    own = table[table.curves.str.startswith("own")].set_index("run")
    other = table[~table.curves.str.startswith("own") & (table.curves != "datasheet")]
    spread = other.assign(**{m: (other[m] - other.run.map(own[m])).abs() for m in METRICS})
    print("\nmedian |error change| when a measured GPU's curves replace the run's own: "
          + ", ".join(f"{m} {spread[m].median():.1f} points" for m in METRICS))


if __name__ == "__main__":
    main()
