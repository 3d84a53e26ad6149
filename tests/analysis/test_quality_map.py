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
