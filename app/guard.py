"""How every command ends: bad input as one `seqsched: error: ...` line and exit code 2, an
interruption (Ctrl-C, or SIGTERM from `timeout`, Slurm, `docker stop`) as exit code 130/143
after the command's own clean-up ran (workers stopped, an unfinished output folder left as
`OUT.partial/`), and never a traceback. SIGTERM is turned into an exception (`Terminated`)
so that `finally` blocks run; by default Python would die without them, leaving workers
behind."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from seqsched.analysis.output import PARTIAL
from seqsched.common.errors import UserError
from seqsched.common.params import check_options

DEBUG_ENV = "SEQSCHED_DEBUG"


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt: no `except Exception` eats
    it)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def terminate_as_exception():
    """Within the block, SIGTERM raises `Terminated` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _error(message: str) -> None:
    print(f"seqsched: error: {message}", file=sys.stderr)


def _kept(args) -> str:
    """What an interrupted command leaves: its `OUT.partial/` folder, by name, and for a
    sweep how to finish it."""
    out = getattr(args, "out", None)
    partial = Path(str(out)).with_name(Path(str(out)).name + PARTIAL) if out else None
    if partial is None or not partial.is_dir():
        return "no output folder was completed"
    again = (" (run the same command with --resume to finish it)"
             if getattr(args, "resume", None) is not None else "")
    return f"finished work is kept in {partial}/{again}"


def run_command(args) -> int:
    """Run `args.func(args)` and map how it ended to an exit code and at most one line."""
    try:
        with terminate_as_exception():
            check_options(vars(args))
            return args.func(args)
    except UserError as e:
        _error(" ".join(str(e).split("\n")))
        return 2
    except KeyboardInterrupt:
        print(f"seqsched: interrupted; {_kept(args)}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"seqsched: terminated (SIGTERM); {_kept(args)}", file=sys.stderr)
        return 143
    except BrokenPipeError:            # `seqsched ... | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except MemoryError:
        _error("out of memory; use a smaller trace (--sample, -n, --rows) or fewer policies")
        return 2
    except OSError as e:               # disk full, permissions, a file vanished mid-run
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _error(f"{where}{e.strerror or e}; check the path, free space and permissions")
        return 2
    except Exception as e:              # a bug: one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        first = " ".join(str(e).split())[:300]
        print(f"seqsched: internal error: {type(e).__name__}: {first} (a bug in seqsched; "
              f"rerun with {DEBUG_ENV}=1 for the traceback and report it)", file=sys.stderr)
        return 1
