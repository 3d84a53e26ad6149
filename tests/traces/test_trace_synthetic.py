"""Synthetic workloads reproduce the statistics they were derived from."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqsched.traces.request import TraceError
from seqsched.traces.synthetic import (GENERATOR_INFO, GENERATORS, alpaca_vicuna, generate,
                              load_figures)

ROOT = Path(__file__).resolve().parents[2]


def test_registry():
    assert set(GENERATORS) == {"alpaca-vicuna", "azure-conv", "azure-code", "uniform",
                               "lognormal", "shared-prefix"}
    assert set(GENERATOR_INFO) == set(GENERATORS)
    assert all(info["source"] for info in GENERATOR_INFO.values())


@pytest.mark.parametrize("name,n_published,prompt_mean,prompt_median,out_mean,out_median", [
    ("azure-conv", 19_400, 1155, 1020, 211, 129),
    ("azure-code", 8_800, 2048, 1500, 28, 13),
])
def test_azure_matches_published_statistics(name, n_published, prompt_mean, prompt_median,
                                            out_mean, out_median):
    t = generate(name, 100_000, seed=0)
    assert t.prompt_tokens.mean() == pytest.approx(prompt_mean, rel=0.03)
    assert np.median(t.prompt_tokens) == pytest.approx(prompt_median, rel=0.03)
    assert t.output_tokens.mean() == pytest.approx(out_mean, rel=0.05)
    assert np.median(t.output_tokens) == pytest.approx(out_median, rel=0.08)
    # Poisson at the published rate: requests per hour
    rate = len(t) / t.arrival_s[-1]
    assert rate * 3600 == pytest.approx(n_published, rel=0.02)
    assert t.prompt_tokens.min() >= 1 and t.output_tokens.min() >= 1


def test_azure_rate_override_and_offline():
    assert (generate("azure-code", 50, seed=1, rate=0).arrival_s == 0).all()
    t = generate("azure-conv", 20_000, seed=1, rate=50.0)
    assert len(t) / t.arrival_s[-1] == pytest.approx(50, rel=0.03)


def test_uniform_bounds_and_seed():
    t = generate("uniform", 5000, seed=4, prompt_min=10, prompt_max=20, output_min=3,
                 output_max=3)
    assert t.prompt_tokens.min() == 10 and t.prompt_tokens.max() == 20
    assert (t.output_tokens == 3).all() and (t.arrival_s == 0).all()
    assert generate("uniform", 10, 4).df.equals(generate("uniform", 10, 4).df)
    with pytest.raises(TraceError, match="prompt_min <= prompt_max"):
        generate("uniform", 10, prompt_min=30, prompt_max=20)


def test_lognormal_median_and_cap():
    t = generate("lognormal", 50_000, seed=0, prompt_median=300, prompt_sigma=0.5,
                 output_median=50, output_sigma=2.0, max_output_tokens=400)
    assert np.median(t.prompt_tokens) == pytest.approx(300, rel=0.03)
    assert np.median(t.output_tokens) == pytest.approx(50, rel=0.05)
    assert t.output_tokens.max() == 400


def test_alpaca_vicuna_still_matches_its_figures():
    fig = load_figures("alpaca_vicuna")
    t = alpaca_vicuna(20_000, seed=0)
    assert t.output_tokens.mean() == pytest.approx(fig["mean_output_tokens"], rel=0.03)
    assert (t.df["max_of_samples"] >= t.output_tokens).all()


def test_generate_checks_name_and_params():
    with pytest.raises(TraceError, match="did you mean 'azure-conv'"):
        generate("azure-conversation", 10)
    with pytest.raises(TraceError, match="has no parameter.*foo.*takes rate"):
        generate("azure-code", 10, foo=1)
    with pytest.raises(TraceError, match=">= 1"):
        generate("uniform", 0)


def test_derive_script_reproduces_shipped_figures(tmp_path, monkeypatch, capsys):
    out = tmp_path / "azure.json"
    monkeypatch.setattr(sys, "argv", ["derive_azure_figures.py", "--out", str(out)])
    runpy.run_path(str(ROOT / "scripts/derive_azure_figures.py"), run_name="__main__")
    assert json.loads(out.read_text()) == load_figures("azure_2023")
    assert "azure-conv: rate 5.3889/s" in capsys.readouterr().out


SHARED = Path("/work/shared/data/alpaca_vicuna_lengths_train.jsonl")


def test_derive_azure_figures_from_released_csvs(tmp_path, monkeypatch, capsys):
    """The --conv/--code path: figures measured from Azure-format CSVs (made here from the
    shipped generator), so the re-derived workload matches the file it was fitted to."""
    paths = {}
    for name, n in (("azure-conv", 3000), ("azure-code", 2000)):
        t = generate(name, n, seed=5)
        stamps = (np.datetime64("2023-11-11T10:00:00", "ns")
                  + (t.arrival_s * 1e9).astype("timedelta64[ns]"))
        df = pd.DataFrame({"TIMESTAMP": pd.Series(stamps).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
                           + "0", "ContextTokens": t.prompt_tokens,
                           "GeneratedTokens": t.output_tokens})
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    out = tmp_path / "azure.json"
    monkeypatch.setattr(sys, "argv", ["derive_azure_figures.py", "--conv",
                                      str(paths["azure-conv"]), "--code",
                                      str(paths["azure-code"]), "--out", str(out)])
    runpy.run_path(str(ROOT / "scripts/derive_azure_figures.py"), run_name="__main__")
    fig = json.loads(out.read_text())
    for name, n in (("azure-conv", 3000), ("azure-code", 2000)):
        t = generate(name, n, seed=5)
        entry = fig[name]
        assert entry["origin"] == f"measured from {name}.csv"
        assert entry["requests"] == n
        assert entry["prompt"]["median"] == np.median(t.prompt_tokens)
        assert entry["output"]["mean"] == pytest.approx(t.output_tokens.mean())
        assert entry["rate_per_s"] == pytest.approx(n / (t.arrival_s[-1] - t.arrival_s[0]),
                                                    abs=1e-4)
        # the fitted log-normal is close to the one that generated the file
        shipped = load_figures("azure_2023")[name]
        assert entry["output"]["sigma"] == pytest.approx(shipped["output"]["sigma"], rel=0.1)


@pytest.mark.skipif(not SHARED.exists(), reason="shared data /work/shared/data is absent")
def test_derive_workloads_reproduces_shipped_alpaca_vicuna_figures(tmp_path, monkeypatch):
    out = tmp_path / "av.json"
    monkeypatch.setattr(sys, "argv", ["derive_workloads.py", "--data", str(SHARED),
                                      "--out", str(out)])
    runpy.run_path(str(ROOT / "scripts/derive_workloads.py"), run_name="__main__")
    assert json.loads(out.read_text()) == load_figures("alpaca_vicuna")


def test_shared_prefix_shape():
    t = generate("shared-prefix", 24, seed=1, groups=2, users=3, questions=4,
                 system_prompt_len=100, question_len=10, output_len=20, think_s=7.0)
    df = t.df
    assert len(df) == 24 and (df["output_tokens"] == 20).all()
    # turn t: system + t x (question + answer) + question
    assert (df["prompt_tokens"] == 100 + df["turn"] * 30 + 10).all()
    assert set(df["prefix_group"]) == {0, 1} and (df["prefix_tokens"] == 100).all()
    for _, conv in df.groupby("session_id"):
        conv = conv.sort_values("turn")
        assert list(conv["turn"]) == list(range(len(conv)))
        assert np.allclose(np.diff(conv["arrival_s"]), 7.0)     # think time between turns
    assert (np.diff(df["arrival_s"]) >= 0).all()
    with pytest.raises(TraceError, match="groups must be a whole number"):
        generate("shared-prefix", 4, groups=0)
