"""CUDA device names and folder names to built-in GPUs: one product per rule, no guesses."""

from __future__ import annotations

import pytest

from seqsched.backends.device_names import gpu_for_device, gpu_in_name
from seqsched.backends.specs import GPUS


@pytest.mark.parametrize("device, gpu", [
    ("NVIDIA GeForce RTX 4090", "RTX-4090"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX-PRO-6000"),
    ("NVIDIA H100 80GB HBM3", "H100-SXM"),
    ("NVIDIA H100 PCIe", "H100-PCIe"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
    ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("NVIDIA GeForce RTX 3090", "RTX-3090"),
    ("NVIDIA RTX A6000", "RTX-A6000"),
    # near neighbours that are other products: never mapped
    ("NVIDIA H100 NVL", None), ("NVIDIA A100 80GB PCIe", None), ("NVIDIA L40", None),
    ("NVIDIA GeForce RTX 3090 Ti", None), ("NVIDIA RTX 6000 Ada Generation", None),
    ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", None), ("", None),
])
def test_device_names(device, gpu):
    assert gpu_for_device(device) == gpu
    assert gpu is None or gpu in GPUS


@pytest.mark.parametrize("parts, gpu", [
    (("runs", "rtxpro6000-llama-3.1-8b-vllm-0.19"), "RTX-PRO-6000"),
    (("examples", "RTX4090", "Llama-3.1-8B", "vllm"), "RTX-4090"),
    (("my-RTX-PRO-6000-run",), "RTX-PRO-6000"),
    (("H100", "Llama-3.1-8B"), None),          # SXM or PCIe: not guessed
    (("rtx4090-vs-rtxpro6000",), None),        # two GPUs named
    (("qwen32b",), None),
    (("perf_models", "A6000", "Llama-3.1-8B"), "RTX-A6000"),   # LLMServingSim's folder name
    (("perf_models", "RTX3090", "Llama-3.1-8B"), "RTX-3090"),
])
def test_gpu_in_folder_names(parts, gpu):
    assert gpu_in_name(parts, GPUS) == gpu
