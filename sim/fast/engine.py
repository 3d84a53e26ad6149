"""The array engine's SimPy driver: the same arrival process, router calls and step log as
`seqsched.sim.engine.Engine`, over trace positions instead of `Seq` objects.

Arrivals keep their own SimPy process (one event per distinct arrival time, a wake for an idle
replica), exactly as the baseline engine, so simultaneous events resolve in the same order and
the two engines produce the same records and step log.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy
from tqdm import tqdm

from seqsched.sim.engine import ROUTERS, STEP_COLUMNS, run_until_done
from seqsched.sim.fast.table import RequestTable

FAST_ROUTERS = ("round-robin", "least-loaded", "random")


class _Row:
    """What a router reads of a request (its trace position)."""

    __slots__ = ("idx",)

    def __init__(self, idx: int) -> None:
        self.idx = idx


@dataclass
class FastEngine:
    table: RequestTable
    router: str = "round-robin"
    seed: int = 0
    progress: bool = False
    env: simpy.Environment = field(default_factory=lambda: simpy.Environment(initial_time=0.0))

    def __post_init__(self) -> None:
        if self.router not in FAST_ROUTERS:
            raise ValueError(f"the array engine has no router {self.router!r}")
        self.replicas = []
        self.arrivals_done = False
        self.rng = np.random.default_rng(self.seed)
        self._arrival_s = self.table.arrival_s
        self.arrival_list = self._arrival_s.tolist()
        self._next = 0
        self._done = 0
        self._bar = None
        # the step log, one typed column each (kind is always "generate" here)
        self._log = [array("q"), array("d"), array("d"), array("q"), array("q"), array("q"),
                     array("q"), array("q")]

    # -- called by replicas ------------------------------------------------------------
    def time_to_next_arrival(self) -> float | None:
        if self._next >= len(self.table):
            return None
        return max(self.arrival_list[self._next] - self.env.now, 0.0)

    def finished(self, count: int) -> None:
        self._done += count
        if self._bar is not None:
            self._bar.update(count)

    def log_step(self, replica, start, end, rows, iterations, prefill, decode, kv_used) -> None:
        log = self._log
        log[0].append(replica)
        log[1].append(start)
        log[2].append(end)
        log[3].append(rows)
        log[4].append(iterations)
        log[5].append(prefill)
        log[6].append(decode)
        log[7].append(kv_used)

    # -- running -----------------------------------------------------------------------
    def _arrivals(self):
        route = ROUTERS[self.router]
        single = len(self.replicas) == 1
        times = self.arrival_list
        n = len(times)
        # where each group of simultaneous arrivals ends
        ends = (np.flatnonzero(np.diff(self._arrival_s)) + 1).tolist() + [n]
        env = self.env
        replicas = self.replicas
        for end in ends:
            t = times[self._next]
            if t > env.now:
                yield env.timeout(t - env.now)
            if single:
                add = replicas[0].add
                for i in range(self._next, end):
                    add(i)
                touched = (0,)
            else:
                touched = set()
                for i in range(self._next, end):
                    r = route(self, _Row(i))
                    replicas[r].add(i)
                    touched.add(r)
            self._next = end
            if end >= n:
                self.arrivals_done = True
                touched = range(len(replicas))
            for r in touched:
                replicas[r].wake()

    def run(self) -> None:
        if self.progress:
            self._bar = tqdm(total=len(self.table), desc="simulating", unit="req", leave=False)
        run_until_done(self.env, self._arrivals(), self.replicas, self._bar)

    # -- results -----------------------------------------------------------------------
    def records(self) -> pd.DataFrame:
        return self.table.records()

    def steps(self) -> pd.DataFrame:
        cols = [np.frombuffer(c, dtype=np.int64 if c.typecode == "q" else np.float64)
                for c in self._log]
        n = len(cols[0])
        data = {"replica": cols[0], "start_s": cols[1], "end_s": cols[2],
                "kind": np.full(n, "generate", dtype=object), "rows": cols[3],
                "iterations": cols[4], "prefill_tokens": cols[5], "decode_tokens": cols[6],
                "kv_used_tokens": cols[7]}
        return pd.DataFrame({k: data[k] for k in STEP_COLUMNS})

    @property
    def unfinished(self) -> int:
        return len(self.table) - self._done
