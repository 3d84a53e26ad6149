"""`seqsched capacity` / `plan` and the --slo option as a user runs them: outputs, the known
cheapest point of a 3-point grid, one-line errors with exit 2."""

from __future__ import annotations

import pandas as pd
import pytest

from seqsched.app.cli import main

SYNTH = ["synth:alpaca-vicuna", "-n", "60", "--seed", "1", "--no-progress"]


def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.parametrize("args, words", [
    (["simulate", *SYNTH, "--slo", "itl_p99=1s"], "unknown metric 'itl'"),
    (["compare", *SYNTH, "--policies", "fcfs", "--slo", "ttft_p99=-1s"], "positive"),
    (["sweep", *SYNTH, "--grid", "rate=2", "--slo", "ttft_p0=1s", "--out", "x"],
     "outside (0, 100]"),
    (["capacity", *SYNTH, "--slo", "ttft_p99=1s", "--target", "1.5"], "(0, 1]"),
    (["capacity", *SYNTH, "--slo", "ttft_p99=1s", "--target", "0"], "(0, 1]"),
    (["capacity", *SYNTH, "--target", "0.9"], "give the SLOs"),
    (["capacity", *SYNTH, "--rate-min", "5", "--rate-max", "2"], "must exceed"),
    (["capacity", *SYNTH, "--prices", "/nonexistent.json"], "no such file"),
    (["plan", *SYNTH, "--rate", "2", "--slo", "ttft_p99=1s", "--out", "x"],
     "plan grid is empty"),
    (["plan", *SYNTH, "--rate", "2", "--grid", "gpu=L4", "--out", "x"], "needs SLOs"),
    (["plan", *SYNTH, "--slo", "ttft_p99=1s", "--grid", "gpu=L4", "--out", "x"],
     "traffic with a rate"),
])
def test_bad_objectives_are_one_line_exit_2(args, words, tmp_path, monkeypatch,
                                            one_error_line):
    monkeypatch.chdir(tmp_path)
    assert run_cli(*args) == 2
    assert words in one_error_line()
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_lowest_rate_violating_the_slo_reports_and_stops(tmp_path, one_error_line):
    out = tmp_path / "cap"
    # no request's TTFT can be 1 ms (a prefill alone takes longer): the first probe fails
    code = run_cli("capacity", *SYNTH, "--slo", "ttft_p50=1ms", "--rate-min", "0.5",
                   "--rate-max", "8", "--out", out)
    assert code == 2
    err = one_error_line()
    assert "lowest rate probed" in err and "fcfs (0.5 req/s)" in err
    probes = pd.read_csv(out / "probes.csv")
    assert len(probes) == 1 and not probes["passed"].any()       # one probe, no loop


def test_capacity_outputs(tmp_path, capsys):
    out = tmp_path / "cap"
    assert run_cli("capacity", *SYNTH, "--policies", "fcfs", "sjf", "--slo", "ttft_p90=2s",
                   "--slo", "tpot_p90=100ms", "--target", "0.8", "--tolerance", "0.1",
                   "--out", out) == 0
    assert "capacity req/s" in capsys.readouterr().out
    cap = pd.read_csv(out / "capacity.csv")
    assert cap["policy"].tolist() == ["fcfs", "sjf"]
    assert (cap["capacity_rps"] > 0).all()
    probes = pd.read_csv(out / "probes.csv")
    for policy, row in cap.set_index("policy").iterrows():
        mine = probes[probes["policy"] == policy]
        passed = mine[mine["passed"]]
        assert passed["rate_rps"].max() == row["capacity_rps"]
        if row["bounded"]:
            assert mine[~mine["passed"]]["rate_rps"].min() == row["failing_rps"]
        assert (passed["slo_attainment"] >= 0.8).all() and not passed["saturated"].any()
    for name in ("report.md", "capacity_curve.png", "timeseries.png", "timeseries.parquet"):
        assert (out / name).is_file()
    assert set(pd.read_parquet(out / "timeseries.parquet")["label"]) == {"fcfs", "sjf"}


def test_plan_picks_the_known_cheapest_of_a_3_point_grid(tmp_path, capsys):
    # a 20 ms TPOT SLO: an L4 (300 GB/s) decodes a 7B model in ~45 ms, an A100 or H100 in
    # < 10 ms. With these prices the L4 is cheapest but misses the SLO; the H100 is the
    # cheapest that meets it.
    prices = tmp_path / "prices.csv"
    prices.write_text("gpu,usd_per_gpu_hour\nL4,1.0\nA100-80GB,3.0\nH100-SXM,2.0\n")
    out = tmp_path / "plan"
    code = run_cli("plan", *SYNTH, "--rate", "2", "--policies", "fcfs",
                   "--slo", "tpot_p90=20ms", "--grid", "gpu=L4,A100-80GB,H100-SXM",
                   "--prices", prices, "--workers", "1", "--out", out)
    assert code == 0
    assert "cheapest feasible: fcfs gpu=H100-SXM at $2/h" in capsys.readouterr().out
    plan = pd.read_csv(out / "plan.csv")
    assert plan["gpu"].tolist() == ["H100-SXM", "A100-80GB", "L4"]
    assert plan["feasible"].tolist() == [True, True, False]
    assert plan["cost_usd_per_hour"].tolist() == [2.0, 3.0, 1.0]
    assert plan["rank"].tolist() == [1, 2, 3]
    l4 = plan.iloc[2]
    assert l4["slo_tpot_p90_attainment"] < 0.9 and l4["tpot_s_p90"] > 0.02
    assert (out / "pareto.png").is_file() and (out / "sweep.csv").is_file()
    # no feasible point: exit 1 and the verdict says so
    out2 = tmp_path / "plan2"
    assert run_cli("plan", *SYNTH, "--rate", "2", "--slo", "tpot_p90=1ms", "--grid",
                   "gpu=L4,A100-80GB", "--workers", "1", "--out", out2) == 1
    assert "no configuration of the grid meets the SLOs" in capsys.readouterr().out


def test_simulate_with_slos_adds_columns_at_the_end(tmp_path):
    plain, judged = tmp_path / "a", tmp_path / "b"
    assert run_cli("simulate", *SYNTH, "--rate", "4", "--out", plain) == 0
    assert run_cli("simulate", *SYNTH, "--rate", "4", "--slo", "e2e_p90=10s",
                   "--out", judged) == 0
    a, b = pd.read_csv(plain / "summary.csv"), pd.read_csv(judged / "summary.csv")
    assert list(b.columns[:len(a.columns)]) == list(a.columns)
    assert list(b.columns[len(a.columns):]) == [
        "slo_e2e_p90_attainment", "slo_attainment", "slo_targets_met", "goodput_rps"]
    rec = pd.read_csv(judged / "records_fcfs.csv")
    met = ((rec["finish_s"] - rec["arrival_s"]) <= 10).mean()
    assert b["slo_attainment"].iloc[0] == pytest.approx(met)
    for col in ("usd_per_m_output_tokens", "j_per_output_token", "saturated"):
        assert col in a
    ts = pd.read_parquet(judged / "timeseries.parquet")
    assert ts["slo_violations"].sum() == (~((rec["finish_s"] - rec["arrival_s"]) <= 10)).sum()


def test_capacity_and_plan_outputs_are_deterministic(tmp_path, capsys):
    args = ["capacity", *SYNTH, "--slo", "ttft_p90=2s", "--tolerance", "0.1"]
    assert run_cli(*args, "--out", tmp_path / "a") == 0
    assert run_cli(*args, "--out", tmp_path / "b") == 0
    capsys.readouterr()
    assert run_cli(*args, "--rate-min", "0.01", "--rate-max", "0.02") == 0
    assert "fcfs: even --rate-max 0.02 req/s passed" in capsys.readouterr().out
    for name in ("capacity.csv", "probes.csv", "timeseries.parquet", "report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    plan = ["plan", *SYNTH, "--rate", "2", "--slo", "tpot_p90=20ms", "--grid",
            "gpu=A100-80GB,H100-SXM", "--workers", "1"]
    assert run_cli(*plan, "--out", tmp_path / "p1") == 0
    assert run_cli(*plan, "--workers", "2", "--out", tmp_path / "p2") == 0
    for name in ("plan.csv", "sweep.csv", "report.md"):
        assert (tmp_path / "p1" / name).read_bytes() == (tmp_path / "p2" / name).read_bytes()
