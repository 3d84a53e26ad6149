"""The gain-vs-quality map: gains over FCFS at the same grid point, computed by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from seqsched.analysis.quality_map import gain_table, quality_section


@dataclass
class Axis:
    key: str
    values: list
    numeric: bool = True


AXES = [Axis("predictor.target_mae", [0, 50]), Axis("rate", [5, 40])]


def frame():
    rows = []
    for mae in (0, 50):
        for rate in (5, 40):
            slow = rate == 40
            rows.append({"policy": "fcfs", "predictor.target_mae": mae, "rate": rate,
                         "e2e_s_mean": 10.0 if slow else 2.0, "e2e_s_p99": 40.0 if slow else 4.0,
                         "throughput_rps": 4.0})
            rows.append({"policy": "sjf", "predictor.target_mae": mae, "rate": rate,
                         "e2e_s_mean": (5.0 if mae == 0 else 8.0) if slow else 2.0,
                         "e2e_s_p99": 60.0 if slow else 4.0, "throughput_rps": 5.0 if slow else 4.0})
    return pd.DataFrame(rows)


def test_gains_are_relative_to_fcfs_at_the_same_point():
    g = gain_table(frame(), AXES).set_index(["predictor.target_mae", "rate"])
    assert g.loc[(0, 40), "gain_e2e_mean"] == 0.5          # 1 - 5/10
    assert g.loc[(50, 40), "gain_e2e_mean"] == pytest.approx(0.2)
    assert g.loc[(0, 40), "gain_e2e_p99"] == -0.5          # the tail got worse
    assert g.loc[(0, 40), "gain_throughput"] == 0.25
    # below saturation: nothing waits, no gain
    assert (g.xs(5, level="rate")[["gain_e2e_mean", "gain_e2e_p99", "gain_throughput"]]
            == 0).all().all()


def test_no_map_without_a_quality_key_or_fcfs(tmp_path):
    assert gain_table(frame(), [Axis("rate", [5, 40])]) is None
    assert gain_table(frame()[frame()["policy"] != "fcfs"], AXES) is None
    lines = quality_section(tmp_path, frame(), AXES)
    assert any("Gain over FCFS" in line for line in lines)
    assert (tmp_path / "gain_vs_quality_e2e_mean.png").stat().st_size > 0
    assert len(pd.read_csv(tmp_path / "gain_vs_quality.csv")) == 4


def test_a_quality_sweep_draws_the_map(tmp_path, capsys):
    from seqsched.app.cli import main
    out = tmp_path / "q"
    code = main(["sweep", "synth:alpaca-vicuna", "-n", "60", "--policies", "fcfs", "sjf",
                 "gittins", "--predictor", "quality", "--grid", "predictor.target_mae=0,80",
                 "--grid", "rate=1,400", "--grid", "max_num_seqs=4", "--model", "llama-7b",
                 "--workers", "1", "--out", str(out)])
    assert code == 0
    g = pd.read_csv(out / "gain_vs_quality.csv")
    assert set(g["policy"]) == {"sjf", "gittins"} and len(g) == 8
    # the lowest rate leaves the queue empty: no gain at any quality
    low = g[g["rate"] == 1]     # (rate 2 queues a little at A100's measured bandwidth)
    assert (low[["gain_e2e_mean", "gain_throughput"]].abs() < 1e-12).all().all()
    # overloaded, exact lengths cut the mean latency
    high = g[(g["rate"] == 400) & (g["predictor.target_mae"] == 0)]
    assert (high["gain_e2e_mean"] > 0.1).all()
    assert "Gain over FCFS vs predictor quality" in (out / "report.md").read_text()


def test_gittins_from_p50_p90_quantiles_in_a_file(tmp_path):
    import numpy as np
    from seqsched.app.run import RunConfig, simulate
    from seqsched.traces.synthetic import alpaca_vicuna
    t = alpaca_vicuna(40, seed=1)
    truth = t.output_tokens
    pd.DataFrame({"id": t.ids, "predicted": truth, "predicted_p50": truth,
                  "predicted_p90": truth * 2}).to_csv(tmp_path / "p.csv", index=False)
    cfg = RunConfig(policy="gittins", predictor="from-file",
                    predictor_params={"path": str(tmp_path / "p.csv")},
                    policy_params={"max_num_seqs": 2})
    res = simulate(t, cfg)
    np.testing.assert_array_equal(res.records["generated_tokens"], truth)
    # without the p90 column the predictor has no distribution: one error naming who has
    pd.DataFrame({"id": t.ids, "predicted": truth}).to_csv(tmp_path / "q.csv", index=False)
    cfg.predictor_params = {"path": str(tmp_path / "q.csv")}
    from seqsched.common.errors import UserError
    with pytest.raises(UserError, match="predictor from-file gives none here"):
        simulate(t, cfg)
