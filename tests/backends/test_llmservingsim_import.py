"""The LLMServingSim perf-bundle importer on a tiny bundle written here, the `profile` CLI,
and (when ../shared/data is present) the real bundles and the built-in profiles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from seqsched.app.cli import main
from seqsched.backends.import_llmservingsim import import_llmservingsim
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.specs import get_gpu, get_model
from seqsched.common.errors import UserError

DATA = Path(os.environ.get("SEQSCHED_DATA", "/work/shared/data")) / "serving" / "profiles"

META = """vllm_version: 0.19.0
gpu: Test GPU
hardware: TESTGPU
model: meta-llama/Llama-3.1-8B
variant: bf16
tp_degrees: [1]
engine_effective: {max_num_batched_tokens: 256, max_num_seqs: 8}
skew_fit:
  enabled: true
  per_tp:
    1: {alpha_default: 0.05}
"""


def write_bundle(root: Path, dense_extra: str = "") -> Path:
    """Tokens 1 and 100; every dense op 1 us + 0.1 us/token; lm_head 50 + 10/seq."""
    tp = root / "tp1"
    tp.mkdir(parents=True)
    (root / "meta.yaml").write_text(META)
    ops = ["embedding", "layernorm", "qkv_proj", "rotary_emb", "o_proj", "gate_up_proj",
           "act_fn", "down_proj", "final_layernorm"]
    rows = [f"{op},{t},{1 + 0.1 * t}" for op in ops for t in (1, 100)]
    (tp / "dense.csv").write_text("layer,tokens,time_us\n" + "\n".join(rows) + dense_extra + "\n")
    (tp / "per_sequence.csv").write_text(
        "layer,sequences,time_us\nlm_head,1,60\nlm_head,8,130\nsampler,1,5\nsampler,8,5\n")
    att = ["prefill_chunk,kv_prefill,n_decode,kv_decode,time_us"]
    for nd in (1, 8):
        att += [f"0,0,{nd},{kd},{2 + nd * kd / 100}" for kd in (16, 1024)]
    for pc in (16, 128):
        att += [f"{pc},{kp},0,0,{pc / 8 + kp / 100}" for kp in (0, 512)]
        att += [f"{pc},0,{nd},{kd},{pc / 8 + 2 + nd * kd / 100}" for nd in (1, 8)
                for kd in (16, 1024)]
    (tp / "attention.csv").write_text("\n".join(att) + "\n")
    return root


def test_bundle_becomes_a_profile_with_the_layer_counts(tmp_path):
    model = get_model("llama-3.1-8b")                  # 32 layers
    prof = import_llmservingsim(write_bundle(tmp_path / "b"), model, 1)
    assert prof["dense"]["layernorm"]["count"] == 64 and prof["dense"]["qkv_proj"]["count"] == 32
    assert prof["dense"]["embedding"]["count"] == 1
    assert prof["provenance"]["engine_version"] == "0.19.0" and prof["dtype"] == "bf16"
    assert prof["attention"]["skew"]["alpha_default"] == 0.05       # pooled only: no table
    assert "pc_values" not in prof["attention"]["skew"]
    assert prof["profiled_limits"] == {"max_num_batched_tokens": 256, "max_num_seqs": 8}
    m = kernel_profile_from_dict(json.loads(json.dumps(prof)))
    # one decode iteration, 8 rows at context 1024: dense ops at 8 tokens (1.8 us each):
    # 7 per-layer op-uses + 1 extra layernorm = 8 x 32 layers + 2 once; lm_head 130, sampler 5;
    # attention at the history before the new token (1023)
    dense = (8 * 32 + 2) * 1.8
    attn = 32 * (2 + 8 * 1023 / 100)
    assert m.decode_times(8, 8 * 1024, 1)[0] == pytest.approx((dense + 135 + attn) * 1e-6)
    # calibration: linear data interpolates exactly
    assert prof["calibration"]["attention"]["n"] == 0 or \
        prof["calibration"]["attention"]["max_rel_err"] < 1e-3


def test_skew_bucket_table_is_imported_and_a_disabled_fit_is_not(tmp_path):
    b = write_bundle(tmp_path / "b")
    meta = META.replace("    1: {alpha_default: 0.05}",
                        "    1: {alpha_default: 0.05, bucket_table: tp1/skew_fit.csv}")
    meta += ("  bucket_axes:\n    n_bins: [0, 4, 1000]\n    n_labels: [n<=4, n>4]\n"
             "    skew_rate_bins: [-0.01, 1.01]\n    skew_rate_labels: [all]\n"
             "    kv_big_bins: [0, 1000000]\n    kv_big_labels: [any]\n"
             "    kp_bins: [-1, 0, 100000]\n    kp_labels: [kp=0, kp>0]\n")
    (b / "meta.yaml").write_text(meta)
    (b / "tp1" / "skew_fit.csv").write_text(
        "pc,n_label,skew_rate_label,kv_big_label,kp_label,alpha,n_samples\n"
        "0,n>4,all,any,kp=0,0.5,3\n16,n<=4,all,any,kp>0,0.2,3\n")
    skew = import_llmservingsim(b, get_model("llama-3.1-8b"), 1)["attention"]["skew"]
    assert skew["pc_values"] == [0, 16] and skew["axes"]["n"] == [4.0, 1000.0]
    assert skew["rows"] == {"pc": [0, 1], "n": [1, 0], "skew_rate": [0, 0], "kv_big": [0, 0],
                            "kp": [0, 1], "alpha": [0.5, 0.2]}
    m = kernel_profile_from_dict(import_llmservingsim(b, get_model("llama-3.1-8b"), 1))
    # 8 rows, histories 7 x 16 and 1 x 1024: mean 142 -> alpha 0.5 (pc 0, n>4)
    even = m.decode_times(8, 8 * 143, 1)[0]
    skewed = m.decode_times(8, 8 * 143, 1, context_max=1025, context_min=17)[0]
    t_mean, t_max = 2 + 8 * 142 / 100, 2 + 8 * 1024 / 100
    assert (skewed - even) * 1e6 == pytest.approx(32 * 0.5 * (t_max - t_mean), rel=1e-6)
    (b / "tp1" / "skew_fit.csv").write_text(
        "pc,n_label,skew_rate_label,kv_big_label,kp_label,alpha\n0,n<=9,all,any,kp=0,0.5\n")
    with pytest.raises(UserError, match="bucket label"):
        import_llmservingsim(b, get_model("llama-3.1-8b"), 1)
    (b / "meta.yaml").write_text(meta.replace("enabled: true", "enabled: false"))
    prof = import_llmservingsim(b, get_model("llama-3.1-8b"), 1)
    assert "skew" not in prof["attention"]
    assert not kernel_profile_from_dict(prof).wants_decode_spread


def test_unknown_layers_are_noted_and_missing_columns_fail(tmp_path):
    prof = import_llmservingsim(write_bundle(tmp_path / "a", "\nfancy_op,1,3\nfancy_op,100,4"),
                                get_model("llama-3.1-8b"), 1)
    assert "fancy_op" not in prof["dense"]
    assert any("fancy_op" in n for n in prof["provenance"]["notes"])
    b = write_bundle(tmp_path / "b")
    (b / "tp1" / "attention.csv").write_text("prefill_chunk,time_us\n0,1\n")
    with pytest.raises(UserError, match="missing column"):
        import_llmservingsim(b, get_model("llama-3.1-8b"), 1)
    with pytest.raises(UserError, match="no tp2/"):
        import_llmservingsim(tmp_path / "a", get_model("llama-3.1-8b"), 2)


def test_tp2_needs_an_interconnect_and_models_allreduce(tmp_path):
    b = write_bundle(tmp_path / "b")
    (b / "tp1").rename(b / "tp2")
    with pytest.raises(UserError, match="interconnect"):
        import_llmservingsim(b, get_model("llama-3.1-8b"), 2)
    prof = import_llmservingsim(b, get_model("llama-3.1-8b"), 2, get_gpu("RTX-PRO-6000"))
    ar = prof["allreduce"]
    assert ar["count"] == 64 and ar["bytes_per_token"] == 4096 * 2
    # ring over 64 GB/s: 1 MiB -> 10 us + 2 * 1/2 * 2^20 / 64e9 s
    i = ar["bytes"].index(2.0 ** 20)
    assert ar["us"][i] == pytest.approx(10 + 2 ** 20 / 64e9 * 1e6, rel=1e-3)


def test_profile_import_and_show_cli(tmp_path, capsys):
    out = tmp_path / "p.json"
    code = main(["profile", "import", "llmservingsim", str(write_bundle(tmp_path / "b")),
                 "--model", "llama-3.1-8b", "--gpu", "RTX4090", "--out", str(out)])
    assert code == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "dense" in text and "attention" in text and "TESTGPU" not in text.split("\n")[0]
    assert json.loads(out.read_text())["gpu"] == "RTX-4090"
    assert main(["profile", "show", str(out)]) == 0
    assert main(["profile", "import", "nope", str(tmp_path), "--model", "tiny",
                 "--out", str(tmp_path / "q.json")]) == 2
    assert "unknown profile format" in capsys.readouterr().err
    assert main(["profile", "import", "llmservingsim", str(tmp_path / "b"),
                 "--model", "llama-3.1-8b", "--out", str(out)]) == 2     # exists


def test_simulate_with_an_imported_profile_warns_on_mismatch(tmp_path, capsys, caplog):
    prof = tmp_path / "p.json"
    main(["profile", "import", "llmservingsim", str(write_bundle(tmp_path / "b")),
          "--model", "llama-3.1-8b", "--gpu", "RTX-4090", "--out", str(prof)])
    capsys.readouterr()
    code = main(["simulate", "synth:alpaca-vicuna", "-n", "20", "--rate", "5", "--gpu",
                 "H100-SXM", "--model", "llama-3.1-8b", "--profile", str(prof)])
    assert code == 0
    lines = [r.getMessage() for r in caplog.records if "measured on" in r.getMessage()]
    assert len(lines) == 1
    assert "measured on GPU RTX-4090; this run is GPU H100-SXM" in lines[0]
    far = [r.getMessage() for r in caplog.records if "beyond the profiled grid" in r.getMessage()]
    assert far and len(far) == len({m.split(" is beyond")[0] for m in far})   # once per axis
    assert "built-in" not in capsys.readouterr().out


builtin = pytest.mark.skipif(not (DATA / "llmservingsim").is_dir(),
                             reason="../shared/data/serving/profiles absent")


@builtin
def test_builtin_profile_is_what_the_importer_derives():
    from seqsched.backends.profile import BUILTIN_DIR
    src = DATA / "llmservingsim/perf/RTXPRO6000/meta-llama/Llama-3.1-8B/bf16"
    prof = import_llmservingsim(src, get_model("llama-3.1-8b"), 1, get_gpu("RTX-PRO-6000"),
                                "rtxpro6000-llama-3.1-8b-tp1")
    shipped = json.loads((BUILTIN_DIR / "rtxpro6000-llama-3.1-8b-tp1.json").read_text())
    assert shipped["dense"] == prof["dense"] and shipped["attention"] == prof["attention"]
    m = kernel_profile_from_dict(shipped)
    # decode time grows with rows and context; a 2048-token prefill costs more than a decode
    t = m.decode_times(64, 64 * 1000, 2)
    assert 5e-3 < t[0] < t[1] < 0.1
    assert m.prefill_time(np.array([2048]), np.array([0])) > t[0]
