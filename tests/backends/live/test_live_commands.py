"""`calibrate` writes a valid profile; `validate` runs a trace live and simulated and writes
its table and scatter plot; bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from live_helpers import fraction_for_tokens, pressure_trace, small_trace  # noqa: E402

from seqsched.app import live_cli, validate_cli  # noqa: E402
from seqsched.backends.profile import load_profile  # noqa: E402
from seqsched.traces.io import save_trace  # noqa: E402


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "tiny.json"
    rc = live_cli.main(["calibrate", "--model", "tiny", "--grid", "quick", "--threads", "1",
                        "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_calibrate_writes_a_valid_profile(quick_profile, capsys):
    data = json.loads(quick_profile.read_text())
    assert data["format"] == "seqsched-profile" and data["version"] == 1
    assert data["device"]["type"] == "cpu" and data["dtype"] == "float32"
    assert data["model"]["name"] == "tiny" and data["model"]["n_layers"] == 2
    for key in ("torch", "transformers", "created", "attn_implementation"):
        assert data[key]
    kinds = {p["kind"] for p in data["prefill"]["points"]}
    assert kinds == {"static", "chunk", "mixed"}
    assert len(data["decode"]["points"]) == 6
    assert len(data["step"]["points"]) == 3 and len(data["step"]["coef"]) == 3
    assert all(p["seconds"] > 0 for p in data["prefill"]["points"] + data["decode"]["points"])
    for part in ("prefill", "decode"):
        assert 0 <= data[part]["fit"]["mean_rel_err"] < 1.0
    cm = load_profile(quick_profile)
    assert cm.decode_times(4, 400, 3).min() > 0


def test_validate_produces_table_and_plot(quick_profile, tmp_path, capsys):
    trace = small_trace(16, seed=7, prompt=(4, 32), output=(1, 24))
    path = save_trace(trace, tmp_path / "t.jsonl")
    out = tmp_path / "val"
    rc = live_cli.main(["validate", "--trace", str(path), "--policy", "vanilla",
                        "--policy-param", "batch_size=8", "--profile", str(quick_profile),
                        "--model", "tiny", "--threads", "1", "--out", str(out),
                        "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "throughput (req/s)" in text and "rel. error" in text
    import pandas as pd
    table = pd.read_csv(out / "validation.csv")
    assert set(table["metric"]) >= {"throughput_rps", "e2e_s_p50", "e2e_s_p99", "ttft_s_mean",
                                    "tpot_s_mean", "batches"}
    row = table.set_index("metric").loc["batches"]
    assert row["simulated"] == row["measured"] == 2 and row["rel_error"] == 0
    assert (out / "latency_scatter.png").stat().st_size > 1000
    live = pd.read_csv(out / "records_live.csv")
    assert (live["generated_tokens"].to_numpy() == trace.output_tokens).all()
    meta = json.loads((out / "validation.json").read_text())
    assert meta["summary_live"]["requests"] == 16


def test_validate_continuous_policy_runs(quick_profile, tmp_path):
    trace = small_trace(16, seed=8, prompt=(4, 32), output=(1, 24), rate=100.0)
    res = validate_cli.run_validate(trace, policy="fcfs", profile=str(quick_profile),
                                model="tiny", dtype="float32", out=None)
    t = res["table"].set_index("metric")
    assert t.loc["throughput_rps", "measured"] > 0 and t.loc["throughput_rps", "simulated"] > 0
    assert res["live"].summary["requests"] == 16
    assert res["profile_mismatch"] == []                  # calibrated on this very setup


def test_profile_mismatch_is_reported(tiny64):
    from seqsched.backends.live.executor import LiveExecutor
    from seqsched.backends.profile import read_profile

    meta = read_profile("tiny-cpu-float32")               # float32, thread clock, tiny shape
    found = validate_cli.profile_mismatches(meta, LiveExecutor(tiny64))
    assert "dtype float32 vs live float64" in found and "clock thread vs live wall" in found
    assert not any(m.startswith("model shape") for m in found)
    other = dict(meta, model=dict(meta["model"], n_layers=32, name="llama-7b"))
    assert "model shape llama-7b vs live tiny" in validate_cli.profile_mismatches(
        other, LiveExecutor(tiny64))


def test_bad_inputs_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    trace = save_trace(small_trace(4), tmp_path / "t.jsonl")
    rc = live_cli.main(["validate", "--trace", str(trace), "--profile", str(bad)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqsched: error:") and "malformed profile" in err and "\n" not in err
    rc = live_cli.main(["calibrate", "--model", "nope", "--out", str(tmp_path / "p.json")])
    assert rc == 2 and "unknown model" in capsys.readouterr().err
    rc = live_cli.main(["calibrate", "--model", "tiny", "--grid", "huge",
                        "--out", str(tmp_path / "p.json")])
    assert rc == 2 and "unknown calibration grid" in capsys.readouterr().err


def test_register_adds_both_commands():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    live_cli.register(sub)
    args = parser.parse_args(["calibrate", "--model", "llama-7b", "--device", "cuda"])
    assert args.func is live_cli.cmd_calibrate and args.out == "profile.json"
    args = parser.parse_args(["validate", "--trace", "t", "--profile", "p"])
    assert args.func is live_cli.cmd_validate and args.policy == "vanilla"


def test_validate_with_preemption_needs_no_restart_fallback(quick_profile, tmp_path):
    """Under KV pressure the live run resumes preempted requests as the simulation does: no
    restart warning, and the same preemptions and batches on both sides."""
    import warnings

    trace = pressure_trace()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = validate_cli.run_validate(trace, policy="fcfs", profile=str(quick_profile),
                                    model="tiny", dtype="float32",
                                    memory_fraction=fraction_for_tokens(400), out=tmp_path)
    t = res["table"].set_index("metric")
    assert t.loc["preemptions", "simulated"] == t.loc["preemptions", "measured"] > 0
    assert t.loc["batches", "simulated"] == t.loc["batches", "measured"]
    assert t.loc["preemptions", "rel_error"] == t.loc["batches", "rel_error"] == 0
    live = res["live"].records.set_index("id")
    assert (live.loc[trace.ids, "generated_tokens"].to_numpy() == trace.output_tokens).all()
    assert (live["wasted_tokens"] == 0).all()
    meta = json.loads((tmp_path / "validation.json").read_text())
    assert meta["memory_fraction"] == pytest.approx(fraction_for_tokens(400))


def test_validate_cli_memory_fraction(quick_profile, tmp_path, capsys):
    path = save_trace(pressure_trace(), tmp_path / "t.jsonl")
    rc = live_cli.main(["validate", "--trace", str(path), "--policy", "fcfs",
                        "--profile", str(quick_profile), "--model", "tiny", "--threads", "1",
                        "--memory-fraction", str(fraction_for_tokens(400)),
                        "--out", str(tmp_path / "val"), "--no-progress"])
    assert rc == 0
    assert "| preemptions" in capsys.readouterr().out
    rc = live_cli.main(["validate", "--trace", str(path), "--profile", str(quick_profile),
                        "--memory-fraction", "1.5", "--out", str(tmp_path / "bad")])
    assert rc == 2
    assert "memory-fraction" in capsys.readouterr().err


def test_validate_cli_synthetic_trace(quick_profile, tmp_path, capsys):
    """`--trace synth:NAME` generates --requests requests seeded by --seed, as simulate does."""
    from seqsched.traces.synthetic import generate

    out = tmp_path / "v"
    rc = live_cli.main(["validate", "--trace", "synth:alpaca-vicuna", "--requests", "6",
                        "--seed", "3", "--policy", "vanilla", "--model", "tiny",
                        "--threads", "1", "--profile", str(quick_profile),
                        "--max-new-tokens", "16", "--out", str(out), "--no-progress"])
    assert rc == 0
    records = (out / "records_live.csv").read_text().splitlines()
    expected = generate("alpaca-vicuna", 6, 3)
    assert len(records) == 1 + 6
    assert sorted(r.split(",")[0] for r in records[1:]) == sorted(expected.ids.tolist())
