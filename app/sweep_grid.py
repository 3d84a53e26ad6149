"""Sweep grids: parsing `--grid KEY=V1,V2,...` into typed axes and expanding them x policies
into points (each one full `simulate()` run; `sweep_runner` runs them).

Grid keys (`seqsched sweep --grid KEY=V1,V2,...`) use the command line's KEY=VALUE spelling
(`sim/params.py`; dashes and underscores are the same):

- a run option, i.e. a `RunConfig` field: gpu, model, backend, profile, replicas, router,
  seed, max_new_tokens, memory_fraction, block_size, iteration_overhead_s, token_overhead_s,
  kv_append_copy, predictor;
- an arrival/trace option: rate, cv, speedup, arrival, sample, max_output_tokens,
  num_requests (or n); `seed` reseeds the trace as well as the run, as on the command line;
- a policy parameter: `batch_size` or `policy.batch_size` (the prefix is needed where the
  name is also a run option: `policy.max_new_tokens`); every swept policy must take it;
- a predictor parameter: `predictor.scale`.

A grid value overrides the same option given otherwise (a flag, a policy spec's parameter).
Policies are not a grid key: `--policy`/`--policies` list them, one line each in the plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from seqsched.app.run import FEATURE_FIELDS, RunConfig
from seqsched.common.errors import UserError
from seqsched.common.params import (VALUE_KINDS, check_option, init_params, is_number,
                                    parse_value)

# RunConfig fields that are not grid keys (policies are listed, params are addressed by name)
RUN_NOT_KEYS = ("policy", "policy_params", "predictor_params", "progress")
# the trace/arrival options a grid may set (their types come from the trace options' parser)
TRACE_KEYS = ("arrival", "rate", "cv", "speedup", "sample", "max_output_tokens",
              "num_requests", "seed")
ALIASES = {"n": "num_requests"}


# -- keys and types ---------------------------------------------------------------------
@functools.cache
def _trace_actions() -> dict[str, argparse.Action]:
    """The trace/arrival options exactly as simulate/compare/sweep define them."""
    from seqsched.app.trace_args import add_trace_arguments
    probe = argparse.ArgumentParser(add_help=False)
    add_trace_arguments(probe)
    return {a.dest: a for a in probe._actions}      # noqa: SLF001 - no public API


def trace_option_names() -> list[str]:
    return list(_trace_actions())


def trace_options_from_args(args) -> dict[str, Any]:
    """The `trace_from_args` inputs of a parsed command line, as a plain dict."""
    from seqsched.app.trace_args import BENCH_ARRIVAL_KEYS
    # vLLM bench's traffic options join a point's trace options only when given (the point
    # ids of sweeps without them stay as they were)
    return {dest: getattr(args, dest, action.default)
            for dest, action in _trace_actions().items()
            if dest not in BENCH_ARRIVAL_KEYS or getattr(args, dest, None) is not None}


@functools.cache
def run_fields() -> dict[str, tuple[str, bool]]:
    """RunConfig field -> (base type name, None allowed); annotations are strings (PEP 563)."""
    out = {}
    for f in dataclasses.fields(RunConfig):
        if f.name in RUN_NOT_KEYS:
            continue
        parts = [p.strip() for p in str(f.type).split("|")]
        out[f.name] = (parts[0], "None" in parts)
    return out


def _trace_types() -> dict[str, tuple[str, bool, tuple | None]]:
    actions = _trace_actions()
    out = {}
    for key in TRACE_KEYS:
        a = actions[key]
        kind = {int: "int", float: "float"}.get(a.type, "str")
        out[key] = (kind, a.default is None, tuple(a.choices) if a.choices else None)
    return out


def _typed(key: str, text: str, kind: str, optional: bool, choices=None) -> Any:
    """One grid value, checked and converted as the matching command-line option would be."""
    if optional and text.lower() in ("none", "null"):
        return None
    value = text if kind == "str" else parse_value(text)
    words, ok = VALUE_KINDS.get(kind, (kind, lambda v: True))
    if not ok(value):
        raise UserError(f"--grid {key}: {text!r} is not {words}")
    if kind == "float":
        value = float(value)
    if choices and value not in choices:
        raise UserError(f"--grid {key}: {text!r} is not one of {', '.join(map(str, choices))}")
    check_option(key, value, f"--grid {key}")     # the flag's own range (seed >= 0, rate > 0)
    return value


@dataclass
class GridAxis:
    """One `--grid` option: the column it fills, what it sets and its values."""

    key: str                # column: rate, gpu, batch_size, policy.max_new_tokens, predictor.scale
    kind: str               # "option" (RunConfig field and/or trace option), "policy", "predictor"
    name: str               # the field, option or parameter it sets
    values: list

    @property
    def numeric(self) -> bool:
        return all(is_number(v) for v in self.values)


def _policy_fields(name: str) -> set[str] | None:
    from seqsched.policies import POLICIES
    cls = POLICIES.get(name)
    return None if cls is None else init_params(cls)


def _unknown_key(key: str) -> UserError:
    arrival = ", ".join(k for k in TRACE_KEYS if k not in run_fields())
    return UserError(
        f"unknown grid key {key!r}; use a run option ({', '.join(run_fields())}), an arrival "
        f"option ({arrival}), a policy parameter (KEY or policy.KEY) or predictor.KEY")


def grid_axis(item: str, policy_names: list[str]) -> GridAxis:
    """'rate=2,4,8' -> GridAxis('rate', 'option', 'rate', [2.0, 4.0, 8.0]); raises UserError
    for a malformed item, an unknown key or a value of the wrong type."""
    if "=" not in item:
        raise UserError(f"--grid {item!r} is not KEY=V1,V2,..., e.g. rate=2,4,8")
    key, text = item.split("=", 1)
    key = ALIASES.get(key.strip().replace("-", "_"), key.strip().replace("-", "_"))
    raw = [v.strip() for v in text.split(",")]
    if not key or not all(raw):
        raise UserError(f"--grid {item!r}: empty key or value; write KEY=V1,V2,...")
    prefix, _, rest = key.partition(".")
    if rest and prefix == "predictor":
        return GridAxis(key, "predictor", rest, [parse_value(v) for v in raw])
    if rest and prefix == "policy":
        name = rest
    elif rest:
        raise _unknown_key(key)
    elif key == "policy":
        raise UserError("policy is not a grid key; list policies with --policy/--policies "
                        "(one line each in the plots)")
    elif key in run_fields() or key in TRACE_KEYS:
        if key in TRACE_KEYS:
            kind, optional, choices = _trace_types()[key]
        else:
            (kind, optional), choices = run_fields()[key], None
        return GridAxis(key, "option", key,
                        [_typed(key, v, kind, optional, choices) for v in raw])
    else:
        name = key
        from seqsched.policies import POLICIES
        if not any(name in _policy_fields(p) for p in POLICIES):
            raise _unknown_key(key)
    for policy in policy_names:
        known = _policy_fields(policy)
        if known is not None and name not in known:
            raise UserError(f"grid key {key}: policy {policy} has no parameter {name}; it "
                            f"takes {', '.join(sorted(known))}")
    column = name if name not in run_fields() and name not in TRACE_KEYS else f"policy.{name}"
    return GridAxis(column, "policy", name, [parse_value(v) for v in raw])


def parse_grid(items: list[str] | None, policy_names: list[str]) -> list[GridAxis]:
    axes: list[GridAxis] = []
    for item in items or []:
        axis = grid_axis(item, policy_names)
        if any(a.key == axis.key for a in axes):
            raise UserError(f"--grid {axis.key} is given twice; list all its values in one "
                            "--grid KEY=V1,V2,...")
        if len({json.dumps(v) for v in axis.values}) != len(axis.values):
            raise UserError(f"--grid {axis.key}: a value is listed twice")
        axes.append(axis)
    if not axes:
        raise UserError("a sweep needs at least one --grid KEY=V1,V2,... (e.g. rate=2,4,8)")
    return axes


# -- points -----------------------------------------------------------------------------
def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class SweepPoint:
    """One point of the sweep: a policy (its spec is the plots' hue), the grid coordinates,
    and the full run it stands for."""

    index: int                                  # position in grid order
    policy: str                                 # the policy spec, e.g. binned:vbs=false
    coords: dict[str, Any]                      # grid key -> value, in grid order
    config: RunConfig
    trace_options: dict[str, Any] = field(default_factory=dict)
    slos: tuple = ()                            # analysis.slo.SLO: judged, not run
    prices: str | None = None                   # a price table file (cost columns)
    features: bool = False                      # the sweep turns a serving feature on

    @property
    def label(self) -> str:
        return " ".join([self.policy, *(f"{k}={v}" for k, v in self.coords.items())])

    @property
    def trace_key(self) -> str:
        return canonical(self.trace_options)

    @property
    def point_id(self) -> str:
        """Digest of everything that defines the run: resume matches rows by it."""
        config = dataclasses.asdict(dataclasses.replace(self.config, progress=False))
        default = RunConfig()
        for name in FEATURE_FIELDS:       # as before the features existed, when left alone
            if config[name] == getattr(default, name):
                del config[name]
        spec = {"config": config,
                "trace": self.trace_options, "policy": self.policy}
        if self.slos or self.prices:        # rows judged otherwise are other rows
            spec["objectives"] = [[str(s) for s in self.slos], self.prices]
        return hashlib.sha1(canonical(spec).encode()).hexdigest()[:12]


def expand(configs: dict[str, RunConfig], trace_options: dict[str, Any],
           axes: list[GridAxis]) -> list[SweepPoint]:
    """Policies (outermost, in the order given) x the cartesian product of the axes."""
    points = []
    for label, base in configs.items():
        for combo in itertools.product(*(a.values for a in axes)):
            cfg = dataclasses.replace(base, policy_params=dict(base.policy_params),
                                      predictor_params=dict(base.predictor_params),
                                      progress=False)
            opts = dict(trace_options)
            for axis, value in zip(axes, combo):
                if axis.kind == "policy":
                    cfg.policy_params[axis.name] = value
                elif axis.kind == "predictor":
                    cfg.predictor_params[axis.name] = value
                else:
                    if axis.name in run_fields():
                        setattr(cfg, axis.name, value)
                    if axis.name in TRACE_KEYS:
                        opts[axis.name] = value
            points.append(SweepPoint(len(points), label,
                                     {a.key: v for a, v in zip(axes, combo)}, cfg, opts))
    on = any(p.config.features() for p in points) or any(a.name in FEATURE_FIELDS
                                                          for a in axes)
    for p in points:
        p.features = on
    return points


def check_predictor_keys(points: list[SweepPoint], axes: list[GridAxis]) -> None:
    """`predictor.KEY` must be a parameter of every predictor it reaches (where the
    predictor declares its parameters as a dataclass)."""
    from seqsched.predictors import PREDICTORS
    keys = [a for a in axes if a.kind == "predictor"]
    for name in dict.fromkeys(p.config.predictor for p in points):
        cls = PREDICTORS.get(name)
        if not keys or not dataclasses.is_dataclass(cls):
            continue
        known = init_params(cls)
        for axis in keys:
            if axis.name not in known:
                raise UserError(f"grid key {axis.key}: predictor {name} has no parameter "
                                f"{axis.name}; it takes {', '.join(sorted(known))}")
