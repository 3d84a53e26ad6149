"""Every reader x every way a trace file goes wrong: a wrong value in a length field (text,
boolean, list, negative, zero, fractional, implausibly large, empty), a truncated file, renamed
columns, foreign encodings, a gzip stream cut short, epoch timestamps, and input from a pipe.
Each bad file ends in exit 2 with one line naming the problem; each good one in exit 0."""

from __future__ import annotations

import codecs
import gzip
import json
import re

import pytest

from faultkit import (FORMATS, Pipe, assert_user_error, gzip_cut, rows_native, run, text_of,
                      write)

JSON_FORMATS = {"native-jsonl", "native-json", "mooncake", "paper-lengths", "alpaca-vicuna",
                "sharegpt"}
# the length field a case breaks, per format (sharegpt has none: it counts text)
FIELD = {"native-csv": "prompt_tokens", "native-jsonl": "prompt_tokens",
         "native-json": "output_tokens", "azure": "ContextTokens",
         "splitwise": "num_prefill_tokens", "burstgpt": "Request tokens",
         "mooncake": "input_length", "paper-lengths": "L_t0.0", "alpaca-vicuna": "prompt_tokens"}
ROW = 2


def with_value(fmt: str, value) -> str:
    """The valid file of `fmt` with FIELD[fmt] of row ROW set to `value` (a JSON value, or
    its text in a CSV)."""
    text = text_of(fmt)
    field = FIELD[fmt]
    if fmt in JSON_FORMATS:
        if text.lstrip().startswith("["):
            items = json.loads(text)
            items[ROW][field] = value
            return json.dumps(items)
        items = [json.loads(line) for line in text.splitlines()]
        items[ROW][field] = value
        return "".join(json.dumps(i) + "\n" for i in items)
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[1 + ROW].split(",")
    cells[header.index(field)] = "" if value is None else (
        str(value).lower() if isinstance(value, bool) else str(value))
    lines[1 + ROW] = ",".join(cells)
    return "\n".join(lines) + "\n"


BAD_VALUES = [                                    # (value, needle, JSON formats only)
    ("abc", "not a number", False),
    (True, "not a number", False),
    (-3, "must be >= 1", False),
    (2.5, "not a whole number", False),
    (10 ** 12, "not a plausible token count", False),
    (None, "empty", False),
    ([1, 2], "(a list), not a number", True),
    ({"n": 3}, "(an object), not a number", True),
    ("12", "the text '12', not a number", True),
]
VALUE_CASES = [pytest.param(fmt, v, needle, id=f"{fmt}-{v!r}"[:40])
               for fmt in FIELD for v, needle, json_only in BAD_VALUES
               if fmt in JSON_FORMATS or not json_only]


@pytest.mark.parametrize("fmt, value, needle", VALUE_CASES)
def test_bad_length_value(tmp_path, capsys, fmt, value, needle):
    path = write(tmp_path, fmt, with_value(fmt, value))
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    line = assert_user_error(code, err, needle, path.name)
    assert "line" in line or "item" in line or "row" in line, line   # it says where


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_file_reads(tmp_path, capsys, fmt):
    code, out, err = run(capsys, "trace", "inspect", write(tmp_path, fmt), "--no-plot")
    assert code == 0, err
    assert re.search(r"^requests\s+6$", out, re.M), out


def truncated(fmt: str) -> str:
    """Cut inside the last record: a CSV row losing its last fields, JSON mid-object."""
    text = text_of(fmt)
    if fmt in JSON_FORMATS:
        return text[:int(len(text) * 0.7)]
    body, last = text.rstrip("\n").rsplit("\n", 1)
    return body + "\n" + last[:last.index(",") + 2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file(tmp_path, capsys, fmt):
    path = write(tmp_path, fmt, truncated(fmt))
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, path.name)
    assert "truncated" in err or "field" in err or "not valid JSON" in err, err


RENAMED = {"native-csv": "prompt_tokens", "native-jsonl": "output_tokens",
           "native-json": "arrival_s", "azure": "GeneratedTokens", "splitwise": "arrived_at",
           "burstgpt": "Response tokens", "mooncake": "output_length",
           "sharegpt": "conversations", "paper-lengths": "L_t0.0",
           "alpaca-vicuna": "vicuna7b_output_tokens"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_renamed_column(tmp_path, capsys, fmt):
    text = text_of(fmt).replace(RENAMED[fmt], "bogus_column")
    path = write(tmp_path, fmt, text)
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, path.name)
    assert "missing" in err or "no known trace format" in err, err


@pytest.mark.parametrize("fmt", FORMATS)
def test_utf16_file(tmp_path, capsys, fmt):
    path = write(tmp_path, fmt, codecs.BOM_UTF16_LE + text_of(fmt).encode("utf-16-le"))
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, "UTF-16/32", "re-encode")


LATIN1_FIELD = {"native-csv": ("r1", "r\xe91"), "azure": ("2023", "\xe92023"),
                "native-jsonl": ('"r1"', '"r\xe91"'), "sharegpt": ("word", "w\xe9rd"),
                "alpaca-vicuna": ("Say 1", "S\xe9y 1"), "paper-lengths": ('"r1"', '"r\xe91"')}


@pytest.mark.parametrize("fmt", list(LATIN1_FIELD))
def test_latin1_bytes(tmp_path, capsys, fmt):
    old, new = LATIN1_FIELD[fmt]
    data = text_of(fmt).replace(old, new, 1).encode("latin-1")
    path = write(tmp_path, fmt, data)
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, "not UTF-8", "line")


@pytest.mark.parametrize("fmt", FORMATS)
def test_gzip_cut_short(tmp_path, capsys, fmt):
    # enough rows that the cut falls past the sniffed head: the reader meets it mid-stream
    text = text_of(fmt)
    if fmt in JSON_FORMATS and text.startswith("{"):
        text = text * 400
    elif fmt not in JSON_FORMATS:
        header, body = text.split("\n", 1)
        text = header + "\n" + body * 400
    blob = gzip.compress(text.encode(), compresslevel=1)
    path = write(tmp_path, fmt, blob[:len(blob) * 3 // 4], suffix=".gz")
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot", "--skip-invalid-rows")
    assert_user_error(code, err, "gzip data is corrupt or truncated", path.name)


@pytest.mark.parametrize("fmt", ["native-csv", "native-jsonl", "mooncake"])
def test_gzip_cut_in_the_head(tmp_path, capsys, fmt):
    path = write(tmp_path, fmt, gzip_cut(text_of(fmt).encode()), suffix=".gz")
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, "gzip data is corrupt or truncated")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_pipe_is_read_once(capsys, fmt, compressed):
    """`seqsched trace inspect <(cat FILE)`: a pipe cannot be re-read or sought."""
    data = text_of(fmt).encode()
    pipe = Pipe(gzip.compress(data) if compressed else data)
    try:
        code, out, err = run(capsys, "trace", "inspect", pipe.path, "--no-plot")
    finally:
        pipe.close()
    assert code == 0, err
    assert re.search(r"^requests\s+6$", out, re.M), out


def test_pipe_with_a_bad_row_names_the_line(capsys):
    pipe = Pipe(with_value("native-csv", "abc").encode())
    try:
        code, _, err = run(capsys, "trace", "inspect", pipe.path, "--no-plot")
    finally:
        pipe.close()
    assert_user_error(code, err, "line 4", "'abc', not a number")


EPOCH = {"native-jsonl": ("arrival_s", 1.7e18), "native-csv": ("arrival_s", 1.7e18),
         "splitwise": ("arrived_at", 1.7e15), "burstgpt": ("Timestamp", 1.7e12 * 1e6),
         "mooncake": ("timestamp", 1.7e21)}


@pytest.mark.parametrize("fmt", list(EPOCH))
def test_epoch_timestamps_are_refused(tmp_path, capsys, fmt):
    """Epoch ms/ns as seconds: float64 would round every latency to 0 (or to 256 s)."""
    col, base = EPOCH[fmt]
    if fmt in JSON_FORMATS:
        rows = [json.loads(line) for line in text_of(fmt).splitlines()]
        for i, r in enumerate(rows):
            r[col] = base + i
        text = "".join(json.dumps(r) + "\n" for r in rows)
    else:
        lines = text_of(fmt).splitlines()
        k = lines[0].split(",").index(col)
        for i in range(1, len(lines)):
            cells = lines[i].split(",")
            cells[k] = repr(base + i)
            lines[i] = ",".join(cells)
        text = "\n".join(lines) + "\n"
    path = write(tmp_path, fmt, text)
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, "too large for float64", "Unix timestamp")


def test_epoch_seconds_still_simulate_exactly(tmp_path, capsys):
    """Epoch *seconds* keep microsecond resolution: accepted, latencies unchanged."""
    rows = rows_native()
    shifted = [dict(r, arrival_s=1.7e9 + r["arrival_s"]) for r in rows]
    a = write(tmp_path, "native-jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    b = tmp_path / "shifted.jsonl"
    b.write_text("".join(json.dumps(r) + "\n" for r in shifted))
    res = []
    for path, out in ((a, "oa"), (b, "ob")):
        code, _, err = run(capsys, "simulate", path, "--out", tmp_path / out)
        assert code == 0, err
        res.append((tmp_path / out / "records_fcfs.csv").read_text().splitlines())
    import pandas as pd
    ra, rb = (pd.read_csv(tmp_path / o / "records_fcfs.csv") for o in ("oa", "ob"))
    lat_a = (ra["finish_s"] - ra["arrival_s"]).to_numpy()
    lat_b = (rb["finish_s"] - rb["arrival_s"]).to_numpy()
    assert abs(lat_a - lat_b).max() < 1e-6 and lat_a.min() > 0


@pytest.mark.parametrize("fmt, key", [("alpaca-vicuna", "warm"), ("alpaca-vicuna", "-1"),
                                      ("paper-lengths", "L_tfoo")])
def test_keyed_lengths_with_foreign_keys(tmp_path, capsys, fmt, key):
    if fmt == "alpaca-vicuna":
        rows = [json.loads(line) for line in text_of(fmt).splitlines()]
        rows[ROW]["vicuna7b_output_tokens"][key] = 40
        text = "".join(json.dumps(r) + "\n" for r in rows)
    else:
        items = json.loads(text_of(fmt))
        items[ROW][key] = 40
        text = json.dumps(items)
    path = write(tmp_path, fmt, text)
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, repr(key), "temperature")


@pytest.mark.parametrize("value, needle", [("115", "the text '115'"), (True, "true/false"),
                                           ([3], "a list"), (-4, "is -4"),
                                           ({"n": 1}, "an object")])
def test_alpaca_vicuna_sample_lengths(tmp_path, capsys, value, needle):
    rows = [json.loads(line) for line in text_of("alpaca-vicuna").splitlines()]
    rows[ROW]["vicuna7b_output_tokens"]["0.3"] = value
    path = write(tmp_path, "alpaca-vicuna", "".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, "len_t0.3", needle, "line 3")


@pytest.mark.parametrize("fmt", ["native-csv", "alpaca-vicuna"])
def test_trace_from_stdin(tmp_path, fmt):
    """`cat FILE | seqsched simulate -`: stdin is a pipe, read once."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "seqsched.app.cli", "simulate", "-",
                        "--out", str(tmp_path / "res")], input=text_of(fmt).encode(),
                       capture_output=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr.decode()
    assert len((tmp_path / "res" / "records_fcfs.csv").read_text().splitlines()) == 7


PARQUET_CASES = {
    "bool": ([True, False, True, True, False, True], "true/false"),
    "text": (["12", "3", "4", "5", "6", "7"], "the text '12'"),
    "float": ([1.5, 2.0, 3.0, 4.0, 5.0, 6.0], "not a whole number"),
    "negative": ([-1, 2, 3, 4, 5, 6], "must be >= 1"),
    "lists": ([[1], [2], [3], [4], [5], [6]], "(a list), not a number"),
}


@pytest.mark.parametrize("case", list(PARQUET_CASES))
def test_parquet_values(tmp_path, capsys, case):
    import pandas as pd
    values, needle = PARQUET_CASES[case]
    df = pd.DataFrame(rows_native()).assign(output_tokens=values)
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
    assert_user_error(code, err, needle, "row 0", "t.parquet")


@pytest.mark.parametrize("how", ["cut", "pipe"])
def test_parquet_cut_and_piped(tmp_path, capsys, how):
    import pandas as pd
    path = tmp_path / "t.parquet"
    pd.DataFrame(rows_native()).to_parquet(path)
    data = path.read_bytes()
    if how == "cut":
        path.write_bytes(data[:len(data) // 2])
        code, _, err = run(capsys, "trace", "inspect", path, "--no-plot")
        assert_user_error(code, err, "not a readable Parquet file")
        return
    pipe = Pipe(data)
    try:
        code, out, err = run(capsys, "trace", "inspect", pipe.path, "--no-plot")
    finally:
        pipe.close()
    assert code == 0, err
    assert re.search(r"^requests\s+6$", out, re.M), out


@pytest.mark.parametrize("payload", [b"late", b""], ids=["late-writer", "empty-writer"])
def test_named_pipe_waits_for_its_writer_and_says_so(tmp_path, capsys, monkeypatch, payload):
    """`mkfifo p; seqsched trace inspect p` with the writer not started yet used to block in
    open() without a word; now it says once that it is waiting, then reads what comes."""
    import os
    import threading
    import time

    from seqsched.traces import source
    monkeypatch.setattr(source, "FIFO_NOTICE_S", 0.05)
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    data = text_of("native-csv").encode() if payload else b""

    def writer():
        deadline = time.monotonic() + 30
        while True:            # opening for writing fails (ENXIO) until the reader is there
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
        time.sleep(0.3)        # the reader is polling now; it must speak before the data
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    code, out, err = run(capsys, "trace", "inspect", str(fifo), "--no-plot")
    thread.join(timeout=5)
    assert "waiting for a writer on the named pipe" in err
    if payload:
        assert code == 0, err
        assert re.search(r"^requests\s+6$", out, re.M), out
    else:                      # the notice, then the one error line
        notice, rest = err.split("\n", 1)
        assert "waiting for a writer" in notice
        assert_user_error(code, rest, "the file is empty")
