"""The simulated engine receipt (vLLM's `queued_ts`) a recorded run's TTFT is compared from:
by hand on a small step log, and through `validate --measured` on a run written here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from seqsched.analysis.measured import engine_receipt, sim_latencies
from seqsched.app.cli import main
from seqsched.traces.recorded import read_recorded

from tests.cli.test_validate_measured import write_llmservingsim, write_bench


def test_receipt_by_hand():
    steps = pd.DataFrame({"replica": [0, 0, 0, 1], "start_s": [0.0, 2.0, 9.0, 0.0],
                          "end_s": [2.0, 5.0, 10.0, 0.5],
                          "kind": ["generate", "generate", "generate", "predict-cpu"]})
    records = pd.DataFrame({
        "id": list("abcdef"), "replica": [0, 0, 0, 0, 1, 0],
        "arrival_s": [1.0, 2.5, 6.0, 0.0, 0.25, 9.0],
        "first_scheduled_s": [2.0, 9.0, 6.0, 0.0, 1.5, 10.0]})
    got = engine_receipt(records, steps)
    # a: mid-step -> that step's end; b: waits for a slot, read at 5.0 anyway; c: idle replica
    # -> scheduled at once; d: started the first step; e: replica 1 runs only a host
    # predictor -> when first scheduled; f: arrived as a step began -> that step's end
    assert got.tolist() == [2.0, 5.0, 6.0, 0.0, 1.5, 10.0]


def test_latencies_count_from_the_given_start():
    records = pd.DataFrame({"id": ["a"], "arrival_s": [1.0], "prompt_tokens": [4],
                            "generated_tokens": [3], "first_token_s": [3.0],
                            "finish_s": [4.0]})
    assert sim_latencies(records)[["ttft_s", "e2e_s"]].iloc[0].tolist() == [2.0, 3.0]
    late = sim_latencies(records, np.array([2.0]))
    assert late[["ttft_s", "e2e_s", "tpot_s"]].iloc[0].tolist() == [1.0, 2.0, 0.5]


def test_the_layouts_clock(tmp_path):
    assert read_recorded(write_llmservingsim(tmp_path / "run")).clock == "queued"
    assert read_recorded(write_bench(tmp_path / "r.json")).clock == "sent"


def test_validate_times_a_queued_run_from_the_simulated_receipt(tmp_path, capsys):
    # b arrives 1 ms after a, during a's 2,000-token prefill: its receipt is that step's end
    rows = [(0.0, 2000, 3, 1000.0, 1000.5, 1001.5), (0.001, 20, 5, 1000.5, 1000.7, 1001.5)]
    src = write_llmservingsim(tmp_path / "run", rows, engine={
        "model": "meta-llama/Llama-3-8B", "max_num_seqs": 2, "max_num_batched_tokens": 4096})
    out = tmp_path / "out"
    assert main(["validate", "--measured", str(src), "--gpu", "A100-80GB", "--out",
                 str(out), "--no-async-scheduling"]) == 0
    capsys.readouterr()
    rec = pd.read_csv(out / "records_sim.csv").set_index("id")
    pairs = pd.read_csv(out / "requests.csv").set_index("id")
    a_first = rec.loc["bench-0", "first_token_s"]
    assert rec.loc["bench-1", "first_scheduled_s"] == a_first   # read and admitted at a's end
    # b's simulated TTFT counts from a's step end, not from its arrival
    want = rec.loc["bench-1", "first_token_s"] - a_first
    assert abs(pairs.loc["bench-1", "ttft_s_simulated"] - want) < 1e-5
    assert abs(pairs.loc["bench-0", "ttft_s_simulated"] - rec.loc["bench-0", "first_token_s"]) \
        < 1e-5
    assert "engine's receipt" in (out / "report.md").read_text()
