"""Arrivals pulled by a lone replica instead of one SimPy event per arrival.

With one replica nothing but the replica reads the waiting queue, so the arrival process's
events can be replayed where the replica looks: when it resumes, it takes every arrival the
arrival process (`Engine._arrivals`) would have handled by then. That process handles each
group of simultaneous arrivals at a time `h` that depends on the arrival times alone
(`fire_times`), and SimPy orders events of one instant by when they were scheduled, so at a
step's end T the replica has seen the groups with h < T and, of a group with h == T, only the
one that was already the next group when the step began (its timeout was scheduled before the
step's; a later group's was scheduled during the step, after it). An idle replica sleeps on a
SimPy timeout that ends exactly at the next group's h. SimPy stays the clock; the records and
step log are the same as with the arrival process (tests/core/test_fast_engine.py).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import simpy
from simpy.events import NORMAL


def fire_times(arrival_s: np.ndarray) -> tuple[list[float], list[int]]:
    """(h, end) per step of the arrival process: the SimPy time at which it handles the
    arrivals before trace position `end` (`yield env.timeout(t - env.now)` when t > now, from
    now = 0), one entry per step. Usually h is the arrival time itself; the exact float
    recursion runs only where rounding makes them differ."""
    n = len(arrival_s)
    if n == 0:
        return [], []
    ends = np.append(np.flatnonzero(np.diff(arrival_s)) + 1, n)
    t = arrival_s[ends - 1]
    prev = np.concatenate(([0.0], t[:-1]))
    exact = (prev + (t - prev) == t) & (t > prev)
    exact[0] = t[0] >= 0.0            # h = 0 + (t - 0) = t, or t = 0 handled at once
    if exact.all():
        return t.tolist(), ends.tolist()
    h_out: list[float] = []
    end_out: list[int] = []
    now = 0.0
    for ti, end in zip(t.tolist(), ends.tolist()):
        if ti > now:
            now = now + (ti - now)
            h_out.append(now)
            end_out.append(end)
        elif h_out:                    # handled in the same step as the group before
            end_out[-1] = end
        else:
            h_out.append(now)
            end_out.append(end)
    return h_out, end_out


def delay_to(now: float, t: float) -> float:
    """A delay d with now + d == t (what SimPy computes for a timeout's time) where one
    exists; otherwise one just short of t."""
    d = t - now
    while now + d > t:
        d = math.nextafter(d, -math.inf)
    while now + math.nextafter(d, math.inf) <= t and now + d < t:
        d = math.nextafter(d, math.inf)
    return d


def wake_at(env: simpy.Environment, t: float) -> simpy.Event:
    """An event SimPy processes at exactly time t >= now. A timeout lands there unless no
    delay rounds to t (now + d skips t when t is far above now); then the event goes into
    SimPy's queue at t the way `Environment.schedule` puts it there."""
    d = delay_to(env.now, t)
    if env.now + d == t:
        return env.timeout(d)
    event = env.event()
    event._ok, event._value = True, None
    heapq.heappush(env._queue, (t, NORMAL, next(env._eid), event))
    return event
