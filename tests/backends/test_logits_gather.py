"""vLLM's TP logits all-gather (backends/logits_gather.py): rows x padded vocab x dtype bytes
per step, priced from NCCL's measured all-gather, else the all-reduce at half the bytes, else
a ring; added to the roofline and the kernel-profile models at TP > 1 only. Hand-computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqsched.backends.kernel_profile import FORMAT
from seqsched.backends.logits_gather import (gather_bytes_per_row, gather_seconds,
                                             measured_allgather)
from seqsched.backends.profile_registry import load_cost_profile
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.specs import GPUSpec, ModelSpec, get_model

TOY = ModelSpec("toy", n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_ff=128,
                vocab_size=100, max_position=4096)
LINK = GPUSpec("toy-gpu", peak_tflops=100.0, bandwidth_gbs=1000.0, memory_gb=80.0,
               source="test", interconnect_gbs=1.0, allreduce_latency_us=10.0)


def test_bytes_per_row_pad_the_vocab_to_64_and_vanish_at_tp1():
    assert gather_bytes_per_row(TOY, 2) == 128 * 2           # 100 -> 128 entries, bf16
    assert gather_bytes_per_row(get_model("qwen3-32b"), 2) == 151936 * 2   # already a multiple
    assert gather_bytes_per_row(TOY, 1) == 0.0


def test_gather_seconds_hand_values():
    # ring: (tp - 1) / tp x 4 rows x 1000 B / 1 GB/s + 10 us = 2 us + 10 us
    assert gather_seconds(4, 1000.0, 2, link_gbs=1.0, latency_us=10.0) == pytest.approx(12e-6)
    # a measured all-gather of 4000 B, log-log between (1000 B, 10 us) and (8000 B, 80 us)
    table = ((1000.0, 8000.0), (10.0, 80.0))
    assert gather_seconds(2, 2000.0, 2, allgather=table) == pytest.approx(40e-6)
    # without it, one all-reduce of half the bytes (2000 B) from the all-reduce table
    assert gather_seconds(2, 2000.0, 2, allreduce=table) == pytest.approx(20e-6)
    assert gather_seconds(np.array([0.0, 2.0]), 2000.0, 2, allgather=table).tolist() == [
        0.0, pytest.approx(40e-6)]                    # no rows, no gather


def test_roofline_adds_the_gather_once_per_step_at_tp2_only():
    tp2 = RooflineCostModel(LINK, TOY, tp=2)
    bare = RooflineCostModel(LINK, TOY, tp=2)
    bare._gather_row = 0.0
    # 8 rows x 256 B = 2048 B gathered: 1024 B over 1 GB/s + 10 us per step
    want = 1024 / 1e9 + 10e-6
    got = tp2.decode_times(8, 8 * 50, 3) - bare.decode_times(8, 8 * 50, 3)
    assert got == pytest.approx([want] * 3, rel=1e-9)
    assert tp2.prefill_time([30], [0], 7, 7 * 40) - bare.prefill_time([30], [0], 7, 7 * 40) \
        == pytest.approx(8 * 256 / 2 / 1e9 + 10e-6, rel=1e-9)
    one = RooflineCostModel(LINK, TOY, tp=1)
    assert one._gather_row == 0.0


def test_roofline_prefers_the_measured_all_gather():
    table = ((1024.0, 4096.0), (5.0, 20.0))           # 5 us per KiB, log-log linear
    tp2 = RooflineCostModel(LINK, TOY, tp=2, allgather_us=table)
    bare = RooflineCostModel(LINK, TOY, tp=2, allgather_us=table)
    bare._gather_row = 0.0
    # 8 rows x 256 B = 2048 B -> 10 us
    assert (tp2.decode_times(8, 400, 1) - bare.decode_times(8, 400, 1))[0] == pytest.approx(
        10e-6, rel=1e-9)


def write(tmp_path: Path, gpu: str, tp: int) -> str:
    """A tiny kernel profile whose all-reduce costs 5 us + 10 us per 1000 bytes."""
    p = {"format": FORMAT, "version": 1, "name": "tiny", "gpu": gpu, "model": "toy", "tp": tp,
         "dtype": "bf16", "dense": {"mlp": {"count": 4, "tokens": [1, 101], "us": [11, 111]}},
         "per_sequence": {"lm_head": {"count": 1, "sequences": [1, 11], "us": [10, 60]}},
         "attention": {"kind": "split", "count": 2,
                       "prefill": {"tokens": [1, 101], "cached": [0, 1000],
                                   "us": [[1, 11], [21, 31]]},
                       "decode": {"rows": [1, 5], "context": [0, 1000],
                                  "us": [[2, 12], [4, 44]]}},
         "allreduce": {"count": 4, "bytes_per_token": 10, "bytes": [0, 1000], "us": [5, 15]}}
    path = tmp_path / f"{gpu}-tp{tp}.json"
    path.write_text(json.dumps(p))
    return str(path)


def test_kernel_profile_gathers_with_its_all_reduce_table_at_half_the_bytes(tmp_path):
    path = write(tmp_path, "G", 2)                    # a GPU without NCCL measurements
    plain, gathered = load_cost_profile(path), load_cost_profile(path, TOY)
    # 3 rows x 256 B = 768 B gathered -> one all-reduce of 384 B: 5 + 10 x 384 / 1000 us
    want = (5 + 10 * 384 / 1000) * 1e-6
    assert (gathered.decode_times(3, 300, 2) - plain.decode_times(3, 300, 2)) == pytest.approx(
        [want, want], rel=1e-12)
    assert gathered.prefill_time([20], [0], 2, 100) - plain.prefill_time([20], [0], 2, 100) \
        == pytest.approx(want, rel=1e-12)             # 1 chunk + 2 decode rows = 3 rows
    tp1 = load_cost_profile(write(tmp_path, "G", 1), TOY)
    assert tp1.logits_gather is None                  # TP1: nothing gathered


def test_kernel_profile_on_a_measured_gpu_uses_nccl_all_gather(tmp_path):
    table = measured_allgather("RTX-PRO-6000", 2)
    if table is None:
        pytest.skip("backends/profiles/nccl_allgather.json has no RTX PRO 6000 TP2 entry")
    path = write(tmp_path, "RTX-PRO-6000", 2)
    plain, gathered = load_cost_profile(path), load_cost_profile(path, TOY)
    # 4 rows x 256 B = 1024 B: NCCL's all_gather of a 1 KiB buffer, as measured
    want = table[1][list(table[0]).index(1024.0)] * 1e-6
    assert (gathered.decode_times(4, 400, 1) - plain.decode_times(4, 400, 1))[0] \
        == pytest.approx(want, rel=1e-9)
