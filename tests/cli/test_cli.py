"""The seqsched CLI as a user runs it: tables, output folders, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def seqsched(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "seqsched.app.cli", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})


def write_trace(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def small_trace(tmp_path):
    rows = [{"id": f"r{i}", "arrival_s": 0.0, "prompt_tokens": 20 + i,
             "output_tokens": 5 + 7 * i, "max_of_samples": 10 + 7 * i} for i in range(40)]
    return write_trace(tmp_path / "t.jsonl", rows)


def test_help_lists_every_command():
    r = seqsched("--help")
    assert r.returncode == 0
    for cmd in ("simulate", "compare", "demo"):
        assert cmd in r.stdout


def test_simulate_writes_complete_folder(small_trace, tmp_path):
    out = tmp_path / "run"
    r = seqsched("simulate", small_trace, "--policy", "vanilla", "--batch-size", "8",
                 "--predictor", "none", "--backend", "paper-a100", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "req/s" in r.stdout
    for name in ("report.md", "summary.csv", "records_vanilla.csv", "steps_vanilla.parquet",
                 "throughput.png", "latency_cdf.png", "summary_vanilla.json"):
        assert (out / name).is_file(), name
    assert not (tmp_path / "run.partial").exists()
    records = pd.read_csv(out / "records_vanilla.csv")
    assert len(records) == 40 and records["id"].is_unique
    # 40 requests, batch 8 -> 5 padded batches, every row returns at its batch's end
    steps = pd.read_parquet(out / "steps_vanilla.parquet")
    assert list(steps["rows"]) == [8] * 5
    assert records.groupby("finish_s").size().tolist() == [8] * 5


def test_compare_table_has_every_policy_and_baseline_ratio(small_trace, tmp_path):
    r = seqsched("compare", small_trace, "--policies", "vanilla", "sorted", "binned:vbs=false",
                 "fcfs", "--predictor", "max-of-samples", "--batch-size", "8",
                 "--out", tmp_path / "cmp")
    assert r.returncode == 0, r.stderr
    for label in ("vanilla", "sorted", "binned:vbs=false", "fcfs", "x vanilla"):
        assert label in r.stdout
    summary = pd.read_csv(tmp_path / "cmp" / "summary.csv")
    assert list(summary["label"]) == ["vanilla", "sorted", "binned:vbs=false", "fcfs"]
    assert (summary["requests"] == 40).all()


def test_same_seed_gives_identical_csv_bytes(small_trace, tmp_path):
    args = ["simulate", small_trace, "--policy", "sjf", "--predictor", "noisy",
            "--predictor-param", "scale=30", "--seed", "3", "--rate", "5"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert seqsched(*args, "--out", a).returncode == 0
    assert seqsched(*args, "--out", b).returncode == 0
    assert (a / "records_sjf.csv").read_bytes() == (b / "records_sjf.csv").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--policy", "nope"], "unknown policy 'nope'"),
    (["--gpu", "Z100"], "unknown GPU 'Z100'"),
    (["--model", "gpt-9"], "unknown model 'gpt-9'"),
    (["--predictor", "psychic"], "unknown predictor 'psychic'"),
    (["--policy", "vanilla", "--batch-size", "0"], "batch-size must be > 0"),
    (["--policy", "binned", "--policy-param", "vbs_table=huge"], "unknown vbs-table"),
    (["--policy-param", "nonsense"], "not KEY=VALUE"),
    (["--policy", "vanilla", "--policy-param", "batch_size=abc"],
     "batch-size must be a whole number"),
    (["--model", "llama-2-70b", "--gpu", "L4"], "does not fit in L4"),
    (["--model", "tiny", "--gpu", "L4", "--memory-fraction", "0.00000001"], "does not fit"),
])
def test_bad_input_one_line_exit_2(small_trace, tmp_path, args, message):
    out = tmp_path / "never"
    r = seqsched("simulate", small_trace, *args, "--out", out)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not (tmp_path / "never.partial").exists()


def test_request_longer_than_kv_capacity(tmp_path):
    # tiny model on L4 at a small memory share: a few thousand tokens of KV
    trace = write_trace(tmp_path / "big.jsonl", [
        {"id": "ok", "arrival_s": 0, "prompt_tokens": 10, "output_tokens": 10},
        {"id": "huge", "arrival_s": 0, "prompt_tokens": 900_000, "output_tokens": 10}])
    r = seqsched("simulate", trace, "--model", "tiny", "--gpu", "L4",
                 "--memory-fraction", "0.001")
    assert r.returncode == 2
    assert "request huge needs 900010 tokens of KV cache" in r.stderr


def test_error_during_the_run_leaves_no_output_folder(tmp_path):
    # every request fits the KV cache alone, but a padded batch of 4 does not: the error is
    # raised while the first run executes, after the output folder was opened
    from seqsched.backends.specs import get_gpu, get_model
    m, g = get_model("tiny"), get_gpu("L4")
    fraction = (m.weight_bytes + 400 * m.kv_bytes_per_token) / g.memory_bytes
    trace = write_trace(tmp_path / "t.jsonl", [
        {"id": f"r{i}", "arrival_s": 0, "prompt_tokens": 100, "output_tokens": 100}
        for i in range(4)])
    out = tmp_path / "never"
    r = seqsched("simulate", trace, "--policy", "vanilla", "--batch-size", "4", "--model",
                 "tiny", "--gpu", "L4", "--memory-fraction", repr(fraction), "--out", out)
    assert r.returncode == 2, r.stderr
    assert "padded batch needs 800 KV tokens" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists() and not (tmp_path / "never.partial").exists()


def test_empty_trace_and_existing_output(tmp_path, small_trace):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = seqsched("simulate", empty)
    assert r.returncode == 2 and "empty" in r.stderr
    out = tmp_path / "exists"
    out.mkdir()
    r = seqsched("simulate", small_trace, "--out", out)
    assert r.returncode == 2 and "already exists" in r.stderr


def test_demo_small(tmp_path):
    r = seqsched("demo", "-n", "128", "--out", tmp_path / "demo")
    assert r.returncode == 0, r.stderr
    for label in ("vanilla", "sorted", "binned+VBS+FCR", "fcfs", "sjf"):
        assert label in r.stdout
    summary = pd.read_csv(tmp_path / "demo" / "summary.csv").set_index("label")
    # sorting by predicted length pads less than arrival order
    assert summary.loc["sorted", "avg_processed_length"] < summary.loc["vanilla",
                                                                       "avg_processed_length"]


@pytest.mark.parametrize("n", ["0", "-5"])
def test_demo_with_no_requests_is_one_error_line(tmp_path, n):
    # regression: -n -5 ended in a numpy traceback
    r = seqsched("demo", "-n", n, "--out", tmp_path / "demo")
    assert r.returncode == 2
    assert r.stderr.strip() == f"seqsched: error: the number of requests (-n) must be >= 1, got {n}"
    assert not (tmp_path / "demo").exists() and not (tmp_path / "demo.partial").exists()


def test_compare_reads_an_experiment_file(small_trace, tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text(f'title = "my experiment"\ntrace = "{small_trace}"\n'
                   'policies = ["vanilla", "sorted"]\nbatch-size = 8\n'
                   'predictor = "max-of-samples"\n')
    r = seqsched("compare", "--experiment", exp, "--out", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    report = (tmp_path / "e" / "report.md").read_text()
    assert report.startswith("# my experiment")
    steps = pd.read_parquet(tmp_path / "e" / "steps_vanilla.parquet")
    assert (steps["rows"] == 8).all()
    # the command line wins over the file
    r = seqsched("compare", "--experiment", exp, "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    exp.write_text('polices = ["vanilla"]\n')
    r = seqsched("compare", "--experiment", exp)
    assert r.returncode == 2 and "unknown key 'polices'" in r.stderr


def test_shipped_experiment_files_parse():
    import tomllib
    for path in (ROOT / "experiments").glob("*.toml"):
        spec = tomllib.loads(path.read_text())
        assert spec["policies"], path
