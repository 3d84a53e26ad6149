"""The LLMServingSim v0 importer (per-layer `layers.csv` + Vidur-style `attention.csv`) on a tiny
tree written here: exact iteration times, the decode table's total-keys axis, bad layouts; and,
when ../shared/data is present, the real H100 tables composed as LLMServingSim's v0 does."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from seqsched.app.cli import main
from seqsched.backends.import_llmservingsim_v0 import (PER_LAYER, PER_MODEL,
                                                       import_llmservingsim_v0)
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.specs import get_gpu, get_model
from seqsched.common.errors import UserError

DATA = Path(os.environ.get("SEQSCHED_DATA", "/work/shared/data")) / "serving" / "profiles"
V0 = DATA / "llmservingsim" / "v0" / "perf_models" / "H100" / "meta-llama"
HEAD = ("time_stats.attn_prefill.median,time_stats.attn_decode.median,n_embd,n_q_head,"
        "n_kv_head,num_tensor_parallel_workers,max_model_len,batch_size,prefill_chunk_size,"
        "kv_cache_size,is_prefill,attention_backend")


def write_tree(root: Path, tp: int = 1, attention: bool = True, model="Llama-3.1-8B") -> Path:
    """Tokens 1..8; every dense op 1 us + 0.1 us/token, lm_head 50 + 10/token, attn 3 + t/10;
    attention.csv: chunk q on K keys q/8 + (K - q)/100 us, decode 2 + keys/100 us."""
    folder = root / "perf_models" / "TESTGPU" / "meta-llama" / model
    tp_dir = folder / f"tp{tp}"
    tp_dir.mkdir(parents=True)
    rows = ["layer_name,input,kv_cache,tp_size,latency(ns)"]
    for t in (1, 2, 4, 8):
        rows += [f"{op},{t},0,{tp},{1000 + 100 * t}" for op in PER_LAYER + PER_MODEL]
        rows += [f"lm_head,{t},0,{tp},{50000 + 10000 * t}", f"attn,{t},0,{tp},{3000 + 100 * t}"]
    (tp_dir / "layers.csv").write_text("\n".join(rows) + "\n")
    if attention:
        att = [HEAD]
        for q in (32, 64):
            att += [f"{(q / 8 + (k - q) / 100) / 1e3},,4096,32,8,{tp},131072,1,{q},{k},True,"
                    "FLASH_ATTENTION" for k in (q, 2 * q)]
        for b in (1, 8):
            att += [f",{(2 + k / 100) / 1e3},4096,32,8,{tp},131072,{b},0,{k},False,"
                    "FLASH_ATTENTION" for k in (32, 1024)]
        (tp_dir / "attention.csv").write_text("\n".join(att) + "\n")
    return folder


def test_tree_gives_exact_iteration_times(tmp_path):
    prof = import_llmservingsim_v0(write_tree(tmp_path), get_model("llama-3.1-8b"), 1)
    assert prof["dense"]["q_proj"]["count"] == 32 and prof["dense"]["embedding"]["count"] == 1
    assert prof["dtype"] == "fp16" and prof["provenance"]["source"] == "llmservingsim-v0"
    assert prof["gpu"] == "TESTGPU" and "allreduce" not in prof
    m = kernel_profile_from_dict(json.loads(json.dumps(prof)))
    ops = len(PER_LAYER) * 32 + len(PER_MODEL)                      # 354 op runs
    # decode: 8 rows at mean context 512 -> the decode table at 8 x 512 = 4096 keys in all,
    # beyond its 1024: linear in keys, 2 + 4096/100 us per layer
    want = ops * (1 + 0.8) + (50 + 80) + 32 * (2 + 4096 / 100)
    assert m.decode_times(8, 8 * 512, 1)[0] * 1e6 == pytest.approx(want, rel=1e-9)
    # one row at context 100: keys 100 -> 2 + 1 us; dense at 1 token
    want1 = ops * 1.1 + 60 + 32 * 3.0
    assert m.decode_times(1, 100, 1)[0] * 1e6 == pytest.approx(want1, rel=1e-9)
    # prefill: a 64-token chunk on 64 cached tokens -> 8 + 64/100 us of attention per layer;
    # dense at 64 tokens extrapolates the linear rows exactly (1 + 6.4 us)
    want = ops * 7.4 + 60 + 32 * (8 + 0.64)
    assert m.prefill_time([64], [64]) * 1e6 == pytest.approx(want, rel=1e-9)


def test_without_attention_csv_prefill_from_attn_rows_and_decode_from_roofline(tmp_path):
    tree = write_tree(tmp_path, attention=False)
    with pytest.raises(UserError, match="no decode attention"):
        import_llmservingsim_v0(tree, get_model("llama-3.1-8b"), 1)
    prof = import_llmservingsim_v0(tree, get_model("llama-3.1-8b"), 1, get_gpu("H100-SXM"))
    assert any("roofline" in n for n in prof["provenance"]["notes"])
    m = kernel_profile_from_dict(prof)
    # a full 4-token prefill: attn rows at 4 tokens (3.4 us), share 1 with nothing cached
    attn = m.prefill_time([4], [0]) - m._linear(4.0, 1.0)[()]
    assert attn * 1e6 == pytest.approx(32 * 3.4, rel=1e-9)


def test_tp2_takes_a_ring_allreduce_from_the_gpu(tmp_path):
    tree = write_tree(tmp_path, tp=2)
    with pytest.raises(UserError, match="all-reduce"):
        import_llmservingsim_v0(tree, get_model("llama-3.1-8b"), 2)
    prof = import_llmservingsim_v0(tree, get_model("llama-3.1-8b"), 2, get_gpu("H100-SXM"))
    assert prof["allreduce"]["count"] == 64 and prof["tp"] == 2
    with pytest.raises(UserError, match="tp_size"):
        (tree / "tp1").mkdir()
        (tree / "tp1" / "layers.csv").write_text((tree / "tp2" / "layers.csv").read_text())
        import_llmservingsim_v0(tree, get_model("llama-3.1-8b"), 1)


@pytest.mark.parametrize("damage, match", [
    ("columns", "missing column"), ("bundle", "perf bundle"), ("model", "--model is"),
    ("layers", "no rows for"), ("tp", "no tp2/layers.csv")])
def test_bad_layouts_exit_2_with_one_line(tmp_path, capsys, damage, match):
    tree = write_tree(tmp_path, model="Llama-3.1-70B" if damage == "model" else "Llama-3.1-8B")
    csv = tree / "tp1" / "layers.csv"
    if damage == "columns":
        csv.write_text(csv.read_text().replace("latency(ns)", "latency_us"))
    elif damage == "bundle":
        (tree / "tp1" / "layers.csv").unlink()
        (tree / "tp1" / "dense.csv").write_text("layer,tokens,time_us\n")
    elif damage == "layers":
        csv.write_text("\n".join(r for r in csv.read_text().splitlines()
                                 if not r.startswith("q_proj")) + "\n")
    args = ["profile", "import", "llmservingsim-v0", str(tree), "--model", "llama-3.1-8b",
            "--out", str(tmp_path / "p.json")] + (["--tp", "2"] if damage == "tp" else [])
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("seqsched: error:")
    assert match in err[0] and not (tmp_path / "p.json").exists()


def test_cli_writes_the_profile_and_simulate_reads_it(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["profile", "import", "llmservingsim-v0", str(write_tree(tmp_path)),
                 "--model", "llama-3.1-8b", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "llmservingsim-v0" in text and "fp16" in text and out.is_file()


@pytest.mark.skipif(not (V0 / "Llama-3.1-8B" / "tp1").is_dir(),
                    reason="shared LLMServingSim v0 profiles not present")
def test_real_h100_tables_compose_as_llmservingsim_v0():
    prof = import_llmservingsim_v0(V0 / "Llama-3.1-8B", get_model("llama-3.1-8b"), 1)
    raw = pd.read_csv(V0 / "Llama-3.1-8B" / "tp1" / "layers.csv")
    at = raw[raw["input"] == 64].set_index("layer_name")["latency(ns)"] / 1e3
    dense = sum(at[op] for op in PER_LAYER) * 32 + sum(at[op] for op in PER_MODEL)
    m = kernel_profile_from_dict(prof)
    # 64 decode rows: every dense row read at 64 tokens, the LM head at 64 sequences
    linear = m._linear(64.0, 64.0)[()] * 1e6
    assert linear == pytest.approx(dense + at["lm_head"], rel=1e-3)
    assert any("aiconfigurator" in n for n in prof["provenance"]["notes"])
    big = import_llmservingsim_v0(V0 / "Llama-3.1-70B", get_model("llama-3.1-70b"), 4)
    assert big["allreduce"]["tp"] == 4 and big["calibration"]["attention_share_check"]["n"] > 100


def test_builtin_v0_profiles_load_by_name_and_are_never_the_default_match():
    from seqsched.backends.profile_registry import builtin_index, load_cost_profile, match_builtin
    names = [n for n, e in builtin_index().items() if e["source"] == "llmservingsim-v0"]
    assert "h100-llama-3.1-8b-tp1-v0" in names and "h100-llama-3.1-70b-tp4-v0" in names
    for name in names:
        e = builtin_index()[name]
        assert e["auto"] is False and match_builtin(e["gpu"], e["model"], e["tp"]) != name
        cost = load_cost_profile(name)
        assert cost.meta["provenance"]["source"] == "llmservingsim-v0"
        assert cost.decode_times(8, 8 * 512, 1)[0] > 0


def test_profile_list_marks_the_by_name_only_profiles(capsys):
    assert main(["profile", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    v0 = [ln for ln in lines if ln.startswith("h100-llama-3.1-8b-tp1-v0 ")]
    aic = [ln for ln in lines if ln.startswith("h100-llama-3.1-8b-tp1-aic ")]
    assert len(v0) == 1 and "never matched" in v0[0] and "never matched" not in aic[0]
