"""Scheduling policies by CLI name. A policy has `name`, `priority(seq)` (the order of the
replica's waiting queue) and `schedule(view) -> Step | None`; it never mutates engine state."""

from __future__ import annotations

import dataclasses

from seqsched.policies.continuous import ContinuousPolicy, LTRPolicy, SJFPolicy, SRPTPolicy
from seqsched.policies.gittins import GittinsPolicy, SRPTExpectedPolicy
from seqsched.policies.mlfq import MLFQPolicy
from seqsched.policies.static import BinnedPolicy, SortedPolicy, VanillaPolicy
from seqsched.sim.step import Step, StepResult
from seqsched.common.errors import UserError, did_you_mean
from seqsched.common.params import VALUE_KINDS, init_params

POLICIES = {
    "vanilla": VanillaPolicy,
    "sorted": SortedPolicy,
    "binned": BinnedPolicy,
    "fcfs": ContinuousPolicy,
    "sjf": SJFPolicy,
    "srpt": SRPTPolicy,
    "ltr": LTRPolicy,
    "mlfq": MLFQPolicy,
    "gittins": GittinsPolicy,
    "srpt-expected": SRPTExpectedPolicy,
}
STATIC_POLICIES = ("vanilla", "sorted", "binned")


def make_policy(name: str, **params):
    if name not in POLICIES:
        raise UserError(f"unknown policy {name!r}{did_you_mean(name, POLICIES)}; choose one of "
                        f"{', '.join(POLICIES)}")
    cls = POLICIES[name]
    known = init_params(cls)
    unknown = sorted(set(params) - known)
    if unknown:
        raise UserError(f"policy {name} has no parameter {', '.join(unknown)}; "
                        f"it takes {', '.join(sorted(known))}")
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in params.items():
        kind = VALUE_KINDS.get(str(types[key]))      # annotations are strings (PEP 563)
        if kind is not None and not kind[1](value):
            raise UserError(f"policy {name}: {key.replace('_', '-')} must be {kind[0]}, "
                            f"got {value!r}")
    return cls(**params)


__all__ = ["POLICIES", "STATIC_POLICIES", "make_policy", "Step", "StepResult"]
