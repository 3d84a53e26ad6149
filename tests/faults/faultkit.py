"""The fault matrix's tools: run the CLI in-process and check the bad-input contract (exit code
2, one `seqsched: error:` line naming the problem, no traceback, nothing that looks complete),
and build a small valid trace file in every format the readers know, to break one at a time."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pandas as pd

from seqsched.app.cli import main

N = 6   # rows per file: small, so every case is fast


def run(capsys, *argv) -> tuple[int, str, str]:
    """`seqsched ARGV` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:               # argparse's own errors exit
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *needles: str) -> str:
    """Exit 2 and exactly one `seqsched: error:` line that contains every needle (warnings
    may precede it); returns the line."""
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith("seqsched"), line
    assert all(ln.startswith("seqsched: warning:") for ln in lines if ln != line), err
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def assert_nothing_complete(parent: Path, name: str) -> None:
    """No folder `name` (which would look complete); a `name.partial` may hold finished work."""
    assert not (parent / name).exists(), f"{name} looks complete after a failure"


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- valid traces in every format -------------------------------------------------------
def rows_native() -> list[dict]:
    return [{"id": f"r{i}", "arrival_s": 0.5 * i, "prompt_tokens": 20 + 3 * i,
             "output_tokens": 5 + 4 * i} for i in range(N)]


def _csv(header: list[str], rows: list[list]) -> str:
    return ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)


def text_of(fmt: str) -> str:
    """A valid file of format `fmt` (see FORMATS_AND_NAMES) as text."""
    nat = rows_native()
    if fmt == "native-csv":
        return pd.DataFrame(nat).to_csv(index=False)
    if fmt == "native-jsonl":
        return "".join(json.dumps(r) + "\n" for r in nat)
    if fmt == "native-json":
        return json.dumps(nat)
    if fmt == "azure":
        return _csv(["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
                    [[f"2023-11-16 18:15:{10 + i:02d}.5000000", r["prompt_tokens"],
                      r["output_tokens"]] for i, r in enumerate(nat)])
    if fmt == "splitwise":
        return _csv(["arrived_at", "num_prefill_tokens", "num_decode_tokens"],
                    [[r["arrival_s"], r["prompt_tokens"], r["output_tokens"]] for r in nat])
    if fmt == "burstgpt":
        return _csv(["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens",
                     "Log Type"],
                    [[r["arrival_s"], "ChatGPT", r["prompt_tokens"], r["output_tokens"],
                      r["prompt_tokens"] + r["output_tokens"], "Conversation log"]
                     for r in nat])
    if fmt == "mooncake":
        return "".join(json.dumps({"timestamp": int(1000 * r["arrival_s"]),
                                   "input_length": r["prompt_tokens"],
                                   "output_length": r["output_tokens"],
                                   "hash_ids": [1, 2]}) + "\n" for r in nat)
    if fmt == "sharegpt":
        return json.dumps([{"id": r["id"], "conversations": [
            {"from": "human", "value": "word " * r["prompt_tokens"]},
            {"from": "gpt", "value": "answer " * r["output_tokens"]}]} for r in nat])
    if fmt == "paper-lengths":
        return json.dumps([{"id": r["id"], "L_gt": r["output_tokens"],
                            "L_t0.0": r["output_tokens"], "L_t0.3": r["output_tokens"] + 2,
                            "L_t0.7": r["output_tokens"] + 5} for r in nat])
    if fmt == "alpaca-vicuna":
        return "".join(json.dumps({"id": r["id"], "instruction": f"Say {i}", "input": "",
                                   "prompt_tokens": r["prompt_tokens"],
                                   "vicuna7b_output_tokens": {"0.0": r["output_tokens"],
                                                              "0.3": r["output_tokens"] + 1},
                                   "reference_output_tokens": r["output_tokens"]}) + "\n"
                       for i, r in enumerate(nat))
    raise KeyError(fmt)


EXTENSIONS = {"native-csv": ".csv", "native-jsonl": ".jsonl", "native-json": ".json",
              "azure": ".csv", "splitwise": ".csv", "burstgpt": ".csv", "mooncake": ".jsonl",
              "sharegpt": ".json", "paper-lengths": ".json", "alpaca-vicuna": ".jsonl"}
FORMATS = list(EXTENSIONS)


def write(tmp_path: Path, fmt: str, data: str | bytes | None = None, suffix: str = "") -> Path:
    path = tmp_path / f"trace-{fmt}{EXTENSIONS.get(fmt, '')}{suffix}"
    data = text_of(fmt) if data is None else data
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def gzip_cut(data: bytes) -> bytes:
    """A gzip stream cut after its first deflate block (a download interrupted midway)."""
    blob = gzip.compress(data, compresslevel=1)
    return blob[:max(len(blob) // 2, 20)]


class Pipe:
    """`/dev/fd/N` of a pipe a thread feeds with `data`: what `<(cat file)` hands a program."""

    def __init__(self, data: bytes):
        self.read_fd, write_fd = os.pipe()
        self.path = f"/dev/fd/{self.read_fd}"

        def feed():
            with os.fdopen(write_fd, "wb") as f:
                try:
                    f.write(data)
                except BrokenPipeError:
                    pass
        self.thread = threading.Thread(target=feed, daemon=True)
        self.thread.start()

    def close(self) -> None:
        os.close(self.read_fd)
        self.thread.join(timeout=5)
