"""`trace inspect | convert | synth` and the shared trace options, in process."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from seqsched.traces import arrivals
from seqsched.app.trace_args import add_trace_arguments, trace_from_args
from seqsched.app.trace_cli import describe, main, register
from seqsched.traces.io import load_trace
from seqsched.traces.request import TraceError

AZURE = ("TIMESTAMP,ContextTokens,GeneratedTokens\n"
         + "".join(f"2023-11-16 18:{m:02d}:00.0000000,{100 + m},{1000 if m % 2 else 7}\n"
                   for m in range(10)))
SHARED = Path("/work/shared/data/alpaca_vicuna_lengths_train.jsonl")


@pytest.fixture
def azure(tmp_path):
    p = tmp_path / "az.csv"
    p.write_text(AZURE)
    return p


def lead_parser() -> argparse.ArgumentParser:
    """What sim/cli.py's simulate parser looks like: its own --seed and -n-free options."""
    p = argparse.ArgumentParser()
    p.add_argument("--policy", default="fcfs")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out")
    add_trace_arguments(p)
    return p


def test_lead_parser_keeps_its_seed(azure):
    p = lead_parser()
    args = p.parse_args([str(azure), "--policy", "sjf", "--arrival", "poisson", "--rate", "2"])
    assert args.seed == 7 and args.policy == "sjf"
    t = trace_from_args(args)
    np.testing.assert_allclose(t.arrival_s, arrivals.poisson(load_trace(azure), 2, 7).arrival_s)


def test_option_form_and_conflicts(azure, tmp_path):
    p = lead_parser()
    assert len(trace_from_args(p.parse_args(["--trace", str(azure)]))) == 10
    with pytest.raises(TraceError, match="two traces given"):
        trace_from_args(p.parse_args([str(azure), "--trace", str(tmp_path / "x.csv")]))
    with pytest.raises(TraceError, match="no trace given"):
        trace_from_args(p.parse_args([]))


def test_replay_window_rows_sample_cap(azure):
    p = lead_parser()
    t = trace_from_args(p.parse_args([str(azure), "--window", "2m:8m", "--speedup", "60"]))
    assert t.ids.tolist() == [str(i) for i in range(2, 8)]
    np.testing.assert_allclose(t.arrival_s, np.arange(6.0))       # minutes -> seconds
    t = trace_from_args(p.parse_args([str(azure), "--rows", "3:6", "--max-output-tokens",
                                      "512"]))
    assert t.ids.tolist() == ["3", "4", "5"] and t.output_tokens.tolist() == [512, 7, 512]
    np.testing.assert_allclose(t.arrival_s, [0, 60, 120])          # relative to first row read
    t = trace_from_args(p.parse_args([str(azure), "--sample", "4", "--arrival", "offline"]))
    assert len(t) == 4 and (t.arrival_s == 0).all()


def test_streamed_rows_and_window_equal_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    n = 30_000
    ts = np.datetime64("2024-05-12T00:00:00", "ns") + np.cumsum(
        rng.exponential(0.05e9, n)).astype("timedelta64[ns]")
    import pandas as pd
    text = pd.DataFrame({"TIMESTAMP": pd.Series(ts).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
                         + "+00:00", "ContextTokens": rng.integers(1, 9, n),
                         "GeneratedTokens": rng.integers(1, 9, n)})
    p = tmp_path / "big.csv"
    text.to_csv(p, index=False)
    full = load_trace(p)
    streamed = load_trace(p, window=(300.0, 900.0))
    expected = arrivals.window(full, 300.0, 900.0)
    assert streamed.ids.tolist() == expected.ids.tolist()
    np.testing.assert_allclose(streamed.arrival_s, expected.arrival_s, atol=1e-6)
    rows = load_trace(p, rows=(10_000, 20_000))
    assert rows.ids.tolist() == [str(i) for i in range(10_000, 20_000)]
    assert rows.arrival_s[0] == 0.0


def test_synth_source(tmp_path):
    p = lead_parser()
    args = p.parse_args(["synth:azure-code", "-n", "300", "--trace-option", "rate=0"])
    t = trace_from_args(args)
    assert len(t) == 300 and (t.arrival_s == 0).all()
    args = p.parse_args(["synth:lognormal", "-n", "50", "--trace-option", "output_median=20",
                         "--arrival", "gamma", "--rate", "10", "--cv", "3"])
    t = trace_from_args(args)
    assert len(t) == 50 and t.arrival_s[-1] > 0
    with pytest.raises(TraceError, match="unknown synthetic workload 'nope'"):
        trace_from_args(p.parse_args(["synth:nope"]))


def test_register_inspect_writes_png_and_table(azure, tmp_path, capsys):
    root = argparse.ArgumentParser(prog="seqsched")
    register(root.add_subparsers(dest="command"))
    png = tmp_path / "h.png"
    args = root.parse_args(["trace", "inspect", str(azure), "--plot", str(png)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "requests   10" in out and "540.0 s" in out
    assert "| output tokens |" in out and "p99" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convert_and_synth_commands(azure, tmp_path, capsys):
    out = tmp_path / "az.parquet"
    assert main(["trace", "convert", str(azure), str(out), "--rows", ":4"]) == 0
    t = load_trace(out)
    assert t.ids.tolist() == ["0", "1", "2", "3"]
    syn = tmp_path / "s.csv"
    assert main(["trace", "synth", "uniform", "-n", "20", "--seed", "3", "--rate", "4",
                 "-o", str(syn)]) == 0
    s = load_trace(syn)
    assert len(s) == 20 and s.arrival_s[-1] > 0
    assert "wrote" in capsys.readouterr().out
    d = describe(s)
    assert d["requests"] == 20 and d["rate_per_s"] > 0


@pytest.mark.skipif(not SHARED.exists(), reason="shared data /work/shared/data is absent")
def test_shared_alpaca_vicuna_file():
    t = load_trace(SHARED)
    assert len(t) == 10_000
    assert t.output_tokens.mean() == pytest.approx(125.6, abs=0.05)
    assert np.median(t.output_tokens) == 105 and t.output_tokens.max() <= 512
    assert t.prompt_tokens.max() == 449
    for col in ("prompt", "len_t0.0", "len_t0.3", "len_t0.5", "len_t0.7", "max_of_samples"):
        assert col in t.df
    assert t.df["max_of_samples"].mean() == pytest.approx(165.9, abs=0.05)
    assert (t.df["len_t0.0"] == t.df["output_tokens"]).all()


def test_single_request_trace_has_no_rate(tmp_path, capsys):
    # one recorded request: no span to divide by, so the rate is unknown, not "inf req/s"
    p = tmp_path / "one.csv"
    p.write_text("arrival_s,prompt_tokens,output_tokens\n118,5,5\n")
    assert describe(load_trace(p))["rate_per_s"] is None
    assert main(["trace", "inspect", str(p), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "inf" not in out and "mean rate" in out


def test_concat_command(azure, tmp_path, capsys):
    """`trace concat`: merge interleaves both timelines; sequential plays the second file
    `--gap` seconds after the first one's last arrival; colliding ids get their source."""
    mooncake = tmp_path / "mc.jsonl"
    mooncake.write_text("".join(f'{{"timestamp": {t}, "input_length": 50, "output_length": 5,'
                                f' "hash_ids": [1]}}\n' for t in (0, 30_000, 90_000)))
    out = tmp_path / "joined.jsonl"
    assert main(["trace", "concat", str(azure), str(mooncake), "-o", str(out)]) == 0
    merged = load_trace(out)
    assert len(merged) == 13 and merged.df["source"].nunique() == 2
    assert (merged.df["source"].value_counts().sort_values().tolist() == [3, 10])
    assert np.all(np.diff(merged.arrival_s) >= 0)
    assert sorted(merged.arrival_s.tolist()) == sorted([60.0 * m for m in range(10)] +
                                                       [0.0, 30.0, 90.0])
    assert merged.df["id"].is_unique
    seq = tmp_path / "seq.csv"
    assert main(["trace", "concat", str(azure), str(mooncake), "-o", str(seq),
                 "--mode", "sequential", "--gap", "5"]) == 0
    s = load_trace(seq)
    assert s.arrival_s.tolist() == [60.0 * m for m in range(10)] + [545.0, 575.0, 635.0]
    assert "wrote 13 requests from 2 traces" in capsys.readouterr().out


def test_concat_bad_input(azure, tmp_path, capsys):
    from seqsched.app.cli import main as seqsched_main

    assert seqsched_main(["trace", "concat", str(azure), "-o", str(tmp_path / "x.jsonl")]) == 2
    assert seqsched_main(["trace", "concat", str(azure), str(azure), "--mode", "sequential",
                          "--gap", "-1", "-o", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "two or more" in err[0] and "--gap" in err[1]
    assert not (tmp_path / "x.jsonl").exists()
