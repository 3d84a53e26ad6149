"""The format registry (`FORMATS`, `_CONVERTERS`) and format detection: which format a file
uses, from its column names or record keys, with a one-line hint when none matches."""

from __future__ import annotations

import difflib

from seqsched.traces.formats import (alpaca_vicuna, azure, burstgpt, llmservingsim,
                                     mooncake, native, paper_lengths, sharegpt, splitwise)
from seqsched.traces.formats.base import Format, _Converter, _key, _resolve
from seqsched.traces.request import TraceError

_MODULES = (native, azure, splitwise, burstgpt, mooncake, llmservingsim, sharegpt,
            paper_lengths, alpaca_vicuna)

FORMATS: dict[str, Format] = {m.FORMAT.name: m.FORMAT for m in _MODULES}
_CONVERTERS: dict[str, _Converter] = {m.FORMAT.name: m.CONVERTER for m in _MODULES}

# most specific first: detection takes the first format whose required columns are present
_DETECT_ORDER = ("alpaca-vicuna", "paper-lengths", "sharegpt", "mooncake", "llmservingsim",
                 "azure", "splitwise", "burstgpt", "native")


def detect_format(columns: list[str], path: str = "trace") -> str:
    """Name of the format whose identifying columns are all present, else a TraceError
    naming the closest format, its expected columns and likely misspellings."""
    for name in _DETECT_ORDER:
        if len(_resolve(columns, FORMATS[name].required)) == len(FORMATS[name].required):
            return name
    raise TraceError(f"{path}: {_mismatch(columns, None)}")


def _mismatch(columns: list[str], fmt: str | None) -> str:
    cols = [str(c) for c in columns]
    shown = ", ".join(repr(c) for c in cols[:8]) + (", ..." if len(cols) > 8 else "")

    def score(name: str) -> float:
        req = FORMATS[name].required
        found = _resolve(cols, req)
        fuzzy = sum(max((difflib.SequenceMatcher(None, _key(r), _key(c)).ratio()
                         for c in cols), default=0) for r in req if r not in found)
        return (len(found) + 0.5 * fuzzy) / len(req)

    name = fmt or max(_DETECT_ORDER, key=score)
    req = FORMATS[name].required
    found = _resolve(cols, req)
    missing = [r for r in req if r not in found]
    hints = []
    unused = [c for c in cols if c not in found.values()]  # a matched column is no candidate
    for m in missing:
        close = difflib.get_close_matches(_key(m), [_key(c) for c in unused], n=1, cutoff=0.7)
        if close:
            orig = next(c for c in unused if _key(c) == close[0])
            unused.remove(orig)
            hints.append(f"did you mean {orig!r} for {m!r}?")
    what = (f"the {name} format needs columns {', '.join(req)}" if fmt else
            f"no known trace format matches the columns ({shown}); the closest, {name}, "
            f"needs {', '.join(req)}")
    msg = f"{what}; missing {', '.join(missing)}"
    if hints:
        msg += " (" + "; ".join(hints) + ")"
    fix = "rename the column(s)" if hints else "add the column(s)"
    if "arrival_s" in missing and not hints:     # a lengths-only file: say how to run it offline
        fix += " (arrival_s = 0 on every row: an offline trace, all requests at t = 0)"
    msg += f"; {fix}" + ("" if fmt else " or pass --format " + "|".join(FORMATS))
    return msg
