"""What a recorded run's metadata names, read as a user means it: Hugging Face model ids with
release tags, GPUs without kernel data of their own, and settings the replay cannot model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqsched.app.measured_cli import builtin_model
from seqsched.common.errors import UserError

from tests.cli.test_validate_measured import _with_device, run_cli, write_llmservingsim


@pytest.mark.parametrize("name, model", [
    ("meta-llama/Llama-3.1-8B", "llama-3.1-8b"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3-8b"),
    ("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-3.1-70b"),
    ("meta-llama/Llama-2-7b-chat-hf", "llama-2-7b"),
    ("codellama/CodeLlama-34b-Instruct-hf", "codellama-34b"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"),
    ("Qwen/Qwen3-30B-A3B-Instruct-2507", "qwen3-30b-a3b"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b"),
])
def test_hugging_face_ids_with_release_tags_find_the_builtin_shape(name, model):
    assert builtin_model(name) == model


@pytest.mark.parametrize("name", ["TheBloke/Llama-2-7B-AWQ", "neuralmagic/Llama-3.1-8B-FP8",
                                  "meta-llama/Llama-3.2-1B"])
def test_quantised_or_unknown_models_are_not_guessed(name):
    with pytest.raises(UserError, match="config.json"):
        builtin_model(name)


def _meta(folder: Path, **changes) -> Path:
    meta = json.loads((folder / "meta.json").read_text())
    for key, value in changes.items():
        meta[key] = value
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_pipeline_parallel_run_replays_with_a_note(tmp_path, capsys):
    src = _meta(write_llmservingsim(tmp_path / "run"),
                resolved_config={"parallel_config": {"pipeline_parallel_size": 2}})
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--measured", src, "--gpu", "A100-80GB", "--out", out)
    assert code == 0 and "pipeline_parallel_size 2" in err
    assert "pipeline_parallel_size 2" in (out / "report.md").read_text()


def test_quantised_kv_cache_is_replayed_with_a_note(tmp_path, capsys):
    folder = write_llmservingsim(tmp_path / "run")
    meta = json.loads((folder / "meta.json").read_text())
    meta["engine_kwargs"]["kv_cache_dtype"] = "fp8"
    (folder / "meta.json").write_text(json.dumps(meta))
    code, _, err = run_cli(capsys, "--measured", folder, "--gpu", "A100-80GB",
                           "--out", tmp_path / "out")
    assert code == 0 and "kv_cache_dtype fp8" in err and "--kv-blocks" in err


@pytest.mark.parametrize("device, gpu, donor", [("NVIDIA L40S", "L40S", "RTX-4090"),
                                                ("NVIDIA H100 PCIe", "H100-PCIe", "H100-SXM")])
def test_gpu_without_kernel_data_says_whose_it_borrows(tmp_path, capsys, device, gpu, donor):
    folder = _with_device(write_llmservingsim(tmp_path / "run"), device)
    code, stdout, _ = run_cli(capsys, "--measured", folder, "--profile", "roofline",
                              "--out", tmp_path / "out")
    assert code == 0 and f"replayed on {gpu}" in stdout and f"measured on {donor}" in stdout


def test_a_gpu_toml_keeps_its_datasheet_peaks_and_says_so(tmp_path, capsys):
    toml = tmp_path / "my_gpu.toml"
    toml.write_text('name = "my-gpu"\npeak_tflops = 200.0\nbandwidth_gbs = 1000.0\n'
                    'memory_gb = 48.0\n')
    code, stdout, _ = run_cli(capsys, "--measured", write_llmservingsim(tmp_path / "run"),
                              "--gpu", toml, "--profile", "roofline", "--out", tmp_path / "out")
    assert code == 0 and "100.0% of peak FLOP/s" in stdout
    assert "datasheet peaks: no kernel measurements of" in stdout
