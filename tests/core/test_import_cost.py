"""A run that draws no plot imports no plotting library, and building the command line imports
neither plotting nor scipy.stats: together they cost ~1.2 s per process, more than a
10,000-request simulation (issue #11, the whole-process target)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "seaborn", "scipy.stats")


def _heavy_after(code: str) -> list[str]:
    probe = code + f"\nimport sys\nprint('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY"))
    return eval(line[len("HEAVY "):])  # noqa: S307 - our own printed list


def test_building_the_parser_imports_no_plotting_and_no_scipy_stats():
    assert _heavy_after("from seqsched.app.cli import build_parser\nbuild_parser()") == []


def test_a_run_without_an_output_folder_imports_no_plotting_and_no_scipy_stats():
    code = ("from seqsched.app.cli import main\n"
            "main(['simulate', 'synth:azure-conv', '-n', '60', '--rate', '5', '--no-progress',"
            " '--policy', 'fcfs', '--backend', 'roofline', '--model', 'llama-2-7b'])\n")
    assert _heavy_after(code) == []


def test_a_run_with_an_output_folder_still_draws_its_plots(tmp_path):
    out = tmp_path / "run"
    code = ("from seqsched.app.cli import main\n"
            f"main(['simulate', 'synth:azure-conv', '-n', '60', '--rate', '5', '--no-progress',"
            f" '--policy', 'fcfs', '--out', {str(out)!r}])\n")
    assert "matplotlib" in _heavy_after(code)
    assert {"throughput.png", "latency_cdf.png", "timeseries.png"} <= {p.name for p in out.iterdir()}
