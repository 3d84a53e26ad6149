"""Serving features in `seqsched sweep`: a feature can be a grid key; points with and without
it share one set of columns; a sweep without features writes the columns and point ids it
wrote before the features existed."""

from __future__ import annotations

import math

import pandas as pd

from seqsched.app.cli import main
from seqsched.app.run import FEATURE_FIELDS, RunConfig
from seqsched.app.sweep_grid import SweepPoint
from seqsched.analysis.metrics import FEATURE_METRICS

BASE = ["sweep", "synth:shared-prefix", "-n", "24", "--model", "llama-3-8b", "--gpu",
        "H100-SXM", "--policies", "fcfs", "--workers", "1", "--no-progress"]


def test_prefix_caching_as_a_grid_key(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([*BASE, "--grid", "prefix_caching=true,false", "--out", str(out)]) == 0
    df = pd.read_csv(out / "sweep.csv")
    on, off = df[df["prefix_caching"]].iloc[0], df[~df["prefix_caching"]].iloc[0]
    assert set(FEATURE_METRICS) <= set(df.columns)
    assert on["prefix_cached_tokens"] > 0 and math.isnan(off["prefix_cached_tokens"])
    assert on["ttft_s_mean"] < off["ttft_s_mean"]


def test_a_sweep_without_features_has_no_feature_columns(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([*BASE, "--grid", "seed=0,1", "--out", str(out)]) == 0
    cols = set(pd.read_csv(out / "sweep.csv").columns)
    assert not cols & (set(FEATURE_FIELDS) | set(FEATURE_METRICS))


def test_point_id_ignores_feature_fields_left_at_their_default():
    plain = SweepPoint(0, "fcfs", {}, RunConfig())
    assert plain.point_id == SweepPoint(0, "fcfs", {}, RunConfig(swap_space=4.0)).point_id
    assert plain.point_id != SweepPoint(0, "fcfs", {}, RunConfig(swap_space=8.0)).point_id
    assert plain.point_id != SweepPoint(0, "fcfs", {}, RunConfig(prefix_caching=True)).point_id
