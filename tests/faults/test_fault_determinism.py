"""Same inputs + seed => byte-identical output files, every one of them (CSV, JSON, Parquet,
PNG, report.md): no wall-clock time, date or worker count may leak into a file."""

from __future__ import annotations

import pytest

from faultkit import files_of, run, write

RUN_COMMANDS = {
    "simulate": ["simulate", "synth:alpaca-vicuna", "-n", "24", "--rate", "4", "--seed", "3",
                 "--predictor", "noisy", "--predictor-param", "seed=5"],
    "compare": ["compare", "synth:azure-conv", "-n", "24", "--rate", "8", "--policies",
                "vanilla", "sorted", "fcfs", "sjf", "--predictor", "noisy"],
    "compare-paper": ["compare", "synth:alpaca-vicuna", "-n", "24", "--policies", "binned",
                      "binned:vbs=false", "--backend", "paper-a100", "--max-new-tokens",
                      "512"],
    "demo": ["demo", "-n", "24", "--seed", "2"],
}


@pytest.mark.parametrize("name", list(RUN_COMMANDS))
def test_run_folders_are_byte_identical(tmp_path, capsys, name):
    folders = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        code, _, err = run(capsys, *RUN_COMMANDS[name], "--out", out)
        assert code == 0, err
        folders.append(files_of(out))
    a, b = folders
    assert a.keys() == b.keys() and any(n.endswith(".png") for n in a)
    assert any(n.endswith(".parquet") for n in a) and "summary.csv" in a
    for n in a:
        assert a[n] == b[n], f"{n} differs between two runs with the same seed"
    assert b"sim_wall_s" not in a["summary.csv"]


def test_sweep_is_byte_identical_across_worker_counts(tmp_path, capsys):
    folders = []
    for k, workers in enumerate(("1", "2", "2")):
        out = tmp_path / f"sw{k}"
        code, _, err = run(capsys, "sweep", "synth:uniform", "-n", "16", "--policies", "fcfs",
                           "sjf", "--grid", "rate=2,8", "--workers", workers, "--out", out)
        assert code == 0, err
        folders.append(files_of(out))
    assert folders[0] == folders[1] == folders[2]
    assert {"sweep.csv", "report.md"} <= folders[0].keys()


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet", ".csv.gz", ".jsonl.gz"])
def test_trace_convert_and_synth_are_byte_identical(tmp_path, capsys, ext):
    src = write(tmp_path, "azure")
    blobs = []
    for k in range(2):
        out = tmp_path / f"c{k}{ext}"
        code, _, err = run(capsys, "trace", "convert", src, out, "--rate", "3", "--seed", "4")
        assert code == 0, err
        syn = tmp_path / f"s{k}{ext}"
        code, _, err = run(capsys, "trace", "synth", "azure-code", "-n", "12", "-o", syn)
        assert code == 0, err
        blobs.append((out.read_bytes(), syn.read_bytes()))
    assert blobs[0] == blobs[1]


def test_trace_inspect_histogram_is_byte_identical(tmp_path, capsys):
    src = write(tmp_path, "native-csv")
    pngs = []
    for k in range(2):
        png = tmp_path / f"h{k}.png"
        code, _, err = run(capsys, "trace", "inspect", src, "--plot", png)
        assert code == 0, err
        pngs.append(png.read_bytes())
    assert pngs[0] == pngs[1]
