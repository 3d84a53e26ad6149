"""Output-location abuse, for every command that writes: an empty path, a file where a folder
goes (with and without --overwrite), a parent that is a file or cannot hold entries, the
current folder or a stranger's folder under --overwrite. Each is refused before any work
starts (the trace is never read: a missing trace would fail later, so the output error must
come first), leaves nothing behind and leaves existing files untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faultkit import assert_nothing_complete, assert_user_error, run

MISSING = "no-such-trace.jsonl"      # would fail *after* the output check


def folder_commands(out: str, *extra: str) -> dict[str, list]:
    return {
        "simulate": ["simulate", MISSING, "--out", out, *extra],
        "compare": ["compare", MISSING, "--policies", "fcfs", "--out", out, *extra],
        "sweep": ["sweep", MISSING, "--grid", "rate=1,2", "--out", out, *extra],
        "demo": ["demo", "-n", "4", "--out", out],      # demo always overwrites
    }


BAD_FOLDERS = {
    "empty": ("", "--out is empty"),
    "blank": ("   ", "--out is empty"),
    "dev-null-child": ("/dev/null/x", "/dev/null is not a folder"),
    "proc": ("/proc/seqsched-out", "cannot create anything in /proc"),
    "sys": ("/sys/seqsched-out", "cannot create anything in /sys"),
    "root": ("/", "file-system root"),
}


@pytest.mark.parametrize("command", ["simulate", "compare", "sweep", "demo"])
@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_impossible_output_folder(tmp_path, capsys, monkeypatch, command, case):
    monkeypatch.chdir(tmp_path)
    out, needle = BAD_FOLDERS[case]
    argv = folder_commands(out, *(["--overwrite"] if case == "root" else []))[command]
    code, _, err = run(capsys, *argv)
    assert_user_error(code, err, needle)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["simulate", "compare", "sweep"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_out_names_an_existing_file(tmp_path, capsys, monkeypatch, command, overwrite):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("precious")
    argv = folder_commands("results", *(["--overwrite"] if overwrite else []))[command]
    code, _, err = run(capsys, *argv)
    assert_user_error(code, err, "results is an existing file, not a folder")
    assert (tmp_path / "results").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["results"]


@pytest.mark.parametrize("command", ["simulate", "compare", "sweep", "demo"])
def test_overwrite_refuses_a_folder_seqsched_did_not_write(tmp_path, capsys, monkeypatch,
                                                           command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    code, _, err = run(capsys, *folder_commands("home", "--overwrite")[command])
    assert_user_error(code, err, "a folder seqsched did not write")
    assert (tmp_path / "home" / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("out", [".", "..", "./"])
def test_overwrite_refuses_the_current_folder(tmp_path, capsys, monkeypatch, out):
    work = tmp_path / "work"
    work.mkdir()
    (work / "report.md").write_text("looks like ours")
    monkeypatch.chdir(work)
    code, _, err = run(capsys, "simulate", MISSING, "--out", out, "--overwrite")
    assert_user_error(code, err, "holds the current folder")
    assert (work / "report.md").exists()


@pytest.mark.parametrize("command", ["simulate", "compare", "sweep"])
def test_existing_folder_without_overwrite(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "res").mkdir()
    code, _, err = run(capsys, *folder_commands("res")[command])
    assert_user_error(code, err, "already exists", "--overwrite")


def test_partial_path_taken_by_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "res.partial").write_text("x")
    code, _, err = run(capsys, "simulate", MISSING, "--out", "res")
    assert_user_error(code, err, "res.partial is an existing file")


def test_name_too_long(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "simulate", MISSING, "--out", "x" * 250)
    assert_user_error(code, err, "longer than the file system allows")


def test_overwrite_replaces_an_old_output_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["simulate", "synth:uniform", "-n", "8", "--out", "res"]
    assert run(capsys, *args)[0] == 0
    (tmp_path / "res" / "stale.txt").write_text("old")
    code, _, err = run(capsys, *args, "--overwrite")
    assert code == 0, err
    assert not (tmp_path / "res" / "stale.txt").exists()
    assert (tmp_path / "res" / "report.md").is_file()


def test_failure_after_the_check_leaves_nothing_complete(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "simulate", MISSING, "--out", "res")
    assert_user_error(code, err, "no such file")
    assert_nothing_complete(tmp_path, "res")
    assert not (tmp_path / "res.partial").exists()


# -- commands that write one file -------------------------------------------------------
def file_commands(out: str) -> dict[str, list]:
    return {
        "convert": ["trace", "convert", MISSING, out],
        "synth": ["trace", "synth", "uniform", "-n", "4", "-o", out],
        "concat": ["trace", "concat", MISSING, MISSING, "-o", out],
        "inspect-plot": ["trace", "inspect", MISSING, "--plot", out],
    }


BAD_FILES = {
    "empty": ("", "is empty"),
    "dev-null-child": ("/dev/null/t.jsonl", "/dev/null is not a folder"),
    "proc": ("/proc/t.jsonl", "cannot create anything in /proc"),
    "folder": ("{tmp}", "is a folder"),
    "trailing-slash": ("{tmp}/new/", "is a folder"),
}


@pytest.mark.parametrize("command", ["convert", "synth", "concat", "inspect-plot"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_impossible_output_file(tmp_path, capsys, command, case):
    out, needle = BAD_FILES[case]
    out = out.replace("{tmp}", str(tmp_path))
    code, _, err = run(capsys, *file_commands(out)[command])
    line = assert_user_error(code, err)
    assert needle in line or (case == "trailing-slash" and "ends with '/'" in line), line


@pytest.mark.parametrize("command", ["convert", "synth", "concat"])
def test_unknown_output_extension_before_reading(tmp_path, capsys, command):
    code, _, err = run(capsys, *file_commands(str(tmp_path / "t.txt"))[command])
    assert_user_error(code, err, "cannot tell the output format", ".txt")


@pytest.mark.parametrize("argv", [
    ["predict", "eval", "--predictor", "oracle", "--data", MISSING, "--out", "/dev/null/x"],
    ["predict", "train", "--data", MISSING, "--out", "/dev/null/x"],
    ["predict", "annotate", "--trace", MISSING, "--predictor", "oracle", "--out",
     "/dev/null/x.jsonl"],
    ["validate", "--trace", MISSING, "--profile", "p.json", "--out", "/dev/null/x"],
    ["calibrate", "--out", "/dev/null/x.json"],
], ids=["predict-eval", "predict-train", "predict-annotate", "validate", "calibrate"])
def test_other_commands_check_their_output_first(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert_user_error(code, err, "/dev/null is not a folder")


@pytest.mark.parametrize("content, needle", [
    (b"\xff\xfe\x00garbage", "not a seqsched sweep.csv"),
    (b"a,b,c\n1,2,3\n", "not a seqsched sweep.csv"),
    (b"label,point_id\nx,deadbeef0000\n", "rows of a different sweep"),
], ids=["binary", "foreign-header", "foreign-rows"])
def test_resume_refuses_a_foreign_partial(tmp_path, capsys, monkeypatch, content, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sw.partial").mkdir()
    (tmp_path / "sw.partial" / "sweep.csv").write_bytes(content)
    code, _, err = run(capsys, "sweep", "synth:uniform", "-n", "4", "--grid", "rate=1,2",
                       "--workers", "1", "--out", "sw", "--resume")
    assert_user_error(code, err, needle)
    assert (tmp_path / "sw.partial" / "sweep.csv").read_bytes() == content
    assert_nothing_complete(tmp_path, "sw")


def test_unwritable_folder(tmp_path):
    """A folder the user may not write: refused before the trace is read. Root may write
    anywhere, so as root the command runs as `nobody`."""
    import subprocess
    import sys
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="seqsched-ro-"))
    try:
        base.chmod(0o755)
        ro = base / "ro"
        ro.mkdir(mode=0o555)
        ro.chmod(0o555)
        kw = {"user": 65534} if os.geteuid() == 0 else {}
        try:
            r = subprocess.run([sys.executable, "-m", "seqsched.app.cli", "simulate",
                                MISSING, "--out", str(ro / "res")], capture_output=True,
                               text=True, timeout=300, cwd=base,
                               env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}, **kw)
        except PermissionError as e:
            pytest.skip(f"root, and `nobody` cannot run this interpreter: {e}")
        if r.returncode != 2 and "res" not in r.stderr:
            pytest.skip(f"cannot run as nobody here: {r.stderr[-200:]}")
        assert_user_error(r.returncode, r.stderr, "cannot create anything in", "ro")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)
        import shutil
        shutil.rmtree(base)
