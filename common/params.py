"""KEY=VALUE parameters from the command line (policy, predictor, reader options), and the
checks of a parsed value against the annotated type of the parameter it sets."""

from __future__ import annotations

import dataclasses
import math
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
        key = key.strip().replace("-", "_")
        if not key:
            raise UserError(f"{what} {item!r} has an empty KEY; write KEY=VALUE")
        parsed = parse_value(value.strip())
        if is_whole(parsed) and abs(parsed) > SEED_MAX:
            raise UserError(f"{what} {item!r}: {value.strip()} does not fit 64 bits")
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise UserError(f"{what} {item!r}: {value.strip()} is not a finite number")
        params[key] = parsed
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


# -- option values ----------------------------------------------------------------------
# The one table of ranges for option values, wherever they come from: the command line, an
# experiment TOML, a sweep grid value. dest -> (kind, low, high, low is open, what to say).
# argparse checks only the type; `check_option` checks what the value may be.
SEED_MAX = 2 ** 63 - 1
TOKENS_MAX = 1_000_000_000     # as traces.validate.MAX_TOKENS: no context is a billion tokens
OPTION_RULES: dict[str, tuple[str, float | None, float | None, bool]] = {
    "seed": ("int", 0, SEED_MAX, False),
    "num_requests": ("int", 1, 10_000_000, False),
    "sample": ("int", 1, None, False),
    "max_output_tokens": ("int", 1, TOKENS_MAX, False),
    "max_new_tokens": ("int", 1, TOKENS_MAX, False),
    "batch_size": ("int", 0, None, True),
    "replicas": ("int", 1, 4096, False),
    "prefill_replicas": ("int", 0, 4096, False),     # 0 (with decode 0): not disaggregated
    "decode_replicas": ("int", 0, 4096, False),
    "workers": ("int", 1, 1024, False),
    "block_size": ("int", 1, None, False),
    "requests": ("int", 1, None, False),
    "threads": ("int", 1, None, False),
    "repeats": ("int", 1, None, False),
    "warmup": ("int", 0, None, False),
    "decode_iterations": ("int", 1, None, False),
    "epochs": ("int", 1, None, False),
    "ensemble": ("int", 1, None, False),
    "steps": ("int", 1, None, False),
    "lora_r": ("int", 1, None, False),
    "max_length": ("int", 1, None, False),
    "bucket": ("int", 1, None, False),
    "finetune_layers": ("int", 0, None, False),
    "rate": ("float", 0, None, True),
    "cv": ("float", 0.001, 100, False),      # 1/cv**2 is the Gamma shape: no underflow
    "speedup": ("float", 0, None, True),
    "memory_fraction": ("float", 0, 1, True),
    "gap": ("float", 0, None, False),
    "holdout": ("float", 0, 1, False),
    "lr": ("float", 0, None, True),
    "tp": ("int", 1, 4096, False),
    "decode_tp": ("int", 1, 4096, False),
    "tensor_parallel_size": ("int", 1, 4096, False),
    "pipeline_parallel_size": ("int", 1, 4096, False),
    "pp": ("int", 1, 4096, False),
    "max_num_seqs": ("int", 1, None, False),
    "max_num_batched_tokens": ("int", 1, None, False),
    "max_model_len": ("int", 1, TOKENS_MAX, False),
    "kv_blocks": ("int", 1, None, False),
    "swap_space": ("float", 0, None, False),
    "target": ("float", 0, 1, True),
    "rate_min": ("float", 0, None, True),
    "rate_max": ("float", 0, None, True),
    "tolerance": ("float", 0, None, True),
    "iteration_overhead_s": ("float", 0, None, False),
    "token_overhead_s": ("float", 0, None, False),
}


FLAG_NAMES = {"num_requests": "the number of requests (-n)"}


# a share typed as a percentage is the likely mistake: say the option's other name and a value
SHARE_HINTS = {"memory_fraction": " (a share of GPU memory, as vLLM's --gpu-memory-utilization:"
                                  " e.g. 0.9 for 90%)"}
OPEN_HIGH = {"holdout"}     # [0, 1): a holdout of everything leaves nothing to train on


def option_flag(dest: str) -> str:
    return FLAG_NAMES.get(dest, "--" + dest.replace("_", "-"))


def check_option(dest: str, value: Any, where: str | None = None) -> None:
    """Raise UserError if `value` is not a value option `dest` may take (None: not given).
    `where` names the source in the message (default: the flag, e.g. --seed)."""
    rule = OPTION_RULES.get(dest)
    if rule is None or value is None:
        return
    kind, low, high, open_low = rule
    where = where or option_flag(dest)
    words, ok = VALUE_KINDS[kind]
    if not ok(value):
        raise UserError(f"{where} must be {words}, got {value!r}")
    if kind == "float" and not math.isfinite(value):
        raise UserError(f"{where} must be a finite number, got {value!r}")
    if kind == "int" and abs(value) > SEED_MAX:
        raise UserError(f"{where} must be a whole number that fits 64 bits, got {value!r}")
    open_high = dest in OPEN_HIGH
    if kind == "float" and low is not None and high is not None and not (
            (value > low if open_low else value >= low)
            and (value < high if open_high else value <= high)):
        raise UserError(f"{where} must be in {'(' if open_low else '['}{low}, {high}"
                        f"{')' if open_high else ']'}, got {value!r}{SHARE_HINTS.get(dest, '')}")
    if low is not None and (value <= low if open_low else value < low):
        raise UserError(f"{where} must be {'>' if open_low else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise UserError(f"{where} must be <= {high:,}, got {value!r}")


def check_options(values: dict[str, Any], where: str = "") -> None:
    """`check_option` for every known dest in `values` (a parsed command line's vars). Text
    is skipped: argparse typed every numeric option, so text belongs to another command's
    option of the same name (predict train --target is a word, capacity --target a share)."""
    for dest, value in values.items():
        if isinstance(value, str):
            continue
        check_option(dest, value, f"{where}{option_flag(dest)}" if where else None)
