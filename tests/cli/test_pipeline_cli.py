"""`--pipeline-parallel-size N` / `-pp N` on the command line: a run, the flag in sweeps'
spelling, and bad input as one error line."""

from __future__ import annotations

import pandas as pd
import pytest

from seqsched.app.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_with_pp_names_the_stages_and_counts_their_gpus(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "simulate", "synth:azure-conv", "-n", "40", "--rate", "5",
                                "--gpu", "H100-SXM", "--model", "llama-3-8b", "--tp", "2",
                                "-pp", "2", "--out", out, "--no-progress")
    assert code == 0, err
    assert "TP2 / PP2" in (out / "report.md").read_text()
    summary = pd.read_csv(out / "summary.csv")
    assert summary["gpus"].iloc[0] == 4 and summary["requests"].iloc[0] == 40


@pytest.mark.parametrize("extra, words", [
    (["--pipeline-parallel-size", "40"], "32 layers"),
    (["-pp", "2", "--policy", "vanilla"], "continuous policy"),
    (["-pp", "0"], "pipeline")])
def test_bad_pipeline_input_is_one_line_exit_2(tmp_path, capsys, extra, words):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "simulate", "synth:azure-conv", "-n", "10",
                                "--gpu", "H100-SXM", "--model", "llama-3-8b", *extra,
                                "--out", out, "--no-progress")
    assert code == 2 and not out.exists()
    assert err.startswith("seqsched: error:") and err.count("\n") == 1 and words in err
