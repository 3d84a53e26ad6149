"""Every reader, on small fixtures written here, with hand-checked values; save/load round
trips for the native containers; format detection and --format override."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pandas as pd
import pytest

from seqsched.traces.io import FORMATS, load_trace, save_trace
from seqsched.traces.request import Trace

AZURE_2023 = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:51.2148250,879,34
"""
AZURE_2024 = """TIMESTAMP,ContextTokens,GeneratedTokens
2024-05-12 00:00:00.001163+00:00,1452,3
2024-05-12 00:00:00.041683+00:00,584,3
2024-05-12 00:00:01+00:00,862,38
"""
SPLITWISE = """arrived_at,num_prefill_tokens,num_decode_tokens,pd_ratio
0.0,1020,129,7.9
0.25,1500,13,115.4
1.5,88,7,12.6
"""
BURSTGPT = """Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45,ChatGPT,1087,0,1087,Conversation log
118,GPT-4,417,276,693,Conversation log
130,GPT-4,20,5,25,API log
"""
MOONCAKE = [
    {"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48]},
    {"timestamp": 27482, "input_length": 6472, "output_length": 26, "hash_ids": [46, 52]},
    {"timestamp": 30535, "input_length": 6593, "output_length": 14, "hash_ids": [46]},
]
SHAREGPT = [
    {"id": "a1", "conversations": [{"from": "human", "value": "Hello there, how are you?"},
                                   {"from": "gpt", "value": "Fine, thanks."},
                                   {"from": "human", "value": "ignored second turn"}]},
    {"id": "a2", "conversations": [{"from": "system", "value": "be brief"},
                                   {"from": "human", "value": "x" * 40},
                                   {"from": "gpt", "value": "y" * 9}]},
    {"id": "a3", "conversations": [{"from": "gpt", "value": "no human turn"}]},
    {"id": "a4", "conversations": [{"from": "human", "value": ""},
                                   {"from": "gpt", "value": "empty prompt"}]},
]
PAPER = [
    {"id": "5", "L_gt": 160, "L_t0.7": 220, "L_t0.5": 277, "L_t0.3": 142, "L_t0.0": 115},
    {"id": "7", "L_gt": 49, "L_t0.7": 86, "L_t0.5": 101, "L_t0.3": 120, "L_t0.0": 83},
]
ALPACA = [
    {"id": "5", "instruction": "Describe a time.", "input": "", "reference_output_tokens": 160,
     "vicuna7b_output_tokens": {"0.0": 115, "0.3": 142, "0.5": 277, "0.7": 220},
     "prompt_tokens": 86},
    {"id": "7", "instruction": "Explain why.", "input": "4/16", "reference_output_tokens": 49,
     "vicuna7b_output_tokens": {"0.0": 83, "0.3": 120, "0.5": 101, "0.7": 86},
     "prompt_tokens": 107},
]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_format_names():
    assert set(FORMATS) == {"native", "azure", "splitwise", "burstgpt", "mooncake", "llmservingsim",
                            "sharegpt", "paper-lengths", "alpaca-vicuna"}


@pytest.mark.parametrize("text", [AZURE_2023])
def test_azure_2023_seven_fractional_digits(tmp_path, text):
    t = load_trace(write(tmp_path, "AzureLLMInferenceTrace_conv.csv", text))
    assert t.name == "AzureLLMInferenceTrace_conv"
    assert t.ids.tolist() == ["0", "1", "2"]
    np.testing.assert_allclose(t.arrival_s, [0.0, 4.314579, 4.534235], atol=1e-9)
    assert t.prompt_tokens.tolist() == [374, 396, 879]
    assert t.output_tokens.tolist() == [44, 109, 34]


def test_azure_2024_utc_offsets_and_whole_seconds(tmp_path):
    t = load_trace(write(tmp_path, "code_1week.csv", AZURE_2024))
    np.testing.assert_allclose(t.arrival_s, [0.0, 0.04052, 0.998837], atol=1e-9)
    assert t.output_tokens.tolist() == [3, 3, 38]


def test_azure_gzip(tmp_path):
    p = tmp_path / "conv.csv.gz"
    p.write_bytes(gzip.compress(AZURE_2023.encode()))
    t = load_trace(p)
    assert len(t) == 3 and t.name == "conv"


def test_splitwise_keeps_extra_columns(tmp_path):
    t = load_trace(write(tmp_path, "splitwise_conv.csv", SPLITWISE))
    assert t.arrival_s.tolist() == [0.0, 0.25, 1.5]
    assert t.prompt_tokens.tolist() == [1020, 1500, 88]
    assert t.output_tokens.tolist() == [129, 13, 7]
    assert t.df["pd_ratio"].tolist() == [7.9, 115.4, 12.6]


def test_burstgpt_failed_rows_skipped_and_counted(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="seqsched.traces"):
        t = load_trace(write(tmp_path, "BurstGPT_1.csv", BURSTGPT))
    assert "skipped 1 failed request" in caplog.text
    assert t.ids.tolist() == ["0", "2", "3"]           # file rows, the failed one gone
    assert t.arrival_s.tolist() == [5.0, 118.0, 130.0]
    assert t.df["model"].tolist() == ["ChatGPT", "GPT-4", "GPT-4"]
    assert t.df["log_type"].tolist() == ["Conversation log", "Conversation log", "API log"]


def test_burstgpt_filters(tmp_path):
    p = write(tmp_path, "b.csv", BURSTGPT)
    assert load_trace(p, model="GPT-4").ids.tolist() == ["2", "3"]
    assert load_trace(p, model="gpt-4", log_type="API log").ids.tolist() == ["3"]
    assert load_trace(p, log_type=["Conversation log"]).ids.tolist() == ["0", "2"]


def test_mooncake_ms_and_hash_ids(tmp_path):
    t = load_trace(write(tmp_path, "mooncake_trace.jsonl", jsonl(MOONCAKE)))
    assert t.arrival_s.tolist() == [0.0, 27.482, 30.535]
    assert t.prompt_tokens.tolist() == [6955, 6472, 6593]
    assert t.output_tokens.tolist() == [52, 26, 14]
    assert [list(h) for h in t.df["hash_ids"]] == [[46, 47, 48], [46, 52], [46]]
    assert list(t.requests()[1].extras["hash_ids"]) == [46, 52]


def test_sharegpt_chars_over_four_is_labelled(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="seqsched.traces"):
        t = load_trace(write(tmp_path, "sg.json", json.dumps(SHAREGPT)))
    assert "chars/4 ESTIMATE" in caplog.text
    assert "skipped 2 conversation" in caplog.text
    assert t.ids.tolist() == ["a1", "a2"]
    # ceil(25/4)=7, ceil(13/4)=4; 40/4=10, ceil(9/4)=3
    assert t.prompt_tokens.tolist() == [7, 10]
    assert t.output_tokens.tolist() == [4, 3]
    assert (t.df["token_count"] == "chars/4 estimate").all()
    assert t.df["prompt"].tolist()[0] == "Hello there, how are you?"
    assert (t.arrival_s == 0).all()


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    """A whitespace word-level tokenizer trained locally (no downloads), BOS added."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["hello there how are you fine thanks"],
                            trainers.WordLevelTrainer(special_tokens=["[UNK]", "<s>"]))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    d = tmp_path_factory.mktemp("tok")
    tok.save(str(d / "tokenizer.json"))
    return d


def test_sharegpt_with_tokenizer_file(tmp_path, word_tokenizer):
    t = load_trace(write(tmp_path, "sg.json", json.dumps(SHAREGPT[:1])),
                   tokenizer=str(word_tokenizer / "tokenizer.json"))
    # "Hello there, how are you?" -> <s> Hello there , how are you ? = 8 (BOS counted)
    # "Fine, thanks." -> Fine , thanks . = 4 (no BOS on the response)
    assert t.prompt_tokens.tolist() == [8]
    assert t.output_tokens.tolist() == [4]
    assert t.df["token_count"].iloc[0] == "tokenizer:tokenizer.json"


@pytest.mark.live
def test_sharegpt_with_hf_tokenizer_dir(tmp_path, word_tokenizer):
    pytest.importorskip("transformers")
    from transformers import PreTrainedTokenizerFast
    d = tmp_path / "hf"
    PreTrainedTokenizerFast(tokenizer_file=str(word_tokenizer / "tokenizer.json"),
                            bos_token="<s>", unk_token="[UNK]").save_pretrained(d)
    t = load_trace(write(tmp_path, "sg.json", json.dumps(SHAREGPT[:1])), tokenizer=str(d))
    assert t.prompt_tokens.tolist() == [8]
    assert t.output_tokens.tolist() == [4]


def test_sharegpt_duplicate_ids_made_unique(tmp_path):
    items = [dict(SHAREGPT[0], id="x"), dict(SHAREGPT[1], id="x")]
    t = load_trace(write(tmp_path, "sg.json", json.dumps(items)))
    assert t.ids.tolist() == ["x#0", "x#1"]


def test_paper_length_json(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="seqsched.traces"):
        t = load_trace(write(tmp_path, "alpaca-train-10k-length.json", json.dumps(PAPER)))
    assert "assuming 100 prompt tokens" in caplog.text
    assert t.ids.tolist() == ["5", "7"]
    assert t.output_tokens.tolist() == [115, 83]
    assert t.df["len_t0.3"].tolist() == [142, 120]
    assert t.df["len_t0.7"].tolist() == [220, 86]
    assert t.df["max_of_samples"].tolist() == [277, 120]
    assert t.df["reference_output_tokens"].tolist() == [160, 49]
    t2 = load_trace(tmp_path / "alpaca-train-10k-length.json", prompt_tokens=90)
    assert t2.prompt_tokens.tolist() == [90, 90]


def test_alpaca_vicuna_jsonl(tmp_path):
    t = load_trace(write(tmp_path, "av.jsonl", jsonl(ALPACA)))
    assert t.output_tokens.tolist() == [115, 83]
    assert t.prompt_tokens.tolist() == [86, 107]
    for temp, vals in (("0.0", [115, 83]), ("0.3", [142, 120]), ("0.5", [277, 101]),
                       ("0.7", [220, 86])):
        assert t.df[f"len_t{temp}"].tolist() == vals
    assert t.df["max_of_samples"].tolist() == [277, 120]
    assert t.df["prompt"][1].startswith("A chat between")
    assert "### Input:\n4/16" in t.df["prompt"][1]
    assert "### Input" not in t.df["prompt"][0]


def test_native_read_jsonl_wrapper_still_works(tmp_path):
    from seqsched.traces.native import read_jsonl, write_jsonl
    t = load_trace(write(tmp_path, "av.jsonl", jsonl(ALPACA)))
    write_jsonl(t, tmp_path / "out.jsonl")
    back = read_jsonl(tmp_path / "out.jsonl")
    pd.testing.assert_frame_equal(back.df, t.df, check_dtype=False)


def _rich_trace() -> Trace:
    return Trace(pd.DataFrame({
        "id": ["r0", "007", "r2"], "arrival_s": [0.0, 0.1 + 0.2, 12345.678901234],
        "prompt_tokens": [5, 6, 7], "output_tokens": [1, 512, 3],
        "prompt": ["hi, \"quoted\"\nnewline", "é ü 漢字", ""],
        "hash_ids": [[1, 2], [3], []], "score": [0.5, np.nan, 2.0]}), name="rich")


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_native_round_trip(tmp_path, ext):
    t = _rich_trace()
    p = save_trace(t, tmp_path / f"rich{ext}")
    back = load_trace(p)
    assert back.name == "rich"
    assert back.ids.tolist() == ["r0", "007", "r2"]
    np.testing.assert_allclose(back.arrival_s, t.arrival_s, rtol=1e-14)
    assert back.prompt_tokens.tolist() == [5, 6, 7]
    assert back.output_tokens.tolist() == [1, 512, 3]
    assert back.df["prompt"].tolist() == t.df["prompt"].tolist()
    assert [list(h) for h in back.df["hash_ids"]] == [[1, 2], [3], []]
    np.testing.assert_allclose(back.df["score"].to_numpy(float), [0.5, np.nan, 2.0])


@pytest.mark.parametrize("fixture,name", [(AZURE_2023, "azure"), (SPLITWISE, "splitwise"),
                                          (BURSTGPT, "burstgpt")])
@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_every_format_converts_to_native_and_back(tmp_path, fixture, name, ext):
    t = load_trace(write(tmp_path, f"{name}.csv", fixture))
    back = load_trace(save_trace(t, tmp_path / f"{name}-native{ext}"))
    pd.testing.assert_frame_equal(back.df[["id", "prompt_tokens", "output_tokens"]],
                                  t.df[["id", "prompt_tokens", "output_tokens"]])
    np.testing.assert_allclose(back.arrival_s, t.arrival_s, rtol=1e-14)


def test_parquet_in_a_source_schema(tmp_path):
    df = pd.DataFrame({"arrived_at": [0.0, 1.0], "num_prefill_tokens": [3, 4],
                       "num_decode_tokens": [5, 6]})
    df.to_parquet(tmp_path / "sw.parquet")
    t = load_trace(tmp_path / "sw.parquet")
    assert t.prompt_tokens.tolist() == [3, 4]


def test_native_csv_without_id_numbers_rows(tmp_path):
    t = load_trace(write(tmp_path, "n.csv", "arrival_s,prompt_tokens,output_tokens\n0,3,4\n"
                                            "1.5,5,6\n"))
    assert t.ids.tolist() == ["0", "1"]


def test_format_override(tmp_path):
    # a native-looking file forced through the splitwise reader fails with its columns named
    from seqsched.traces.request import TraceError
    p = write(tmp_path, "sw.csv", SPLITWISE)
    assert len(load_trace(p, format="splitwise")) == 3
    with pytest.raises(TraceError, match="azure format needs columns TIMESTAMP, ContextTokens"):
        load_trace(p, format="azure")
    with pytest.raises(TraceError, match="unknown trace format 'azur'.*did you mean 'azure'"):
        load_trace(p, format="azur")


def test_column_names_case_and_space_insensitive(tmp_path):
    text = " timestamp , contexttokens,GENERATEDTOKENS\n2023-11-16 18:15:46.68,10,2\n"
    t = load_trace(write(tmp_path, "a.csv", text))
    assert t.prompt_tokens.tolist() == [10]


# -- properties ---------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.floats(0, 1e6, allow_nan=False), st.integers(1, 10**6),
                               st.integers(1, 10**5), st.text(max_size=12)),
                     min_size=1, max_size=30),
       ext=st.sampled_from([".jsonl", ".csv", ".parquet"]))
def test_round_trip_property(tmp_path, rows, ext):
    df = pd.DataFrame({"id": [f"q{i}" for i in range(len(rows))],
                       "arrival_s": [r[0] for r in rows], "prompt_tokens": [r[1] for r in rows],
                       "output_tokens": [r[2] for r in rows], "note": [r[3] for r in rows]})
    t = Trace(df, name="prop")
    back = load_trace(save_trace(t, tmp_path / f"prop{ext}"))
    assert back.ids.tolist() == t.ids.tolist()
    np.testing.assert_allclose(back.arrival_s, t.arrival_s, rtol=1e-14, atol=1e-9)
    assert back.prompt_tokens.tolist() == t.prompt_tokens.tolist()
    assert back.output_tokens.tolist() == t.output_tokens.tolist()
    assert np.all(np.diff(back.arrival_s) >= 0)



# -- audit of issue #3: every reader's output survives a native round trip ----------------
SOURCES = {"azure-2023": ("a.csv", AZURE_2023), "azure-2024": ("a24.csv", AZURE_2024),
           "splitwise": ("s.csv", SPLITWISE), "burstgpt": ("b.csv", BURSTGPT),
           "mooncake": ("m.jsonl", jsonl(MOONCAKE)), "sharegpt": ("sg.json", json.dumps(SHAREGPT)),
           "paper-lengths": ("p.json", json.dumps(PAPER)), "alpaca-vicuna": ("av.jsonl",
                                                                             jsonl(ALPACA))}


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_every_reader_round_trips_with_extras(tmp_path, source, ext):
    """The whole frame (native columns first, then every extra: hash_ids, len_t*, prompt,
    model, token_count, prompt_tokens_assumed, ...) comes back as it was written."""
    fname, text = SOURCES[source]
    t = load_trace(write(tmp_path, fname, text))
    assert list(t.df.columns[:4]) == ["id", "arrival_s", "prompt_tokens", "output_tokens"]
    back = load_trace(save_trace(t, tmp_path / f"native{ext}"))
    pd.testing.assert_frame_equal(back.df, t.df, check_dtype=False)


def _prompt(i: int) -> str:
    return f"### Instruction:\nrequest {i}, with a comma\n\n### Response:"


def test_native_csv_with_multiline_prompts_beyond_one_read_block(tmp_path):
    # > 4 MiB (pyarrow's block) of quoted prompts with newlines: the chunker must track quotes
    n = 60_000
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "arrival_s": np.arange(n) * 0.1,
                       "prompt_tokens": 7, "output_tokens": 3,
                       "prompt": [_prompt(i) for i in range(n)]})
    p = save_trace(Trace(df, name="ml"), tmp_path / "ml.csv")
    assert p.stat().st_size > 4 << 20
    back = load_trace(p)
    assert len(back) == n and back.df["prompt"].tolist() == df["prompt"].tolist()
    assert len(load_trace(p, rows=(59_990, 60_000))) == 10


@pytest.mark.parametrize("n,m,quote_ids", [(150_000, 60_000, False),  # rows split in two
                                            (20_000, 200_000, True)])   # "out of sync"
def test_quoted_multiline_values_first_seen_past_the_sniffed_head(tmp_path, n, m, quote_ids):
    # the first 64 KiB has no quote, so the reader starts without pyarrow's quote tracking
    q = '"' if quote_ids else ""
    lines = ["id,arrival_s,prompt_tokens,output_tokens,note\n"]
    lines += [f"q{i},{i},5,5,plain\n" for i in range(n)]
    lines += [f'{q}q{i}{q},{i},5,5,"two\nlines, a comma"\n' for i in range(n, n + m)]
    p = tmp_path / "late.csv"
    p.write_text("".join(lines))
    t = load_trace(p)
    assert len(t) == n + m and t.df["note"].iloc[-1] == "two\nlines, a comma"
    assert t.ids[-1] == f"q{n + m - 1}"


@pytest.mark.parametrize("sep", ["\t", ";"])
def test_tab_and_semicolon_separated_files(tmp_path, sep):
    text = AZURE_2023.replace(",", sep)
    t = load_trace(write(tmp_path, "a.tsv", text))
    assert t.prompt_tokens.tolist() == [374, 396, 879]
    assert t.arrival_s[1] == pytest.approx(4.314579)
