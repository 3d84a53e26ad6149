"""Interruptions, as `timeout`, Slurm, `docker stop` and Ctrl-C deliver them: SIGTERM, SIGKILL
or SIGINT to the main process of `sweep --workers N` and `compare`. No worker may outlive it
(a caller reading its output pipe would hang), nothing may look complete, and `sweep --resume`
afterwards gives the same bytes as an uninterrupted sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultkit import files_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process checks read /proc")

ENV = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
SWEEP = ["sweep", "synth:uniform", "-n", "800", "--policies", "fcfs", "sjf",
         "--grid", "rate=20,40,80,160,320,640", "--no-progress", "--workers", "2"]
COMPARE = ["compare", "synth:azure-conv", "-n", "800", "--rate", "30", "--policies",
           "vanilla", "sorted", "binned", "fcfs", "sjf", "srpt", "ltr", "--no-progress"]


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqsched.app.cli", *argv], cwd=cwd,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def children(pid: int) -> set[int]:
    """Live processes whose parent is `pid`."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout: float = 240.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def rows_written(folder: Path) -> int:
    path = folder / "sweep.csv"
    return max(path.read_text().count("\n") - 1, 0) if path.exists() else 0


def cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqsched.app.cli", *argv], cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def fresh_sweep(tmp_path_factory) -> dict[str, bytes]:
    """The files of the same sweep, never interrupted."""
    cwd = tmp_path_factory.mktemp("fresh")
    done = cli([*SWEEP, "--out", "fresh"], cwd)
    assert done.returncode == 0, done.stderr
    return files_of(cwd / "fresh")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT],
                         ids=["SIGTERM", "SIGKILL", "SIGINT"])
def test_sweep_workers_die_with_the_main_process(tmp_path, sig, fresh_sweep):
    proc = start([*SWEEP, "--out", "sw"], tmp_path)
    partial = tmp_path / "sw.partial"
    assert wait_for(lambda: rows_written(partial) >= 1 or proc.poll() is not None)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    workers = children(proc.pid)
    assert workers, "no worker processes to check"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)     # a worker holding the pipe would hang here
    assert wait_for(lambda: not any(alive(w) for w in workers), 30), "orphan workers"
    assert "Traceback" not in err, err
    assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130,
                               signal.SIGKILL: -signal.SIGKILL}[sig], err
    assert not (tmp_path / "sw").exists(), "an interrupted sweep looks complete"
    assert rows_written(partial) >= 1, "finished points were lost"

    # resume: same bytes as a sweep that was never interrupted
    done = cli([*SWEEP, "--out", "sw", "--resume"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert files_of(tmp_path / "sw") == fresh_sweep


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_interrupted_compare_leaves_nothing_complete(tmp_path, sig):
    proc = start([*COMPARE, "--out", "cmp"], tmp_path)
    partial = tmp_path / "cmp.partial"
    assert wait_for(lambda: (partial.is_dir() and any(partial.glob("summary_*.json")))
                    or proc.poll() is not None)
    assert proc.poll() is None, "compare finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130,
                               signal.SIGKILL: -signal.SIGKILL}[sig], err
    assert not (tmp_path / "cmp").exists(), "an interrupted compare looks complete"
    assert any(partial.glob("records_*.csv")), "finished runs were lost"
    assert not (partial / "report.md").exists()
