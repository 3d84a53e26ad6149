"""Experiment files (`--experiment X.toml`): options of compare and sweep in TOML, keys are the
long option names. Every value is checked against the option it sets, as argparse checks a
flag's text and `common.params.check_option` its range: a string where a list is expected is
refused (it would be split into letters), `seed = true` is not a number, `rate = -1` is out of
range. The file must be UTF-8 TOML; flags given on the command line win over the file."""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path
from typing import Any

from seqsched.common.errors import UserError
from seqsched.common.params import VALUE_KINDS, check_option

# dests that are not options a file may set
NOT_KEYS = ("help", "experiment", "func", "parser", "command", "argv")
_TOML_TYPES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
               list: "a list", dict: "a table"}


def read_experiment(path: Path) -> dict[str, Any]:
    """The TOML table of an experiment file; UserError for a missing, unreadable, non-UTF-8
    or invalid file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"experiment {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"experiment {path}: is a directory; give a .toml file") from None
    except OSError as e:
        raise UserError(f"experiment {path}: cannot read the file ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise UserError(f"experiment {path}: line {line}: not UTF-8 text (byte "
                        f"0x{data[e.start]:02x}); save the file as UTF-8") from None
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"experiment {path}: not valid TOML ({e})") from None


def _kind(value: Any) -> str:
    return next((w for t, w in _TOML_TYPES.items() if isinstance(value, t)),
                type(value).__name__)


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    """One value as the option's argparse type would give it."""
    if callable(action.type) and action.type not in (int, float, str):
        return _converted(action, value, where)
    kind = {int: "int", float: "float"}.get(action.type, "str")
    words, ok = VALUE_KINDS[kind]
    if not ok(value):
        raise UserError(f"{where} must be {words}, not {_kind(value)} {value!r}")
    if kind == "str":
        value = os.path.expandvars(value)
    elif kind == "float":
        value = float(value)
    if action.choices is not None and value not in action.choices:
        raise UserError(f"{where} is {value!r}; choose one of "
                        f"{', '.join(map(str, action.choices))}")
    return value


def _converted(action: argparse.Action, value: Any, where: str) -> Any:
    """A value for an option with its own converter (vLLM's human-readable integers, e.g.
    `max-num-batched-tokens`): a whole number as it is, or a string the converter reads
    ("32k"), as the command line would give it."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserError(f"{where} must be a whole number or a string such as \"32k\", not "
                        f"{_kind(value)} {value!r}")
    try:
        return action.type(str(value))
    except (argparse.ArgumentTypeError, ValueError) as e:
        raise UserError(f"{where}: {e}") from None


def typed_value(action: argparse.Action, value: Any, where: str) -> Any:
    """`value` from the file, checked and converted for `action`."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,  # noqa: SLF001
                           argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false, not {_kind(value)} {value!r}")
        return value
    many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)  # noqa: SLF001
    if many:
        if not isinstance(value, list):
            example = f'["{value}"]' if isinstance(value, str) else '["..."]'
            raise UserError(f"{where} must be a list, e.g. {example}, not {_kind(value)} "
                            f"{value!r}")
        if action.nargs == "+" and not value:
            raise UserError(f"{where} is an empty list; give at least one value")
        return [_scalar(action, v, f"{where}[{i}]") for i, v in enumerate(value)]
    value = _scalar(action, value, where)
    check_option(action.dest, value, where)
    return value


def given(action: argparse.Action, argv: list[str] | None) -> bool:
    """Whether the command line typed this option (`--seed 0` wins over `seed = 5` although
    0 is the default)."""
    if not argv or not action.option_strings:
        return False
    flags = tuple(action.option_strings)
    return any(tok in flags or tok.startswith(tuple(f + "=" for f in flags if f[:2] == "--"))
               for tok in argv)


def apply_experiment(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill options the command line left at their defaults from the experiment TOML file
    `args.experiment` (keys are the long option names, e.g. `policies`, `backend`,
    `max-new-tokens`, `trace`); sets `args.title`."""
    path = Path(args.experiment)
    spec = read_experiment(path)
    title = spec.pop("title", None)
    if title is not None and not isinstance(title, str):
        raise UserError(f"experiment {path}: title must be a string, not {_kind(title)}")
    args.title = title
    actions = {a.dest: a for a in parser._actions                 # noqa: SLF001 - no public API
               if (a.option_strings or a.dest == "trace") and a.dest not in NOT_KEYS}
    for key, value in spec.items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise UserError(f"experiment {path}: unknown key {key!r}; use the long option "
                            f"names of `{parser.prog} --help`")
        value = typed_value(action, value, f"experiment {path}: {key}")
        if given(action, getattr(args, "argv", None)):
            continue                    # the command line wins, even with the default value
        if getattr(args, dest) == parser.get_default(dest):
            setattr(args, dest, value)
