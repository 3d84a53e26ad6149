"""Communication the LLMServingSim bundles do not measure: the TP all-reduce from an
aiconfigurator custom_allreduce table (a tiny parquet written here), the expert-parallel
dispatch/combine of an MoE layer, and a recorded run whose workload lives outside its folder."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from seqsched.app.profile_cli import run_import
from seqsched.backends.import_llmservingsim import import_llmservingsim
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.moe_profile import expert_parallel, moe_from_dict
from seqsched.common.errors import UserError
from seqsched.traces.recorded import read_recorded

from test_llmservingsim_import import write_bundle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from test_validate_measured import write_llmservingsim  # noqa: E402


def write_allreduce(systems: Path, version: str = "0.19.0") -> Path:
    """2 GPUs: 10 us + 1 us per 1,000 elements (graph); eager rows must be ignored."""
    folder = systems / "comm" / "vllm" / version
    folder.mkdir(parents=True)
    sizes = [1000, 10000, 100000]
    rows = [{"num_gpus": 2, "message_size": n, "latency": (10 + n / 1000) / 1e3,
             "backend": "vllm_graph", "device": "Test GPU"} for n in sizes]
    rows += [{"num_gpus": 2, "message_size": n, "latency": 1.0, "backend": "vllm_eager",
              "device": "Test GPU"} for n in sizes]
    pd.DataFrame(rows).to_parquet(folder / "custom_allreduce_perf.parquet")
    return systems


def test_measured_allreduce_replaces_the_ring_model(tmp_path):
    b = write_bundle(tmp_path / "b")
    shutil.copytree(b / "tp1", b / "tp2")
    systems = write_allreduce(tmp_path / "aic")
    prof = run_import("llmservingsim", str(b), "tiny", 2, "RTX-PRO-6000",
                      allreduce_from=str(systems))
    ar = prof["allreduce"]
    assert ar["bytes"] == [2000, 20000, 200000]              # elements x 2 bytes (bf16)
    assert ar["us"] == pytest.approx([11, 20, 110])
    assert "measured on Test GPU" in ar["source"]
    ring = run_import("llmservingsim", str(b), "tiny", 2, "RTX-PRO-6000")
    assert "ring model" in ring["allreduce"]["source"]
    # one decode iteration of 8 rows (tiny: d_model 64, 2 layers): 8 x 64 x 2 = 1,024 bytes,
    # clamped to the first measured size (11 us), 2 all-reduces x 2 layers
    m = kernel_profile_from_dict(json.loads(json.dumps(prof)))
    m.allreduce = None
    base = m.decode_times(8, 64, 1)[0]
    m2 = kernel_profile_from_dict(json.loads(json.dumps(prof)))
    assert m2.decode_times(8, 64, 1)[0] - base == pytest.approx(4 * 11e-6)


def test_allreduce_of_another_vllm_version_or_format_is_one_error(tmp_path):
    b = write_bundle(tmp_path / "b")
    shutil.copytree(b / "tp1", b / "tp2")
    systems = write_allreduce(tmp_path / "aic", version="0.24.0")
    with pytest.raises(UserError, match="measured vLLM versions: 0.24.0"):
        run_import("llmservingsim", str(b), "tiny", 2, "RTX-PRO-6000",
                   allreduce_from=str(systems))
    with pytest.raises(UserError, match="--allreduce-from is for the llmservingsim"):
        run_import("vidur", str(b), "tiny", 2, "RTX-PRO-6000", allreduce_from=str(systems))


def test_expert_parallel_dispatch_and_combine_by_hand():
    table = moe_from_dict({"count": 2, "n_experts": 4, "top_k": 2,
                           "rows": [{"experts": 1, "tokens": [1, 100], "us": [5, 5]},
                                    {"experts": 2, "tokens": [1, 100], "us": [10, 10]}]})
    ep = expert_parallel(table, ep=2, gather=2, link_gbs=1.0, latency_us=3.0, d_model=100)
    assert (ep.dispatch_bytes, ep.combine_bytes) == (208.0, 200.0)
    # 10 tokens per rank, 20 gathered: (2 - 1)/2 x 20 x 408 bytes at 1 GB/s = 4.08 us + 2 x 3
    assert ep.comm_us(10.0) == pytest.approx(6 + 4.08)
    # experts per rank 2 (1 - 0.5^20) ~ 2: the 10 us row, plus the communication, 2 layers
    assert ep.seconds(10.0) == pytest.approx(2 * (10 * (1 - 0.5 ** 20) + 5 * 0.5 ** 20
                                                  + 10.08) * 1e-6)
    assert table.comm_us(10.0) == 0.0                       # no EP, no communication


def test_a_recorded_run_reads_its_workload_from_another_path(tmp_path):
    run = write_llmservingsim(tmp_path / "run")
    (run / "workload.jsonl").rename(tmp_path / "sharegpt.jsonl")
    with pytest.raises(Exception, match="workload.jsonl is missing"):
        read_recorded(run, "llmservingsim")
    rec = read_recorded(run, "llmservingsim", workload=tmp_path / "sharegpt.jsonl")
    assert list(rec.trace.df["prompt_tokens"]) == [40, 20, 30]
    assert rec.measured["ttft_s"].tolist() == pytest.approx([0.5, 0.25, 0.5])


def run_cli(capsys, *args) -> tuple[int, str]:
    from seqsched.app.cli import main
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out + err


MOE_ENGINE = {"model": "Qwen/Qwen3-30B-A3B-Instruct-2507", "tensor_parallel_size": 1,
              "data_parallel_size": 2, "enable_expert_parallel": True, "max_num_seqs": 4,
              "max_num_batched_tokens": 256}


def test_validate_replays_data_and_expert_parallel_runs(tmp_path, capsys):
    run = write_llmservingsim(tmp_path / "run", engine=MOE_ENGINE)
    (run / "workload.jsonl").rename(tmp_path / "w.jsonl")
    rc, text = run_cli(capsys, "validate", "--measured", str(run), "--workload",
                       str(tmp_path / "w.jsonl"), "--gpu", "RTX-PRO-6000", "--out",
                       str(tmp_path / "out"))
    assert rc == 0, text
    assert "x 2 DP replicas, profile:rtxpro6000-qwen3-30b-a3b-tp1" in text
    s = json.loads((tmp_path / "out" / "settings.json").read_text())["simulated_with"]
    assert s["replicas"] == 2 and s["model"] == "qwen3-30b-a3b"


def test_a_run_with_no_builtin_profile_replays_on_the_roofline_and_says_so(tmp_path, capsys):
    run = write_llmservingsim(tmp_path / "run", engine={**MOE_ENGINE, "tensor_parallel_size": 2,
                                                        "data_parallel_size": 1})
    rc, text = run_cli(capsys, "validate", "--measured", str(run), "--gpu", "H100-PCIe",
                       "--out", str(tmp_path / "out"))
    assert rc == 0, text
    # no kernels of the PCIe card were measured: it borrows the SXM card's (same GH100 chip)
    assert ("replayed on H100-PCIe / qwen3-30b-a3b / TP2, roofline with kernel-measured "
            "efficiencies by shape") in text
    assert "measured on H100-SXM (same GH100 chip; none of H100-PCIe's own)) -- no built-in " \
        "kernel profile" in text
    run = write_llmservingsim(tmp_path / "run2", engine={**MOE_ENGINE, "tensor_parallel_size": 4,
                                                         "data_parallel_size": 1})
    rc, text = run_cli(capsys, "validate", "--measured", str(run), "--gpu", "RTX-PRO-6000",
                       "--out", str(tmp_path / "out2"))
    # the RTX PRO 6000 roofline runs at its kernel-measured efficiencies by shape (its GEMM
    # curve spans 56-82%; backends/roofline_shape.py) - before them, one scalar pair
    assert rc == 0 and "/ TP4, roofline with kernel-measured efficiencies by shape (GEMMs at " \
        "56%-82% of their roofline bound by token count" in text
    s = json.loads((tmp_path / "out" / "settings.json").read_text())["simulated_with"]
    assert s["cost_model"] == "roofline" and "replicas" not in s


def test_moe_profile_takes_measured_all_gather_and_reduce_scatter(tmp_path):
    b = write_bundle(tmp_path / "b")
    (b / "tp1" / "moe.csv").write_text(
        "tokens,activated_experts,time_us\n1,2,11\n100,2,110\n2,4,24\n100,4,220\n")
    systems = tmp_path / "aic"
    (systems / "comm" / "nccl" / "2.29.2").mkdir(parents=True)
    # all_gather 2 us + 1 us per 1,000 elements; reduce_scatter 3 us + 2 us per 1,000 (half)
    rows = [{"op_name": op, "nccl_dtype": "half", "num_gpus": 2, "message_size": n,
             "latency": (a + k * n / 1000) / 1e3}
            for op, a, k in (("all_gather", 2, 1), ("reduce_scatter", 3, 2))
            for n in (1000, 100000)]
    rows.append({"op_name": "all_gather", "nccl_dtype": "int8", "num_gpus": 2,
                 "message_size": 1000, "latency": 9.0})
    pd.DataFrame(rows).to_parquet(systems / "comm" / "nccl" / "2.29.2" / "nccl_perf.parquet")
    import dataclasses

    from seqsched.backends.specs import get_model
    moe_model = dataclasses.replace(get_model("tiny"), n_experts=4, experts_per_token=2)
    prof = import_llmservingsim(b, moe_model, 1, None, allreduce_from=str(systems))
    assert prof["moe"]["ep_comm"]["by_gpus"]["2"]["all_gather"]["bytes"] == [2000, 200000]
    m = kernel_profile_from_dict(json.loads(json.dumps(prof)))
    ep = expert_parallel(m.moe, 2, 2, 64.0, 10.0, moe_model.d_model)
    # 10 tokens per rank, 20 gathered: all-gather of 20 x (64 + 4) x 2 = 2,720 bytes =
    # 1,360 elements -> 2 + 1.36 us; reduce-scatter of 20 x 64 x 2 = 2,560 bytes -> 3 + 2.56
    assert ep.comm_us(10.0) == pytest.approx(3.36 + 5.56)
    assert expert_parallel(m.moe, 4, 4, 64.0, 10.0, 64).comm_us(10.0) > 20   # no 4-GPU table:
    # the ring model, 2 x 10 us latency + wire
