"""Output folders that never look complete unless they are: results are written into
`<out>.partial/` and renamed to `<out>/` only when the whole command succeeded. Finished work
stays in the `.partial` folder if a long run fails or is interrupted."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

from seqsched.common.errors import UserError


@contextmanager
def output_folder(out: str | Path, overwrite: bool = False, resume: bool = False):
    """Yield `<out>.partial/` (emptied first unless `resume`); rename it to `<out>` when the
    block succeeds."""
    final = Path(out)
    if final.exists() and not overwrite:
        raise UserError(f"output folder {final} already exists; pass --overwrite or pick "
                        "another --out")
    partial = final.with_name(final.name + ".partial")
    if partial.exists() and not resume:
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
    except BaseException:
        if not any(partial.iterdir()):     # nothing finished: leave nothing behind
            partial.rmdir()
        raise
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
