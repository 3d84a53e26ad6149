"""vLLM bench result JSONs as public runs write them, on fixtures written here: an old
`benchmark_serving.py` result (vLLM 0.5/0.6: no burstiness, seed, max_concurrency or
start_times), a multi-step stream (several tokens per chunk, fewer gaps than tokens) and an
`openai-chat` stream (a near-zero first gap: the role chunk, then the first token)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqsched.analysis.measured import run_metrics
from seqsched.app.cli import main
from seqsched.traces.recorded import read_recorded


def old_result(path: Path, **over) -> Path:
    """Keys of benchmark_serving.py's result as vLLM 0.5.x / 0.6.x wrote it with --save-result."""
    data = {"date": "20240908-071536", "backend": "vllm", "model_id": "meta-llama/Llama-3-8B",
            "tokenizer_id": "meta-llama/Llama-3-8B", "best_of": 1, "use_beam_search": False,
            "num_prompts": 3, "request_rate": "inf", "duration": 2.0, "completed": 3,
            "mean_ttft_ms": 1.0, "mean_latency_ms": 1.0,
            "input_lens": [40, 20, 30], "output_lens": [3, 5, 1],
            "ttfts": [0.5, 0.25, 0.5], "itls": [[0.4, 0.6], [0.25, 0.25, 0.25, 0.25], []],
            "generated_texts": ["a b c", "a b c d e", "a"], "errors": ["", "", ""]}
    data.update(over)
    path.write_text(json.dumps(data))
    return path


def test_an_old_benchmark_serving_result_reads_with_vllm_bench_defaults(tmp_path):
    run = read_recorded(old_result(tmp_path / "r.json"))
    m = run.measured
    assert run.format == "vllm-bench" and m["arrival_s"].tolist() == [0.0, 0.0, 0.0]
    assert m["e2e_s"].tolist() == pytest.approx([1.5, 1.25, 0.5])       # TTFT + sum(ITL)
    assert run.notes == ["arrivals rebuilt: rate inf, burstiness 1.0, seed 0"]
    assert run.engine == {"model_id": "meta-llama/Llama-3-8B",
                          "tokenizer_id": "meta-llama/Llama-3-8B"}


def test_a_multi_step_stream_is_read_and_noted(tmp_path):
    # 10-token chunks: 12 tokens after the first arrive in 2 gaps (a, b), 1 token in 1 gap
    run = read_recorded(old_result(
        tmp_path / "r.json", num_prompts=2, input_lens=[40, 20], output_lens=[13, 2],
        ttfts=[0.5, 0.25], itls=[[0.4, 0.6], [0.2]], errors=["", ""]))
    note = run.notes[0]
    assert note.startswith("3 inter-token gaps recorded for 13 tokens after the first, "
                           "about 4.3 tokens per streamed chunk")
    assert "ITL times chunks" in note
    m = run.measured
    assert m["e2e_s"].tolist() == pytest.approx([1.5, 0.45])
    metrics = run_metrics(m)                  # TPOT stays per token; ITL pools the chunks
    assert metrics["tpot_mean_ms"] == pytest.approx(1000 * (1.0 / 12 + 0.2 / 1) / 2)
    assert metrics["itl_mean_ms"] == pytest.approx(1000 * 1.2 / 3)


def test_no_gaps_at_all_is_noted_without_a_chunk_size(tmp_path):
    run = read_recorded(old_result(tmp_path / "r.json", itls=[[], [], []]))
    assert run.notes[0].startswith("0 inter-token gaps recorded for 6 tokens after the first "
                                   "(e.g.")


def test_an_openai_chat_stream_with_a_gap_per_token_is_not_noted(tmp_path):
    # the role chunk comes first: as many gaps as tokens, the first one near zero
    run = read_recorded(old_result(
        tmp_path / "r.json", itls=[[1e-5, 0.4, 0.6], [1e-5, 0.25, 0.25, 0.25, 0.25], [1e-5]]))
    assert not any("inter-token gaps" in n for n in run.notes)
    assert run.measured["e2e_s"].tolist() == pytest.approx([1.50001, 1.25001, 0.50001])
    assert run_metrics(run.measured)["itl_mean_ms"] == pytest.approx(1000 * 2.00003 / 9)


def test_validate_says_the_chunk_note_in_its_outputs(tmp_path, capsys):
    path = old_result(tmp_path / "r.json", num_prompts=2, input_lens=[40, 20],
                      output_lens=[13, 2], ttfts=[0.5, 0.25], itls=[[0.4, 0.6], [0.2]],
                      errors=["", ""])
    out = tmp_path / "out"
    code = main(["validate", "--measured", str(path), "--gpu", "H100-SXM", "--model",
                 "llama-3-8b", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0
    assert "note: 3 inter-token gaps recorded for 13 tokens" in err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["notes"][0].startswith("3 inter-token gaps recorded")
    assert "- 3 inter-token gaps recorded" in (out / "report.md").read_text()
