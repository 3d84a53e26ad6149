"""Bad input: one clear TraceError per case naming the file, the line/row, the problem and the
fix; the CLI turns it into one `seqsched: error:` line and exit code 2, no traceback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqsched.common.errors import UserError
from seqsched.traces.io import load_trace
from seqsched.traces.request import TraceError

ROOT = Path(__file__).resolve().parents[2]
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW1 = "2023-11-16 18:15:46.6805900,374,44\n"
ROW2 = "2023-11-16 18:15:50.9951690,396,109\n"


def write(tmp_path, name, data):
    p = tmp_path / name
    (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
    return p


def error(path, **kw) -> str:
    with pytest.raises(TraceError) as e:
        load_trace(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg, "messages are one line"
    assert str(path) in msg or path.name in msg
    return msg


def test_trace_error_is_a_user_error():
    assert issubclass(TraceError, UserError)


def test_missing_column_names_the_expected_ones(tmp_path):
    msg = error(write(tmp_path, "a.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,3\n"))
    assert "azure" in msg and "TIMESTAMP, ContextTokens, GeneratedTokens" in msg
    assert "missing GeneratedTokens" in msg and "--format" in msg


def test_misspelt_column_suggests_the_right_name(tmp_path):
    msg = error(write(tmp_path, "a.csv", "TIMESTAMP,ContextToken,GeneratedTokens\n"
                                         "2023-11-16 18:15:46,3,4\n"))
    assert "did you mean 'ContextToken' for 'ContextTokens'?" in msg


def test_misspelt_native_column(tmp_path):
    msg = error(write(tmp_path, "n.jsonl", '{"arrival_s": 0, "prompt_token": 3, '
                                           '"output_tokens": 4}\n'))
    assert "native" in msg and "did you mean 'prompt_token' for 'prompt_tokens'?" in msg


def test_unknown_columns_list_what_was_found(tmp_path):
    msg = error(write(tmp_path, "x.csv", "foo,bar\n1,2\n"))
    assert "no known trace format matches the columns ('foo', 'bar')" in msg


def test_non_numeric_value_names_line_and_column(tmp_path):
    msg = error(write(tmp_path, "a.csv", HEADER + ROW1 + "2023-11-16 18:15:50.99,abc,109\n"))
    assert "line 3: ContextTokens (prompt_tokens) is 'abc', not a number" in msg
    assert "--skip-invalid-rows" in msg


def test_negative_token_count(tmp_path):
    msg = error(write(tmp_path, "a.csv", HEADER + ROW1 + "2023-11-16 18:15:50.99,5,-3\n"))
    assert "line 3: GeneratedTokens (output_tokens) is -3, must be >= 1" in msg


def test_nan_token_count_csv_and_jsonl(tmp_path):
    msg = error(write(tmp_path, "a.csv", HEADER + "2023-11-16 18:15:50.99,5,\n" + ROW1))
    assert "line 2: GeneratedTokens (output_tokens) is empty (NaN)" in msg
    p = write(tmp_path, "n.jsonl", '{"arrival_s": 0, "prompt_tokens": 3, "output_tokens": 4}\n'
                                   '\n{"arrival_s": 1, "prompt_tokens": 3, '
                                   '"output_tokens": NaN}\n')
    assert "line 3: output_tokens is empty (NaN)" in error(p)


def test_fractional_token_count(tmp_path):
    p = write(tmp_path, "n.csv", "arrival_s,prompt_tokens,output_tokens\n0,3.5,4\n")
    assert "line 2: prompt_tokens is 3.5, not a whole number of tokens" in error(p)


def test_zero_length_prompt(tmp_path):
    msg = error(write(tmp_path, "a.csv", HEADER + ROW1 + "2023-11-16 18:15:50.99,0,5\n"))
    assert "line 3: ContextTokens (prompt_tokens) is 0; zero-length prompts cannot be " \
           "scheduled" in msg


def test_skip_invalid_rows_drops_and_counts(tmp_path, caplog):
    p = write(tmp_path, "a.csv", HEADER + ROW1 + "2023-11-16 18:15:50.99,0,5\n"
              "2023-11-16 18:15:51.00,7,x\n" + ROW2)
    with caplog.at_level(logging.WARNING, logger="seqsched.traces"):
        t = load_trace(p, skip_invalid=True)
    assert t.ids.tolist() == ["0", "3"]
    assert "skipped 2 invalid row(s)" in caplog.text and "line 3" in caplog.text
    p = write(tmp_path, "b.csv", HEADER + ROW1 + "not-a-date,3,4\n" + ROW2)
    assert load_trace(p, skip_invalid=True).ids.tolist() == ["0", "2"]


def test_unsorted_timestamps_sorted_with_counted_warning(tmp_path, caplog):
    p = write(tmp_path, "a.csv", HEADER + ROW2 + ROW1 + "2023-11-16 18:15:52,1,1\n"
              "2023-11-16 18:15:47,1,1\n")
    with caplog.at_level(logging.WARNING, logger="seqsched.traces"):
        t = load_trace(p)
    assert "2 row(s) had timestamps out of order" in caplog.text
    assert t.ids.tolist() == ["1", "3", "0", "2"]
    assert np.all(np.diff(t.arrival_s) >= 0) and t.arrival_s[0] == 0.0


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path, content):
    assert "the file is empty" in error(write(tmp_path, "e.csv", content))


def test_header_only(tmp_path):
    assert "has a header but no requests" in error(write(tmp_path, "h.csv", HEADER))


def test_no_header_row(tmp_path):
    msg = error(write(tmp_path, "n.csv", "1,2,3\n4,5,6\n"))
    assert "line 1: no header row" in msg


def test_wrong_encoding_latin1(tmp_path):
    data = ("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
            "5,ChatGPT,472,18,490,Conversation log\n"
            "6,Chät,472,18,490,Conversation log\n").encode("latin-1")
    msg = error(write(tmp_path, "b.csv", data))
    assert "line 3: not UTF-8 text (byte 0xe4" in msg and "iconv" in msg


def test_wrong_encoding_latin1_in_head(tmp_path):
    msg = error(write(tmp_path, "b.csv", "Timestamp,Möd\n1,2\n".encode("latin-1")))
    assert "line 1: not UTF-8 text" in msg


def test_wrong_encoding_utf16(tmp_path):
    msg = error(write(tmp_path, "a.csv", (HEADER + ROW1).encode("utf-16")))
    assert "UTF-16" in msg and "re-encode it as UTF-8" in msg


def test_truncated_last_line_csv(tmp_path):
    msg = error(write(tmp_path, "a.csv", HEADER + ROW1 + ROW2 + "2023-11-16 18:15:5"))
    assert "line 4: has 1 field(s), expected 3" in msg and "truncated" in msg


def test_truncated_last_line_jsonl(tmp_path):
    good = json.dumps({"timestamp": 0, "input_length": 5, "output_length": 3}) + "\n"
    msg = error(write(tmp_path, "m.jsonl", good * 2 + '{"timestamp": 10, "input_len'))
    assert "line 3: not valid JSON" in msg and "truncated" in msg


def test_truncated_json_array(tmp_path):
    msg = error(write(tmp_path, "p.json", '[{"id": "5", "L_t0.0": 3},\n {"id": "7", "L_'))
    assert "line 2: not valid JSON" in msg and "truncated" in msg


def test_bad_timestamp(tmp_path):
    msg = error(write(tmp_path, "a.csv", HEADER + ROW1 + "yesterday,3,4\n"))
    assert "line 3: TIMESTAMP is 'yesterday', not a date-time" in msg


def test_duplicate_ids(tmp_path):
    p = write(tmp_path, "n.jsonl", '{"id": "a", "arrival_s": 0, "prompt_tokens": 3, '
                                   '"output_tokens": 4}\n' * 2)
    assert "line 2: duplicate request id 'a'" in error(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="is a directory"):
        load_trace(tmp_path)


def test_bad_reader_option(tmp_path):
    p = write(tmp_path, "a.csv", HEADER + ROW1)
    assert "option(s) model do not apply to the azure format" in error(p, model="GPT-4")


def test_burstgpt_filter_matches_nothing(tmp_path):
    p = write(tmp_path, "b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,"
                                 "Log Type\n5,ChatGPT,472,18,490,Conversation log\n")
    assert "no rows with Model in ['Claude']; the file has 'ChatGPT'" in error(p, model="Claude")


# -- CLI contract: exit code 2, one line, no traceback ----------------------------------
# a fresh interpreter runs the CLI, then checks the sim path never imported torch
CLI = ("import sys; from seqsched.app.trace_cli import main; rc = main(sys.argv[1:]); "
       "bad = [m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules]; "
       "sys.exit(99 if bad else rc)")


def run_cli(*argv, cwd):
    return subprocess.run([sys.executable, "-c", CLI, *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_bad_input_exit_2_one_line_and_no_torch(tmp_path):
    # exit code 99 instead of 2 would mean the trace path imported torch/transformers
    p = write(tmp_path, "a.csv", HEADER + ROW1 + "2023-11-16 18:15:50.99,abc,109\n")
    r = run_cli("trace", "inspect", p, "--no-plot", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("seqsched: error: ")
    assert "line 3" in lines[0] and "a.csv" in lines[0]


@pytest.mark.parametrize("argv,expected", [
    (["--window", "10"], "--window must look like START:END"),
    (["--rows", "a:b"], "is not a whole row number"),
    (["--arrival", "gamma", "--rate", "2"], "needs --rate (requests per second) and --cv"),
    (["--cv", "2"], "--cv only applies to --arrival gamma"),
    (["--sample", "5"], "cannot sample 5 requests from 2"),
    (["--window", "100:200"], "no request arrives in the window"),
])
def test_cli_option_messages(tmp_path, capsys, argv, expected):
    from seqsched.app.trace_cli import main
    p = write(tmp_path, "a.csv", HEADER + ROW1 + ROW2)
    assert main(["trace", "inspect", str(p), "--no-plot", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqsched: error: ") and expected in err


# -- audit of issue #3 (bad input): gaps found and fixed --------------------------------
NATIVE = "id,arrival_s,prompt_tokens,output_tokens,prompt\n"


def test_line_number_counts_records_not_physical_lines(tmp_path):
    # a quoted prompt spanning lines 2-4 (one blank) is one record: the bad row is on line 5
    p = write(tmp_path, "ml.csv", NATIVE + 'a,0,5,5,"line one\n\nline three"\nb,1,5,-5,"x"\n')
    assert "line 5: output_tokens is -5" in error(p)


def test_truncated_inside_a_quoted_field(tmp_path):
    # pyarrow accepts a file that ends inside quotes; the cut is reported, not loaded
    p = write(tmp_path, "q.csv", NATIVE + 'a,0,5,5,"x"\nb,1,5,5,"half a prom')
    msg = error(p)
    assert "line 3" in msg and "truncated" in msg and "quoted field" in msg


def test_truncated_last_line_with_a_missing_value_says_truncated(tmp_path):
    p = write(tmp_path, "t.csv", HEADER + ROW1 + "2023-11-16 18:15:50.9951690,396,")
    msg = error(p)
    assert "line 3 (the last line" in msg and "truncated" in msg
    # the same row with a final newline is an ordinary empty value
    p = write(tmp_path, "e.csv", HEADER + ROW1 + "2023-11-16 18:15:50.9951690,396,\n")
    msg = error(p)
    assert "line 3: GeneratedTokens (output_tokens) is empty" in msg
    assert "looks truncated" not in msg


def test_huge_token_count_is_an_error_not_an_int64_wraparound(tmp_path):
    p = write(tmp_path, "big.csv", HEADER + ROW1 + "2023-11-16 18:15:50.9951690,1e20,5\n")
    msg = error(p)
    assert "line 3: ContextTokens (prompt_tokens) is 100000000000000000000" in msg
    assert "not a plausible token count" in msg


def test_infinite_value_is_printed_plainly(tmp_path):
    p = write(tmp_path, "inf.csv", "arrival_s,prompt_tokens,output_tokens\n0,5,5\ninf,5,5\n")
    assert "line 3: arrival_s is inf, not a finite number" in error(p)


def test_missing_column_hint_never_offers_a_column_already_used(tmp_path):
    # GeneratedTokens is matched; it must not be suggested for ContextTokens
    p = write(tmp_path, "m.csv", "TIMESTAMP,GeneratedTokens\n2023-11-16 18:15:46.68,44\n")
    msg = error(p)
    assert "missing ContextTokens" in msg and "did you mean" not in msg
    # an unrelated column is not offered as a misspelling either
    p = write(tmp_path, "b.csv", "Timestamp,Model,Request tokens,Response tokens\n5,x,4,2\n")
    msg = error(p, format="azure")
    assert "did you mean" not in msg


def test_json_error_wording(tmp_path):
    p = write(tmp_path, "t.jsonl", '{"arrival_s":0,"prompt_tokens":5,"output_tokens":3}\n'
                                   '{"arrival_s":1,"prompt_tokens":5,"output_tok')
    msg = error(p)
    assert "Unterminated string starting at column 34" in msg and "at at" not in msg


def test_paper_lengths_bad_assumed_prompt_option(tmp_path):
    p = write(tmp_path, "pl.json", json.dumps([{"id": "1", "L_gt": 3, "L_t0.0": 4}]))
    with pytest.raises(TraceError, match="prompt_tokens=abc must be a whole number"):
        load_trace(p, prompt_tokens="abc")
    with pytest.raises(TraceError, match="prompt_tokens=0 must be a whole number"):
        load_trace(p, prompt_tokens=0)


def test_cli_bad_spans_and_request_count(tmp_path, capsys):
    from seqsched.app.trace_cli import main
    p = write(tmp_path, "a.csv", HEADER + ROW1 + ROW2)
    for argv, expected in ((["trace", "inspect", str(p), "--no-plot", "--window", "10:5"],
                            "END must be greater than START"),
                           (["trace", "inspect", str(p), "--no-plot", "--rows=-1:2"],
                            "row numbers start at 0"),
                           (["trace", "synth", "uniform", "-n", "0", "-o",
                             str(tmp_path / "u.jsonl")], "(-n) must be >= 1, got 0")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("seqsched: error: ") and expected in err, err
    assert not (tmp_path / "u.jsonl").exists()
