"""LLMServingSim's workload JSONL as a trace for simulate / compare / sweep: arrival_time_ns
to seconds, input_toks / output_toks to lengths, the prompt's token ids kept as prefix-cache
keys; and `--policies` taking a comma-separated list."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from seqsched.app.cli import main
from seqsched.app.run import simulate
from seqsched.traces.io import load_trace
from seqsched.traces.request import TraceError

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from coretoy import rec, small_kv_config, toy_executor  # noqa: E402

A = list(range(1, 17))                           # 16 prompt tokens
B = list(range(1, 13)) + list(range(100, 108))   # A's first 12 tokens (3 blocks of 4), then 8


def workload(tmp_path, rows=None) -> Path:
    rows = rows or [
        {"input_toks": 16, "output_toks": 2, "arrival_time_ns": 0, "input_tok_ids": A,
         "output_tok_ids": [7, 8]},
        {"input_toks": 20, "output_toks": 2, "arrival_time_ns": 10_000_000_000,
         "input_tok_ids": B, "output_tok_ids": [9, 9]}]
    path = tmp_path / "workload.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_format_is_detected_and_read(tmp_path):
    t = load_trace(workload(tmp_path))
    assert t.arrival_s.tolist() == [0.0, 10.0]
    assert t.prompt_tokens.tolist() == [16, 20] and t.output_tokens.tolist() == [2, 2]
    assert [list(x) for x in t.df["input_tok_ids"]] == [A, B]
    assert t.ids.tolist() == ["0", "1"]


def test_its_token_ids_key_the_prefix_cache(tmp_path):
    """As tests/core/test_prefix_cache.py's hand case: b's first 3 blocks hit, so its prefill is
    1 + 0.5 + 0.125 x 8 = 2.5 s on the toy model instead of 1 + 0.5 + 0.125 x 20 = 4.0 s."""
    t = load_trace(workload(tmp_path))
    on = simulate(t, small_kv_config(64, policy="fcfs", block_size=4, prefix_caching=True),
                  executor=toy_executor())
    off = simulate(t, small_kv_config(64, policy="fcfs", block_size=4, prefix_caching=False),
                   executor=toy_executor())
    assert rec(on, "1")["cached_tokens"] == 12
    assert rec(on, "1")["first_token_s"] - 10 == 2.5
    assert rec(off, "1")["first_token_s"] - 10 == 4.0


def test_a_bad_arrival_is_one_line(tmp_path):
    path = workload(tmp_path, [{"input_toks": 5, "output_toks": 2, "arrival_time_ns": "soon"}])
    with pytest.raises(TraceError, match="arrival_time_ns is 'soon', not a number of "
                                         "nanoseconds"):
        load_trace(path)


def test_compare_takes_a_comma_separated_policy_list(tmp_path, capsys):
    path = workload(tmp_path)
    code = main(["compare", str(path), "--policies", "fcfs,sjf", "srpt", "--gpu", "H100-SXM",
                 "--model", "llama-3.1-8b", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    import pandas as pd
    assert list(pd.read_csv(tmp_path / "out" / "summary.csv")["label"]) == ["fcfs", "sjf", "srpt"]
    code = main(["compare", str(path), "--policies", "fcfs,fcfs", "--out", str(tmp_path / "o2")])
    assert code == 2 and "listed twice" in capsys.readouterr().err


def test_a_recorded_run_folder_or_bench_json_is_a_trace_for_compare(tmp_path, capsys):
    """Policy what-ifs on recorded traffic: a bench folder gives its workload.jsonl; a vLLM
    bench result JSON its requests (input_lens / output_lens; all at t = 0 for an infinite
    rate, as vLLM's client sends them)."""
    folder = tmp_path / "run"
    folder.mkdir()
    workload(folder)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"num_prompts": 3, "request_rate": "inf", "burstiness": 1.0,
                                 "input_lens": [40, 20, 30], "output_lens": [3, 5, 1],
                                 "ttfts": [0.5, 0.25, 0.5], "itls": [[0.1, 0.1], [0.1] * 4, []],
                                 "errors": ["", "", ""]}))
    import pandas as pd
    for source, n, prompts in ((folder, 2, [16, 20]), (bench, 3, [40, 20, 30])):
        out = tmp_path / f"out-{source.name}"
        code = main(["simulate", str(source), "--gpu", "H100-SXM", "--model", "llama-3.1-8b",
                     "--out", str(out), "--no-progress"])
        assert code == 0, capsys.readouterr().err
        rec_ = pd.read_csv(next(out.glob("records*.csv")))
        assert len(rec_) == n and sorted(rec_["prompt_tokens"]) == sorted(prompts)
    # a JSON that is not a bench result is still read as an ordinary trace file
    other = tmp_path / "plain.json"
    other.write_text(json.dumps([{"arrival_s": 0, "prompt_tokens": 5, "output_tokens": 2}]))
    assert main(["simulate", str(other), "--gpu", "H100-SXM", "--model", "llama-3.1-8b"]) == 0
