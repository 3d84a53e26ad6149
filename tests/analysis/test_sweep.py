"""`seqsched sweep`: grid keys, expansion, rows equal to single simulate() runs, identical
bytes for any number of workers, resume, one-line errors."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import seqsched.app.sweep_runner as sweep_mod
from seqsched.analysis.sweep_report import read_sweep
from seqsched.app.sweep_grid import expand, parse_grid
from seqsched.app.sweep_runner import DROPPED_METRICS
from seqsched.app.cli import main
from seqsched.common.errors import UserError
from seqsched.app.run import RunConfig, simulate
from seqsched.traces.arrivals import apply_arrival
from seqsched.traces.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]
N = 50
# 1 policy x rate (2) x predictor.scale (2) = 4 points
TINY = ["sweep", "synth:alpaca-vicuna", "-n", str(N), "--seed", "3", "--policy", "sjf",
        "--predictor", "noisy", "--grid", "rate=4,8", "--grid", "predictor.scale=20,62",
        "--no-progress"]


def run_cli(*args) -> int:
    return main([str(a) for a in args])


# -- grid keys and expansion ------------------------------------------------------------
def test_grid_expansion_order_types_and_addressing():
    axes = parse_grid(["rate=2,4", "gpu=A100-80GB,H100-SXM", "batch-size=8,16",
                       "predictor.scale=20,62.5", "policy.max_new_tokens=256",
                       "max_new_tokens=none,512", "n=30"], ["vanilla", "binned"])
    assert [(a.key, a.kind, a.name) for a in axes] == [
        ("rate", "option", "rate"), ("gpu", "option", "gpu"),
        ("batch_size", "policy", "batch_size"), ("predictor.scale", "predictor", "scale"),
        ("policy.max_new_tokens", "policy", "max_new_tokens"),
        ("max_new_tokens", "option", "max_new_tokens"), ("num_requests", "option",
                                                         "num_requests")]
    assert axes[0].values == [2.0, 4.0] and all(type(v) is float for v in axes[0].values)
    assert axes[1].values == ["A100-80GB", "H100-SXM"]
    assert axes[2].values == [8, 16] and axes[3].values == [20, 62.5]
    assert axes[5].values == [None, 512]
    assert axes[0].numeric and not axes[1].numeric

    base = {"vanilla": RunConfig(policy="vanilla", predictor="noisy",
                                 predictor_params={"scale": 1.0, "seed": 7}),
            "binned:fcr=false": RunConfig(policy="binned", policy_params={"fcr": False})}
    opts = {"trace": "synth:alpaca-vicuna", "rate": None, "seed": 0, "num_requests": None}
    points = expand(base, opts, axes[:4])
    assert len(points) == 2 * 2 * 2 * 2 * 2
    assert [p.index for p in points] == list(range(len(points)))
    # policies outermost, then the grid in the order given (last key fastest)
    assert [p.policy for p in points[:16]] == ["vanilla"] * 16
    assert points[1].coords == {"rate": 2.0, "gpu": "A100-80GB", "batch_size": 8,
                                "predictor.scale": 62.5}
    p = points[-1]
    assert p.config.gpu == "H100-SXM" and p.trace_options["rate"] == 4.0
    assert p.config.policy_params == {"fcr": False, "batch_size": 16}
    assert points[1].config.predictor_params == {"scale": 62.5, "seed": 7}
    # the base configs are not mutated, and every point is a different run
    assert base["vanilla"].predictor_params == {"scale": 1.0, "seed": 7}
    assert len({q.point_id for q in points}) == len(points)
    # the seed reseeds both the run and the trace, as on the command line
    (q,) = expand(base, opts, parse_grid(["seed=5"], ["vanilla"]))[:1]
    assert q.config.seed == 5 and q.trace_options["seed"] == 5


@pytest.mark.parametrize("items, policies, message", [
    (["foo=1,2"], ["fcfs"], "unknown grid key 'foo'"),
    (["x.y=1"], ["fcfs"], "unknown grid key 'x.y'"),
    (["batch_size=8,16"], ["vanilla", "fcfs"], "policy fcfs has no parameter batch_size"),
    (["policy=fcfs,sjf"], ["fcfs"], "policy is not a grid key"),
    (["rate"], ["fcfs"], "is not KEY=V1,V2"),
    (["rate=1,,2"], ["fcfs"], "empty key or value"),
    (["rate=fast"], ["fcfs"], "'fast' is not a number"),
    (["replicas=1.5"], ["fcfs"], "'1.5' is not a whole number"),
    (["arrival=poisson,bursty"], ["fcfs"], "'bursty' is not one of"),
    (["rate=2,2"], ["fcfs"], "listed twice"),
    (["rate=2", "rate=4"], ["fcfs"], "given twice"),
    ([], ["fcfs"], "at least one --grid"),
])
def test_bad_grid_keys(items, policies, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_grid(items, policies)


def test_unknown_key_is_one_error_line_exit_2(tmp_path):
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, "-m", "seqsched.app.cli", "sweep", "synth:alpaca-vicuna", "-n",
                        "20", "--grid", "nonsense=1,2", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqsched: error: unknown grid key"), r.stderr
    assert not out.exists() and not (tmp_path / "never.partial").exists()


@pytest.mark.parametrize("args, message", [
    (["--grid", "predictor.bogus=1"], "predictor noisy has no parameter bogus"),
    (["--grid", "gpu=A100-80GB,Z100"], "unknown GPU 'Z100'"),
    (["--grid", "rate=2", "--policies", "vanilla", "nope"], "unknown policy 'nope'"),
    (["--grid", "rate=2", "--workers", "0"], "--workers must be >= 1"),
    (["--grid", "rate=2", "--policies", "sjf"], "policy sjf is listed twice"),
])
def test_bad_input_fails_before_any_file(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    code = run_cli("sweep", "synth:alpaca-vicuna", "-n", "20", "--policy", "sjf",
                   "--predictor", "noisy", *args, "--out", out)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "never.partial").exists()


# -- running ----------------------------------------------------------------------------
def test_tiny_sweep_rows_equal_single_simulate_runs(tmp_path, capsys):
    out = tmp_path / "s"
    assert run_cli(*TINY, "--workers", "1", "--out", out) == 0
    stdout = capsys.readouterr().out
    assert "req/s" in stdout and "predictor.scale" in stdout
    assert not (tmp_path / "s.partial").exists()
    for name in ("sweep.csv", "report.md", "sweep_throughput_rps.png", "sweep_e2e_s_p50.png",
                 "sweep_e2e_s_p99.png", "sweep_ttft_s_p50.png"):
        assert (out / name).is_file(), name
    df = read_sweep(out / "sweep.csv")
    assert len(df) == 4
    assert list(zip(df["rate"], df["predictor.scale"])) == [(4.0, 20), (4.0, 62), (8.0, 20),
                                                            (8.0, 62)]
    base = generate("alpaca-vicuna", N, 3)
    metrics = [c for c in simulate(base, RunConfig()).summary if c not in DROPPED_METRICS]
    assert not set(DROPPED_METRICS) & set(df.columns)
    for _, row in df.iterrows():
        trace = apply_arrival(base, None, rate=float(row["rate"]), seed=3)
        cfg = RunConfig(policy="sjf", predictor="noisy",
                        predictor_params={"scale": int(row["predictor.scale"])}, seed=3)
        expected = simulate(trace, cfg).summary
        assert row["requests"] == N and row["seed"] == 3 and row["gpu"] == "A100-80GB"
        for m in metrics:
            e, got = expected[m], row[m]
            assert got == e or (math.isnan(e) and math.isnan(got)), (m, got, e)
    assert "![throughput_rps](sweep_throughput_rps.png)" in (out / "report.md").read_text()


def test_one_worker_or_two_give_identical_csv_bytes(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = [*TINY, "--policies", "fcfs"]
    assert run_cli(*args, "--workers", "1", "--out", a) == 0
    assert run_cli(*args, "--workers", "2", "--out", b) == 0
    capsys.readouterr()
    data = (a / "sweep.csv").read_bytes()
    assert data == (b / "sweep.csv").read_bytes()
    assert len(read_sweep(a / "sweep.csv")) == 8


def test_an_interrupted_sweep_keeps_finished_points_and_resume_skips_them(
        tmp_path, capsys, monkeypatch):
    full = tmp_path / "full"
    assert run_cli(*TINY, "--workers", "1", "--out", full) == 0
    out = tmp_path / "s"
    ran = []
    real = sweep_mod.run_point

    def interrupted(trace, point):
        if len(ran) == 2:
            raise KeyboardInterrupt
        ran.append(point.label)
        return real(trace, point)

    monkeypatch.setattr(sweep_mod, "run_point", interrupted)
    assert run_cli(*TINY, "--workers", "1", "--out", out) == 130
    partial = tmp_path / "s.partial"
    assert not out.exists()
    assert len(read_sweep(partial / "sweep.csv")) == 2          # finished work was kept
    # a writer killed mid-line leaves a torn row: resume drops it and reruns that point
    with (partial / "sweep.csv").open("a") as f:
        f.write("sjf rate=8.0 predictor.scale=20,abc")

    def counting(trace, point):
        ran.append(point.label)
        return real(trace, point)

    ran.clear()
    monkeypatch.setattr(sweep_mod, "run_point", counting)
    assert run_cli(*TINY, "--workers", "1", "--out", out, "--resume") == 0
    assert ran == ["sjf rate=8.0 predictor.scale=20", "sjf rate=8.0 predictor.scale=62"]
    assert not partial.exists()
    assert (out / "sweep.csv").read_bytes() == (full / "sweep.csv").read_bytes()

    # resuming into the rows of another sweep is refused, not mixed
    shutil.copytree(out, partial)
    shutil.rmtree(out)
    code = run_cli(*TINY, "--workers", "1", "--out", out, "--resume", "--model", "llama-13b")
    err = capsys.readouterr().err
    assert code == 2 and "rows of a different sweep" in err, err


def test_sweep_reads_an_experiment_file(tmp_path, capsys):
    exp = tmp_path / "sweep.toml"
    exp.write_text('title = "batch sizes"\ntrace = "synth:alpaca-vicuna"\nnum-requests = 40\n'
                   'policies = ["vanilla", "sorted"]\ngrid = ["batch_size=4,8"]\n'
                   f'workers = 1\nno-progress = true\nout = "{tmp_path / "e"}"\n')
    assert run_cli("sweep", "--experiment", exp) == 0
    capsys.readouterr()
    df = read_sweep(tmp_path / "e" / "sweep.csv")
    assert list(df["policy"]) == ["vanilla", "vanilla", "sorted", "sorted"]
    assert list(df["batch_size"]) == [4, 8, 4, 8]
    assert (tmp_path / "e" / "report.md").read_text().startswith("# batch sizes")


def test_help_and_no_torch_on_the_sweep_path(tmp_path):
    code = ("import sys\nfrom seqsched.app.cli import main\n"
            f"rc = main(['sweep', 'synth:alpaca-vicuna', '-n', '30', '--policy', 'binned', "
            f"'--predictor', 'noisy', '--grid', 'batch_size=4,8', '--workers', '1', "
            f"'--out', {str(tmp_path / 's')!r}])\n"
            "print('RC', rc, 'HEAVY', sorted(m for m in ('torch', 'transformers', 'peft') "
            "if m in sys.modules))\n")
    env = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert "RC 0 HEAVY []" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "seqsched.app.cli", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and "sweep" in r.stdout


def test_ray_runs_the_same_rows(tmp_path, capsys):
    pytest.importorskip("ray")
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(*TINY, "--workers", "1", "--out", a) == 0
    assert run_cli(*TINY, "--workers", "2", "--ray", "--out", b) == 0
    capsys.readouterr()
    assert (a / "sweep.csv").read_bytes() == (b / "sweep.csv").read_bytes()


def test_ray_missing_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)       # import ray -> ImportError
    code = run_cli(*TINY, "--ray", "--out", tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 2 and "pip install -e .[ray]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()
