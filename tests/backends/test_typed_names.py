"""GPU and model names as users type them: `vllm serve`'s Hugging Face id, another case, a
CUDA device name; a near miss gets a suggestion, and a name accepted before is kept as typed."""

from __future__ import annotations

import pytest

from seqsched.app.run import RunConfig, describe_backend
from seqsched.backends.spec_files import resolve_gpu, resolve_model, respelled
from seqsched.backends.specs import builtin_gpu_name, builtin_model_name
from seqsched.common.errors import UserError


@pytest.mark.parametrize("typed, builtin", [
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("meta-llama/Meta-Llama-3-70B-Instruct", "llama-3-70b"),
    ("Qwen/Qwen3-32B", "qwen3-32b"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "mistral-7b"),
    ("Llama-3-8B", "llama-3-8b"),
    ("LLAMA-2-70B", "llama-2-70b"),
])
def test_hf_ids_and_other_cases_name_the_builtin_model(typed, builtin):
    assert builtin_model_name(typed) == builtin
    spec = resolve_model(typed)
    assert spec.name == builtin and spec.n_layers == resolve_model(builtin).n_layers


@pytest.mark.parametrize("typed", ["TheBloke/Llama-2-7B-AWQ", "Qwen/Qwen2.5-14B-Instruct",
                                   "llama3-8b"])
def test_quantised_or_unknown_names_are_not_guessed(typed):
    assert builtin_model_name(typed) is None
    with pytest.raises(UserError):
        resolve_model(typed)


def test_an_unknown_hf_id_says_how_to_get_its_config():
    with pytest.raises(UserError, match=r"huggingface.co/Qwen/Qwen2.5-14B-Instruct/.*config.json"):
        resolve_model("Qwen/Qwen2.5-14B-Instruct")


@pytest.mark.parametrize("typed, builtin", [
    ("h100-sxm", "H100-SXM"), ("rtx 4090", "RTX-4090"), ("rtx_pro_6000", "RTX-PRO-6000"),
    ("NVIDIA H100 80GB HBM3", "H100-SXM"), ("l40s", "L40S"), ("H100", "H100-SXM"),
])
def test_gpu_spellings(typed, builtin):
    assert builtin_gpu_name(typed) == builtin
    assert resolve_gpu(typed).name == builtin


@pytest.mark.parametrize("typed, hint", [("H10-SXM", "did you mean H100-SXM?"),
                                         ("llama3-8b", "did you mean llama-3-8b?")])
def test_a_near_miss_is_suggested(typed, hint):
    with pytest.raises(UserError, match=hint):
        (resolve_gpu if "SXM" in typed else resolve_model)(typed)


def test_names_accepted_before_stay_as_typed():
    """Byte-identical outputs: an alias or built-in name is not rewritten in the config."""
    for gpu in ("H100", "A100-80GB", "RTX4090"):
        assert respelled(gpu, "gpu") is None
    for model in ("meta-llama/Llama-3.1-8B", "llama-7b", "x/config.json"):
        assert respelled(model, "model") is None
    cfg = RunConfig(gpu="H100", model="meta-llama/Llama-3.1-8B")
    assert cfg.resolved() is cfg


def test_a_respelled_run_matches_the_builtin_kernel_profile():
    typed = RunConfig(gpu="rtx-pro-6000", model="meta-llama/Llama-3.1-8B-Instruct").resolved()
    assert (typed.gpu, typed.model) == ("RTX-PRO-6000", "llama-3.1-8b")
    assert describe_backend(typed) == describe_backend(RunConfig(gpu="RTX-PRO-6000",
                                                                 model="llama-3.1-8b"))
    assert "kernel profile rtxpro6000-llama-3.1-8b-tp1" in describe_backend(typed)


def test_a_profile_imported_from_a_folder_named_rtx4090_matches_an_rtx_4090_run():
    """`profile import llmservingsim .../RTX4090/...` records GPU "RTX4090": a run on RTX-4090
    was warned that the profile was measured on another GPU."""
    from seqsched.backends.profile_registry import check_match, load_cost_profile
    cost = load_cost_profile("rtx4090-llama-3.1-8b-tp1")
    cost.meta = {**cost.meta, "gpu": "RTX4090"}           # as the importer writes it
    assert check_match(cost, "RTX-4090", "llama-3.1-8b", 1) is None
    assert "GPU RTX-4090; this run is GPU H100-SXM" in check_match(cost, "H100-SXM",
                                                                   "llama-3.1-8b", 1)


def test_a_bundle_path_one_level_too_high_names_the_variant_folder(tmp_path):
    """README's PERF/<hw>/<model>/<variant>: stopping at <model> said only 'found: none'."""
    from seqsched.backends.import_llmservingsim import locate
    (tmp_path / "Llama-3.1-8B" / "bf16" / "tp1").mkdir(parents=True)
    (tmp_path / "Llama-3.1-8B" / "bf16" / "tp1" / "dense.csv").write_text("layer\n")
    with pytest.raises(UserError, match=r"one level down: .*Llama-3.1-8B/bf16$"):
        locate(tmp_path / "Llama-3.1-8B", 1)
    assert locate(tmp_path / "Llama-3.1-8B" / "bf16", 1)[0].name == "tp1"


def test_a_calibration_profile_of_another_model_or_device_is_warned_about():
    """`seqsched calibrate` profiles (a live fit) were used for any model without a word."""
    from seqsched.backends.profile_registry import check_match, load_cost_profile
    cost = load_cost_profile("tiny-cpu-float32")           # fitted on model tiny, on a CPU
    line = check_match(cost, "A100-80GB", "llama-7b", 1)
    assert line == ("profile tiny-cpu-float32 was fitted on a CPU, model tiny; this run is "
                    "GPU A100-80GB, model llama-7b (its fitted times are used as they are)")
    cost.meta = {**cost.meta, "device": {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"},
                 "model": {**cost.meta["model"], "name": "llama-7b"}}
    assert check_match(cost, "H100-SXM", "llama-7b", 1) is None
    assert check_match(cost, "A100-80GB", "llama-7b", 1).startswith(
        "profile tiny-cpu-float32 was fitted on GPU H100-SXM; this run is GPU A100-80GB")
