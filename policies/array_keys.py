"""The continuous policies' priority keys over arrays of requests, for the array engine: the
same total order as sorting by `policy.priority(seq)` (every key ends with the unique trace
position, and the float key of ltr is the same IEEE sum), computed by one `np.lexsort`
instead of a Python sort over running rows when a preemption victim is needed."""

from __future__ import annotations

import numpy as np

from seqsched.policies.continuous import ContinuousPolicy, LTRPolicy, SJFPolicy, SRPTPolicy


def _fcfs(policy, table, idx, generated):
    return (table.arrival_s[idx], idx)


def _sjf(policy, table, idx, generated):
    return (table.predicted[idx], table.arrival_s[idx], idx)


def _srpt(policy, table, idx, generated):
    return (np.maximum(table.predicted[idx] - generated, 0), table.arrival_s[idx], idx)


def _ltr(policy, table, idx, generated):
    arrival = table.arrival_s[idx]
    return (table.predicted[idx] + policy.aging * arrival, arrival, idx)


KEYS = {ContinuousPolicy: _fcfs, SJFPolicy: _sjf, SRPTPolicy: _srpt, LTRPolicy: _ltr}


def leading_keys(policy):
    """`keys(table)`: the first element of `policy.priority(seq)` for every request with
    nothing generated, as Python floats (rank + aging * arrival: the same IEEE operations on
    the same values), or None for a policy this module does not know."""
    if type(policy) not in KEYS:
        return None

    def keys(table):
        predicted = table.predicted
        rank = {ContinuousPolicy: 0.0, SJFPolicy: predicted, LTRPolicy: predicted,
                SRPTPolicy: np.maximum(predicted, 0)}[type(policy)]
        return (rank + policy.aging * table.arrival_s).tolist()
    return keys


def priority_order(policy):
    """`order(table, idx, generated)`: positions sorted by the policy's priority (lowest key
    first), or None for a policy this module does not know."""
    keys = KEYS.get(type(policy))
    if keys is None:
        return None

    def order(table, idx, generated):
        return np.lexsort(keys(policy, table, idx, generated)[::-1])
    return order
