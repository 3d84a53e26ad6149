"""Defaults the user did not type, marked so that a preset may replace them.

`--backend paper-a100` brings its own GPU and model (A100-80GB, vicuna-7b). An explicit
`--model llama-7b` must still win, although it spells the same text as the default: comparing
with the default value cannot tell the two apart, the type can. A `Default` is an ordinary
str everywhere else (equal, hashable, JSON, pickled, deep-copied), so no output changes.
"""

from __future__ import annotations


class Default(str):
    """A default value that no one chose explicitly."""
    __slots__ = ()


def is_default(value: object) -> bool:
    return isinstance(value, Default)


DEFAULT_GPU = Default("A100-80GB")
DEFAULT_MODEL = Default("llama-7b")
