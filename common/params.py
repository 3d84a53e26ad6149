"""KEY=VALUE parameters from the command line (policy, predictor, reader options), and the
checks of a parsed value against the annotated type of the parameter it sets."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from seqsched.common.errors import UserError

_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False,
          "none": None, "null": None}


def parse_value(text: str) -> Any:
    """'16' -> 16, '0.5' -> 0.5, 'true' -> True, 'none' -> None, anything else stays text."""
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None, what: str) -> dict[str, Any]:
    """['batch_size=16', 'vbs=false'] -> {'batch_size': 16, 'vbs': False}."""
    params = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{what} {item!r} is not KEY=VALUE, e.g. batch_size=16")
        key, value = item.split("=", 1)
        params[key.strip().replace("-", "_")] = parse_value(value.strip())
    return params


def is_whole(v: Any) -> bool:
    """An integer that is not a bool (True is an int to Python, not a count to a user)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


# annotation name -> (what an error says the value must be, check)
VALUE_KINDS = {
    "int": ("a whole number", is_whole),
    "float": ("a number", is_number),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a word", lambda v: isinstance(v, str)),
}


def init_params(cls) -> set[str]:
    """The parameters a dataclass (a policy, a predictor) takes from KEY=VALUE options."""
    return {f.name for f in dataclasses.fields(cls) if f.init and f.name != "name"}
