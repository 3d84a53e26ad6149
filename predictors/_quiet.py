"""Silence transformers' load-time chatter (progress bars, advisory warnings) in CLI output."""

from __future__ import annotations

import contextlib
import logging
import os


@contextlib.contextmanager
def quiet_transformers():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as tlog
    except ImportError:
        yield
        return
    old = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        tlog.disable_progress_bar()
    except AttributeError:
        pass
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        yield
    finally:
        tlog.set_verbosity(old)
        try:
            tlog.enable_progress_bar()
        except AttributeError:
            pass
