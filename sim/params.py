"""KEY=VALUE parameters from the command line (policy, predictor, reader options)."""

from __future__ import annotations

from typing import Any

from sim.errors import UserError

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
