"""`--max-concurrency N` on the command line, and a vLLM bench result's own max_concurrency
replayed closed-loop by `validate --measured` (sim/client.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seqsched.app.cli import main
from seqsched.traces.recorded import read_recorded

from test_validate_measured import write_bench


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def bench(tmp_path, **over):
    """Six requests all at t = 0 (rate inf), as `vllm bench serve --max-concurrency 2` saves
    them (no start_times: vLLM before 0.19's --save-detailed)."""
    data = {"num_prompts": 6, "input_lens": [64] * 6, "output_lens": [16] * 6,
            "ttfts": [0.05] * 6, "itls": [[0.02] * 15] * 6, "errors": [""] * 6,
            "max_concurrency": 2}
    data.update(over)
    return write_bench(tmp_path / "bench.json", **data)


def measured(capsys, tmp_path, src, *extra):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "validate", "--measured", src, "--gpu", "A100-80GB",
                                "--out", out, "--overwrite", *extra)
    assert code == 0, err
    rec = pd.read_csv(out / "records_sim.csv")
    settings = json.loads((out / "settings.json").read_text())
    return rec, settings, err


def in_flight(rec: pd.DataFrame) -> int:
    return max(int(((rec["arrival_s"] <= t) & (rec["finish_s"] > t)).sum())
               for t in rec["arrival_s"])


def test_bench_max_concurrency_is_replayed_closed_loop(tmp_path, capsys):
    rec, settings, err = measured(capsys, tmp_path, bench(tmp_path))
    assert settings["simulated_with"]["max_concurrency"] == 2
    assert "replayed closed-loop" in err
    assert (rec["client_arrival_s"] == 0).all()          # rate inf: all generated at t = 0
    assert in_flight(rec) == 2
    # three waves of two: the 3rd and 4th are sent when the first two finish, and so on
    sends, finishes = rec["arrival_s"].to_numpy(), rec["finish_s"].to_numpy()
    assert sends[:2].tolist() == [0.0, 0.0]
    assert sends[2:4].tolist() == sorted(finishes[:2].tolist())
    assert sends[4:6].tolist() == sorted(finishes[2:4].tolist())
    # TTFT counts from the send: every wave waits no longer than the first
    ttft = rec["first_token_s"] - rec["arrival_s"]
    assert ttft.max() == pytest.approx(ttft.iloc[0], rel=1e-6)


def test_the_flag_overrides_the_results_own_cap(tmp_path, capsys):
    rec, settings, _ = measured(capsys, tmp_path, bench(tmp_path), "--max-concurrency", "6")
    assert settings["simulated_with"]["max_concurrency"] == 6
    assert (rec["arrival_s"] == 0).all()                 # no request held back
    one, _, _ = measured(capsys, tmp_path, bench(tmp_path), "--max-concurrency", "1")
    assert in_flight(one) == 1
    assert one["arrival_s"].tolist()[1:] == one["finish_s"].tolist()[:-1]


def test_without_a_cap_the_replay_stays_open_loop(tmp_path, capsys):
    rec, settings, err = measured(capsys, tmp_path, bench(tmp_path, max_concurrency=None))
    assert "max_concurrency" not in settings["simulated_with"]
    assert "client_arrival_s" not in rec and (rec["arrival_s"] == 0).all()
    assert in_flight(rec) == 6


def test_recorded_start_times_are_the_sends_and_replay_as_they_are(tmp_path):
    run = read_recorded(bench(tmp_path, start_times=[5.0, 5.0, 6.0, 6.1, 7.0, 7.2]))
    assert "max_concurrency" not in run.engine
    assert run.trace.arrival_s.tolist() == pytest.approx([0.0, 0.0, 1.0, 1.1, 2.0, 2.2])
    assert any("start_times" in n and "max_concurrency 2" in n for n in run.notes)


@pytest.mark.parametrize("value", [0, -3, 1.5, "four", True])
def test_a_bad_cap_in_the_result_is_one_line(tmp_path, capsys, value):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "validate", "--measured", bench(tmp_path,
                           max_concurrency=value), "--gpu", "A100-80GB", "--out", out)
    assert code == 2 and err.startswith("seqsched: error: ") and err.count("\n") == 1, err
    assert "max_concurrency" in err and not out.exists()


@pytest.mark.parametrize("command", ["simulate", "compare", "sweep"])
def test_a_cap_below_one_is_one_line(tmp_path, capsys, command):
    out = tmp_path / "out"
    extra = {"compare": ["--policies", "fcfs", "sjf"], "sweep": ["--grid", "max_num_seqs=4,8"]}
    code, _, err = run_cli(capsys, command, "synth:alpaca-vicuna", "-n", "5",
                           *extra.get(command, []), "--max-concurrency", "0", "--out", out)
    assert code == 2 and err == "seqsched: error: max-concurrency must be >= 1, got 0\n", err
    assert not out.exists()


def test_simulate_with_a_cap_and_a_sweep_over_it(tmp_path, capsys):
    code, _, err = run_cli(capsys, "simulate", "synth:alpaca-vicuna", "-n", "40",
                           "--max-concurrency", "3", "--out", tmp_path / "sim")
    assert code == 0, err
    rec = pd.read_csv(tmp_path / "sim" / "records_fcfs.csv")
    assert in_flight(rec) == 3 and (rec["arrival_s"] >= rec["client_arrival_s"]).all()
    assert "client's send" in (tmp_path / "sim" / "report.md").read_text()
    code, _, err = run_cli(capsys, "sweep", "synth:alpaca-vicuna", "-n", "40", "--grid",
                           "max_concurrency=1,4", "--out", tmp_path / "sweep")
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert rows["max_concurrency"].tolist() == [1, 4]
    # one at a time is slower end to end (the makespan), never faster to first token
    assert rows["throughput_rps"].iloc[0] < rows["throughput_rps"].iloc[1]


def test_an_experiment_file_sets_the_cap(tmp_path, capsys):
    exp = tmp_path / "exp.toml"
    exp.write_text('trace = "synth:alpaca-vicuna"\nnum_requests = 20\n'
                   'policies = ["fcfs", "sjf"]\nmax_concurrency = 2\n')
    code, _, err = run_cli(capsys, "compare", "--experiment", exp, "--out", tmp_path / "cmp")
    assert code == 0, err
    for label in ("fcfs", "sjf"):
        assert in_flight(pd.read_csv(tmp_path / "cmp" / f"records_{label}.csv")) == 2
