"""Scheduling policies by CLI name. A policy has `name`, `priority(seq)` (the order of the
replica's waiting queue) and `schedule(view) -> Step | None`; it never mutates engine state."""

from __future__ import annotations

import dataclasses

from policies.continuous import ContinuousPolicy, SJFPolicy
from policies.static import BinnedPolicy, SortedPolicy, VanillaPolicy
from policies.step import Step, StepResult
from sim.errors import UserError

POLICIES = {
    "vanilla": VanillaPolicy,
    "sorted": SortedPolicy,
    "binned": BinnedPolicy,
    "fcfs": ContinuousPolicy,
    "sjf": SJFPolicy,
}
STATIC_POLICIES = ("vanilla", "sorted", "binned")


def make_policy(name: str, **params):
    if name not in POLICIES:
        raise UserError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    cls = POLICIES[name]
    known = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "name"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise UserError(f"policy {name} has no parameter {', '.join(unknown)}; "
                        f"it takes {', '.join(sorted(known))}")
    return cls(**params)


__all__ = ["POLICIES", "STATIC_POLICIES", "make_policy", "Step", "StepResult"]
