"""Output locations, checked before any work starts, and folders that never look complete
unless they are.

`check_output_folder` / `check_output_file` refuse, up front, what a command could not write
or must not replace: an empty path, a folder where a file exists (or the reverse), a parent
that is a file (`/dev/null/x`) or cannot hold a new entry (`/proc/...`, a read-only or
unwritable folder: probed by creating and removing a temporary folder there), a name too long
for the file system, and `--overwrite` of a folder seqsched did not write (it would delete the
user's files). Results are written into `<out>.partial/` and renamed to `<out>/` only when
the whole command succeeded; finished work stays in the `.partial` folder if a long run fails
or is interrupted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from seqsched.common.errors import UserError

# files that mark a folder as a seqsched output (report, sweep, validate, predict eval)
OUTPUT_MARKERS = ("report.md", "summary.csv", "sweep.csv", "validation.json", "metrics.json")
PARTIAL = ".partial"
NAME_MAX = 255


def _absolute(out: str | Path, flag: str, what: str) -> Path:
    text = str(out)
    if not text.strip():
        raise UserError(f"{flag} is empty; give the path of the output {what}")
    if "\0" in text:
        raise UserError(f"{flag} {text!r} holds a NUL character; give a plain path")
    path = Path(os.path.abspath(os.path.expanduser(text)))
    if path.name in ("", ".", ".."):
        raise UserError(f"{flag} {text} names the file-system root; give the path of the "
                        f"output {what}")
    if len(os.fsencode(path.name)) + len(PARTIAL) > NAME_MAX:
        raise UserError(f"{flag}: the name {path.name[:40]}... is longer than the file system "
                        f"allows ({NAME_MAX} bytes); pick a shorter name")
    return path


def _check_parent(path: Path, text: str, flag: str) -> None:
    """The nearest existing ancestor must be a folder in which we can create entries."""
    anc = path.parent
    while not os.path.lexists(anc) and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{flag} {text}: {anc} is not a folder, so nothing can be created "
                        f"inside it; pick another {flag}")
    try:
        probe = tempfile.mkdtemp(prefix=".seqsched-probe-", dir=anc)
        os.rmdir(probe)
    except OSError as e:
        raise UserError(f"{flag} {text}: cannot create anything in {anc} "
                        f"({e.strerror or e}); pick a writable location") from None


def looks_like_output(folder: Path) -> bool:
    """An empty folder, or one holding a seqsched output marker."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return not names or any(m in names for m in OUTPUT_MARKERS)


def check_output_folder(out: str | Path, overwrite: bool = False, resume: bool = False,
                        flag: str = "--out") -> Path:
    """Raise UserError unless the folder `out` can be written (and, with `overwrite`,
    replaced); returns its absolute path. Creates nothing."""
    text = str(out)
    final = _absolute(out, flag, "folder")
    if os.path.lexists(final):
        if not final.is_dir():
            raise UserError(f"{flag} {text} is an existing file, not a folder; pick another "
                            f"{flag} (--overwrite replaces only an output folder)")
        if not overwrite:
            raise UserError(f"output folder {text} already exists; pass --overwrite or pick "
                            f"another {flag}")
        cwd = Path.cwd().resolve()
        if final.resolve() == cwd or final.resolve() in cwd.parents:
            raise UserError(f"{flag} {text} holds the current folder; --overwrite would delete "
                            f"it: pick another {flag}")
        if not looks_like_output(final):
            raise UserError(f"{flag} {text} is a folder seqsched did not write (no "
                            f"{' / '.join(OUTPUT_MARKERS[:3])}); --overwrite replaces only "
                            f"output folders: pick another {flag}")
    partial = final.with_name(final.name + PARTIAL)
    if os.path.lexists(partial) and not partial.is_dir():
        raise UserError(f"{partial} is an existing file, not a folder; move it or pick another "
                        f"{flag}")
    _check_parent(final, text, flag)
    return final


def check_output_file(path: str | Path, flag: str = "--out", what: str = "file") -> Path:
    """Raise UserError unless the file `path` can be written (an existing file is replaced,
    a folder is not); returns its absolute path. Creates nothing."""
    text = str(path)
    final = _absolute(path, flag, what)
    if final.is_dir():
        raise UserError(f"{flag} {text} is a folder; give the path of the output {what}")
    if text.endswith(("/", os.sep)):
        raise UserError(f"{flag} {text} ends with '/'; give the path of the output {what}")
    _check_parent(final, text, flag)
    return final


def check_writable_folder(path: str | Path, flag: str = "--out") -> Path:
    """For commands that write into a folder that may exist (predict, validate): refuse a
    file in its place and a parent that cannot hold it. Creates nothing."""
    text = str(path)
    final = _absolute(path, flag, "folder")
    if os.path.lexists(final) and not final.is_dir():
        raise UserError(f"{flag} {text} is an existing file, not a folder; pick another {flag}")
    if not final.is_dir():
        _check_parent(final, text, flag)
    return final


@contextmanager
def output_folder(out: str | Path, overwrite: bool = False, resume: bool = False):
    """Yield `<out>.partial/` (emptied first unless `resume`); rename it to `<out>` when the
    block succeeds."""
    final = check_output_folder(out, overwrite, resume)
    partial = final.with_name(final.name + PARTIAL)
    if partial.exists() and not resume:
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output folder {partial} ({e.strerror or e})"
                        ) from None
    try:
        yield partial
    except BaseException:
        if partial.is_dir() and not any(partial.iterdir()):  # nothing finished: leave nothing
            partial.rmdir()
        raise
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
