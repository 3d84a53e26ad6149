"""A recorded vLLM run replays with vLLM's own settings: the KV block count it allocated
(meta.json `kv_cache`), prefix caching on unless the metadata turns it off (vLLM V1's
default), and the workload's token ids as the prefix cache's keys."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from seqsched.app.cli import main
from seqsched.traces.recorded import read_recorded

SHARED = list(range(100, 132))           # two full 16-token blocks both prompts start with


def write_run(folder: Path, kv_cache: dict | None) -> Path:
    """Two 40-token prompts sharing their first 32 tokens; the second arrives after the first
    is done (its blocks are freed but still cached)."""
    folder.mkdir(parents=True)
    prompts = [SHARED + [1] * 8, SHARED + [2] * 8]
    rows = [(0.0, 3, 1000.0, 1000.5, 1001.0), (5.0, 3, 1005.0, 1005.4, 1005.8)]
    with (folder / "workload.jsonl").open("w") as f:
        for ids, (a, o, *_) in zip(prompts, rows):
            f.write(json.dumps({"input_toks": len(ids), "output_toks": o,
                                "arrival_time_ns": int(a * 1e9), "input_tok_ids": ids}) + "\n")
    with (folder / "requests.jsonl").open("w") as f:
        for i, (ids, (a, o, q, ft, lt)) in enumerate(zip(prompts, rows)):
            f.write(json.dumps({"request_id": f"r{i}", "input_toks": len(ids), "output_toks": o,
                                "queued_ts": q, "first_token_ts": ft,
                                "last_token_ts": lt}) + "\n")
    meta = {"model": "meta-llama/Llama-3-8B", "vllm_version": "0.19.0",
            "engine_kwargs": {"model": "meta-llama/Llama-3-8B", "max_num_seqs": 4,
                              "max_num_batched_tokens": 64}}
    if kv_cache is not None:
        meta["kv_cache"] = kv_cache
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_reader_takes_the_block_count_prefix_caching_and_token_ids(tmp_path):
    run = read_recorded(write_run(tmp_path / "a", {"num_gpu_blocks": 50, "block_size": 16}))
    assert run.engine["kv_blocks"] == 50 and run.engine["block_size"] == 16
    assert run.engine["enable_prefix_caching"] is True          # vLLM V1's default
    assert run.trace.df["input_tok_ids"].iloc[1][:32] == SHARED
    off = read_recorded(write_run(tmp_path / "b", {"enable_prefix_caching": False}))
    assert off.engine["enable_prefix_caching"] is False and "kv_blocks" not in off.engine
    assert read_recorded(write_run(tmp_path / "c", None)).engine["enable_prefix_caching"]


def test_validate_replays_with_the_pinned_kv_and_the_cached_prefix(tmp_path, capsys):
    out = tmp_path / "out"
    src = write_run(tmp_path / "run", {"num_gpu_blocks": 50, "block_size": 16})
    assert main(["validate", "--measured", str(src), "--gpu", "A100-80GB",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    settings = json.loads((out / "settings.json").read_text())["simulated_with"]
    assert settings["kv_blocks"] == 50 and settings["kv_capacity_tokens"] == 50 * 16
    rec = pd.read_csv(out / "records_sim.csv")
    # the second prompt finds the first's two full shared blocks: 32 tokens not prefilled
    assert rec["cached_tokens"].tolist() == [0, 32]
    # --no-prefix-caching overrides the metadata's default
    out2 = tmp_path / "out2"
    assert main(["validate", "--measured", str(src), "--gpu", "A100-80GB", "--out", str(out2),
                 "--no-prefix-caching"]) == 0
    assert "cached_tokens" not in pd.read_csv(out2 / "records_sim.csv").columns
