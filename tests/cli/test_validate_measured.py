"""`seqsched validate --measured RUN` on tiny recorded runs written here: the readers, the
metric definitions by hand, the output folder, and bad input (one line, exit 2, no folder)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqsched.analysis.measured import error_table, run_metrics, sim_latencies, with_tpot
from seqsched.app.cli import main
from seqsched.traces.recorded import bench_arrivals, read_recorded

# three requests: (arrival s, prompt, output, queued, first token, last token) on an engine
# clock that starts at 1000 s
ROWS = [(0.0, 40, 3, 1000.0, 1000.5, 1001.5),     # TTFT 0.5, e2e 1.5, TPOT 0.5
        (1.0, 20, 5, 1001.0, 1001.25, 1002.25),   # TTFT 0.25, e2e 1.25, TPOT 0.25
        (2.0, 30, 1, 1002.0, 1002.5, 1002.5)]     # TTFT 0.5, e2e 0.5, no TPOT (one token)


def write_llmservingsim(folder: Path, rows=ROWS, *, drop=None, engine=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "workload.jsonl").open("w") as f:
        for a, p, o, *_ in rows:
            f.write(json.dumps({"input_toks": p, "output_toks": o,
                                "arrival_time_ns": int(a * 1e9)}) + "\n")
    with (folder / "requests.jsonl").open("w") as f:
        for i, (a, p, o, q, ft, lt) in enumerate(rows):
            r = {"request_id": f"bench-{i}", "input_toks": p, "output_toks": o, "queued_ts": q,
                 "scheduled_ts": q, "first_token_ts": ft, "last_token_ts": lt}
            if drop:
                r.pop(drop)
            f.write(json.dumps(r) + "\n")
    (folder / "meta.json").write_text(json.dumps({
        "model": "meta-llama/Llama-3-8B", "vllm_version": "0.19.0",
        "engine_kwargs": engine or {"model": "meta-llama/Llama-3-8B", "max_num_seqs": 2,
                                    "max_num_batched_tokens": 64, "tensor_parallel_size": 1}}))
    pd.DataFrame({"t": [1.0, 2.0, 3.0], "prompt_throughput": 0.0, "gen_throughput": 0.0,
                  "running": [1, 2, 1], "waiting": [0, 0, 0],
                  "kv_cache_pct": [0.0, 0.1, 0.0]}).to_csv(folder / "timeseries.csv",
                                                          index=False)
    return folder


def write_bench(path: Path, **over) -> Path:
    data = {"num_prompts": 3, "request_rate": "inf", "burstiness": 1.0,
            "model_id": "meta-llama/Llama-3-8B", "input_lens": [40, 20, 30],
            "output_lens": [3, 5, 1], "ttfts": [0.5, 0.25, 0.5],
            "itls": [[0.4, 0.6], [0.25, 0.25, 0.25, 0.25], []], "errors": ["", "", ""]}
    data.update(over)
    data = {k: v for k, v in data.items() if v is not None}
    path.write_text(json.dumps(data))
    return path


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["validate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- readers and metric definitions by hand -----------------------------------------------
def test_llmservingsim_reader_uses_the_layouts_definitions(tmp_path):
    run = read_recorded(write_llmservingsim(tmp_path / "run"))
    m = run.measured
    assert run.format == "llmservingsim" and len(run.trace) == 3
    assert m["arrival_s"].tolist() == [0.0, 1.0, 2.0]
    assert m["ttft_s"].tolist() == [0.5, 0.25, 0.5]          # first_token - queued
    assert m["e2e_s"].tolist() == [1.5, 1.25, 0.5]           # last_token - queued
    assert run.engine["max_num_seqs"] == 2 and run.engine["vllm_version"] == "0.19.0"
    assert run.timeseries["running"].tolist() == [1, 2, 1]


def test_an_all_zero_kv_column_is_read_as_not_recorded(tmp_path):
    folder = write_llmservingsim(tmp_path / "run")
    ts = pd.read_csv(folder / "timeseries.csv")
    assert read_recorded(folder).timeseries["kv_cache_pct"].tolist() == [0.0, 0.1, 0.0]
    ts.assign(kv_cache_pct=0.0).to_csv(folder / "timeseries.csv", index=False)
    run = read_recorded(folder)
    assert run.timeseries["kv_cache_pct"].isna().all()
    assert run.timeseries["running"].tolist() == [1, 2, 1]      # the other columns stay
    assert any("KV-cache use is 0 at every second" in n for n in run.notes)
    ts.assign(kv_cache_pct=0.0, running=0).to_csv(folder / "timeseries.csv", index=False)
    assert read_recorded(folder).timeseries["kv_cache_pct"].tolist() == [0.0] * 3  # idle: 0


def test_metrics_by_hand(tmp_path):
    metrics = run_metrics(read_recorded(write_llmservingsim(tmp_path / "run")).measured)
    assert metrics["ttft_mean_ms"] == pytest.approx(1000 * 1.25 / 3)
    assert metrics["ttft_p50_ms"] == pytest.approx(500)
    # TPOT over requests with > 1 token: (1.5 - 0.5) / 2 = 0.5 and (1.25 - 0.25) / 4 = 0.25
    assert metrics["tpot_mean_ms"] == pytest.approx(375)
    # ITL: 2 gaps of 0.5 and 4 of 0.25 (no per-token times: each request's TPOT per gap)
    assert metrics["itl_mean_ms"] == pytest.approx(1000 * (2 * 0.5 + 4 * 0.25) / 6)
    assert metrics["e2e_mean_ms"] == pytest.approx(1000 * 3.25 / 3)
    # 3 requests from t=0 to the last finish at 2 + 0.5 = 2.5 s
    assert metrics["throughput_rps"] == pytest.approx(3 / 2.5)
    assert metrics["output_tokens_per_s"] == pytest.approx(9 / 2.5)


def test_error_table_is_simulated_minus_measured_over_measured(tmp_path):
    measured = read_recorded(write_llmservingsim(tmp_path / "run")).measured
    sim = measured.assign(ttft_s=measured["ttft_s"] * 2, e2e_s=measured["e2e_s"] + measured["ttft_s"])
    table = error_table(with_tpot(sim), measured).set_index("metric")
    assert list(table.columns) == ["simulated", "measured", "error_pct"]
    assert table.loc["ttft_mean_ms", "error_pct"] == pytest.approx(100.0)
    # the decode span e2e - TTFT is unchanged, so TPOT is too
    assert table.loc["tpot_mean_ms", "error_pct"] == pytest.approx(0.0)


def test_sim_latencies_from_records():
    records = pd.DataFrame({"id": ["a"], "arrival_s": [1.0], "prompt_tokens": [4],
                            "generated_tokens": [3], "first_token_s": [1.5], "finish_s": [2.5]})
    lat = sim_latencies(records)
    assert lat[["ttft_s", "e2e_s", "tpot_s"]].iloc[0].tolist() == [0.5, 1.5, 0.5]


def test_vllm_bench_reader_rebuilds_ends_and_arrivals(tmp_path):
    run = read_recorded(write_bench(tmp_path / "r.json"))
    m = run.measured
    assert run.format == "vllm-bench" and m["arrival_s"].tolist() == [0.0, 0.0, 0.0]  # rate inf
    assert m["e2e_s"].tolist() == pytest.approx([1.5, 1.25, 0.5])      # TTFT + sum(ITL)
    itl = run_metrics(m)
    assert itl["itl_mean_ms"] == pytest.approx(1000 * 2.0 / 6)          # recorded gaps pooled
    assert itl["itl_p50_ms"] == pytest.approx(250)


def test_bench_arrivals_as_vllm_draws_them():
    # burstiness inf: constant gaps 1/rate
    assert bench_arrivals(3, 2.0, math.inf, 0).tolist() == [0.5, 1.0, 1.5]
    # gamma gaps, rescaled so that the last request goes out at N / rate
    t = bench_arrivals(50, 5.0, 0.5, seed=7)
    assert t[-1] == pytest.approx(10.0) and np.all(np.diff(t) >= 0)
    gaps = np.random.RandomState(7).gamma(0.5, 1 / (5.0 * 0.5), 50)
    assert t == pytest.approx(np.cumsum(gaps) * 10.0 / gaps.sum())


def test_bench_start_times_win_over_rebuilt_arrivals(tmp_path):
    run = read_recorded(write_bench(tmp_path / "r.json", start_times=[10.0, 10.5, 12.0],
                                    latencies=[1.5, 1.25, 0.5], request_rate=2.0))
    assert run.measured["arrival_s"].tolist() == [0.0, 0.5, 2.0]


# -- the command --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["llmservingsim", "vllm-bench"])
def test_validate_measured_writes_the_comparison(tmp_path, capsys, fmt):
    src = (write_llmservingsim(tmp_path / "run") if fmt == "llmservingsim"
           else write_bench(tmp_path / "r.json"))
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "--measured", src, "--gpu", "A100-80GB", "--out", out)
    assert code == 0
    assert "ttft_mean_ms" in stdout and "error" in stdout
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors.columns) == ["metric", "simulated", "measured", "error_pct"]
    for name in ("ttft", "tpot", "itl", "e2e"):
        for stat in ("mean", "p50", "p90", "p99"):
            assert f"{name}_{stat}_ms" in set(errors["metric"])
    assert {"throughput_rps", "output_tokens_per_s"} <= set(errors["metric"])
    row = errors.set_index("metric").loc["ttft_mean_ms"]
    assert row["measured"] == pytest.approx(1000 * 1.25 / 3, rel=1e-5)
    # the simulated column is the records' own TTFT mean; the error is its relative gap
    rec = pd.read_csv(out / "records_sim.csv")
    # the replay serves the recorded workload: each request once, its own lengths and arrival
    # (the bench file has rate inf: all at 0), every output token generated
    assert rec["prompt_tokens"].tolist() == [40, 20, 30]
    assert rec["output_tokens"].tolist() == rec["generated_tokens"].tolist() == [3, 5, 1]
    arrivals = [0.0, 1.0, 2.0] if fmt == "llmservingsim" else [0.0] * 3
    assert rec["arrival_s"].tolist() == arrivals
    sim_ttft = 1000 * (rec["first_token_s"] - rec["arrival_s"]).mean()
    assert row["simulated"] == pytest.approx(sim_ttft, rel=1e-5)
    assert row["error_pct"] == pytest.approx(100 * (sim_ttft / row["measured"] - 1), rel=1e-4)
    assert (out / "report.md").is_file() and (out / "scatter.png").is_file()
    assert (out / "cdf.png").is_file()
    assert (out / "timeseries.png").is_file() == (fmt == "llmservingsim")
    settings = json.loads((out / "settings.json").read_text())["simulated_with"]
    assert settings["model"] == "llama-3-8b"        # meta-llama/Llama-3-8B, built in
    if fmt == "llmservingsim":                      # the run's metadata
        assert settings["max_num_seqs"] == 2 and settings["max_batched_tokens"] == 64


def test_flags_override_the_runs_metadata(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, _ = run_cli(capsys, "--measured", write_llmservingsim(tmp_path / "run"),
                         "--gpu", "A100-80GB", "--out", out, "--max-num-seqs", "7",
                         "--kv-blocks", "100", "--block-size", "32")
    assert code == 0
    s = json.loads((out / "settings.json").read_text())["simulated_with"]
    assert s["max_num_seqs"] == 7 and s["max_batched_tokens"] == 64
    assert s["kv_capacity_tokens"] == 3200


# -- bad input: one line, exit 2, no output folder ----------------------------------------
def _bad(tmp_path, capsys, src, *extra) -> str:
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--measured", src, "--gpu", "A100-80GB", "--out", out, *extra)
    assert code == 2
    assert err.startswith("seqsched: error: ") and err.count("\n") == 1, err
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    return err


def test_missing_column_is_one_line(tmp_path, capsys):
    err = _bad(tmp_path, capsys, write_llmservingsim(tmp_path / "run", drop="first_token_ts"))
    assert "first_token_ts" in err


def test_request_count_mismatch(tmp_path, capsys):
    folder = write_llmservingsim(tmp_path / "run")
    lines = (folder / "requests.jsonl").read_text().splitlines()
    (folder / "requests.jsonl").write_text("\n".join(lines[:2]) + "\n")
    assert "2 requests but workload.jsonl has 3" in _bad(tmp_path, capsys, folder)


def test_lengths_that_do_not_match_the_workload(tmp_path, capsys):
    folder = write_llmservingsim(tmp_path / "run")
    work = (folder / "workload.jsonl").read_text().replace('"output_toks": 5', '"output_toks": 6')
    (folder / "workload.jsonl").write_text(work)
    assert "does not match its workload" in _bad(tmp_path, capsys, folder)


def test_unknown_format(tmp_path, capsys):
    path = tmp_path / "run.csv"
    path.write_text("a,b\n1,2\n")
    assert "unknown format" in _bad(tmp_path, capsys, path)


def test_bench_json_without_itls(tmp_path, capsys):
    assert "itls" in _bad(tmp_path, capsys, write_bench(tmp_path / "r.json", itls=None))


def test_bench_json_with_a_failed_request(tmp_path, capsys):
    err = _bad(tmp_path, capsys, write_bench(tmp_path / "r.json", errors=["", "timeout", ""]))
    assert "request 1 failed" in err


def test_bench_count_does_not_match_num_prompts(tmp_path, capsys):
    assert "num_prompts" in _bad(tmp_path, capsys, write_bench(tmp_path / "r.json",
                                                                num_prompts=4))


def test_no_gpu_in_metadata_needs_gpu_flag(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--measured", write_llmservingsim(tmp_path / "run"),
                           "--out", out)
    assert code == 2 and "--gpu" in err and not out.exists()


def _with_device(folder: Path, device: str) -> Path:
    meta = json.loads((folder / "meta.json").read_text())
    meta["hardware"] = {"device_name": device, "device_count": 1}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_gpu_read_from_the_recorded_device_name(tmp_path, capsys):
    src = _with_device(write_llmservingsim(tmp_path / "run"), "NVIDIA H100 80GB HBM3")
    code, stdout, err = run_cli(capsys, "--measured", src, "--out", tmp_path / "out")
    assert code == 0 and "replayed on H100-SXM" in stdout
    assert "'NVIDIA H100 80GB HBM3'" in err
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert settings["simulated_with"]["gpu"] == "H100-SXM"


def test_unknown_recorded_device_is_one_error_naming_it(tmp_path, capsys):
    src = _with_device(write_llmservingsim(tmp_path / "run"), "NVIDIA H100 NVL")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--measured", src, "--out", out)
    assert code == 2 and "'NVIDIA H100 NVL'" in err and "--gpu" in err and not out.exists()


def test_gpu_read_from_the_bench_folder_names(tmp_path, capsys):
    # LLMServingSim keeps runs at bench/examples/<GPU>/<model>/vllm
    src = write_llmservingsim(tmp_path / "examples" / "RTX4090" / "Llama-3-8B" / "vllm")
    code, stdout, err = run_cli(capsys, "--measured", src, "--out", tmp_path / "out")
    assert code == 0 and "replayed on RTX-4090" in stdout and "folder name" in err


def test_a_profile_of_another_gpu_is_warned_about_once(tmp_path, capsys, caplog):
    code, _, _ = run_cli(capsys, "--measured", write_llmservingsim(tmp_path / "run"), "--gpu",
                         "H100-SXM", "--profile", "rtx4090-llama-3.1-8b-tp1", "--out",
                         tmp_path / "out", "--no-progress")
    lines = [r.getMessage() for r in caplog.records if "was measured on" in r.getMessage()]
    assert code == 0 and len(lines) == 1
    assert "measured on GPU RTX-4090" in lines[0] and "this run is GPU H100-SXM" in lines[0]


def test_a_run_without_a_vllm_version_says_so_and_takes_one(tmp_path, capsys):
    src = write_bench(tmp_path / "r.json")
    code, _, err = run_cli(capsys, "--measured", src, "--gpu", "A100-80GB", "--out",
                           tmp_path / "a")
    assert code == 0 and "names no vLLM version" in err
    plain = json.loads((tmp_path / "a" / "settings.json").read_text())["simulated_with"]
    assert not plain.get("async_scheduling") and not plain.get("reserve_full_isl")
    code, _, err = run_cli(capsys, "--measured", src, "--gpu", "A100-80GB", "--vllm-version",
                           "0.19", "--out", tmp_path / "b")
    assert code == 0 and "names no vLLM version" not in err
    new = json.loads((tmp_path / "b" / "settings.json").read_text())["simulated_with"]
    assert new["async_scheduling"] is True and new["reserve_full_isl"] is True
    code, _, _ = run_cli(capsys, "--measured", src, "--gpu", "A100-80GB", "--vllm-version",
                         "0.18", "--out", tmp_path / "c")      # before 0.19: seqsched's own
    old = json.loads((tmp_path / "c" / "settings.json").read_text())["simulated_with"]
    assert not old.get("async_scheduling")
