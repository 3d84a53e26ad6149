"""The array engine's SimPy driver: the same arrival process, router calls and step log as
`seqsched.sim.engine.Engine`, over trace positions instead of `Seq` objects.

With several replicas, arrivals keep their own SimPy process (one event per distinct arrival
time, a wake for an idle replica), exactly as the baseline engine, so simultaneous events
resolve in the same order and the two engines produce the same records and step log. A lone
replica pulls them itself where the arrival process would have handed them over
(`sim/fast/arrivals.py`): one SimPy event per step instead of one more per arrival.

vLLM bench's `--max-concurrency` runs the object engine's closed-loop client
(`sim/client.py`) as the arrival process, with any number of replicas: a request's send is
written to the table's `arrival_s` (the trace's arrivals stay in `_arrival_s` and the
`client_arrival_s` record column) and a finish releases its slot where the object engine's
does, one finished row at a time.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy
from tqdm import tqdm

from seqsched.sim.client import ClosedLoop
from seqsched.sim.engine import ROUTERS, STEP_COLUMNS, run_until_done
from seqsched.sim.fast.arrivals import fire_times
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
    max_concurrency: int | None = None  # vLLM bench's client cap (sim/client.py)
    env: simpy.Environment = field(default_factory=lambda: simpy.Environment(initial_time=0.0))

    def __post_init__(self) -> None:
        if self.router not in FAST_ROUTERS:
            raise ValueError(f"the array engine has no router {self.router!r}")
        self.replicas = []
        self.arrivals_done = False
        self.rng = np.random.default_rng(self.seed)
        self._arrival_s = self.table.arrival_s
        self.client = None
        if self.max_concurrency is not None:
            self.client = ClosedLoop(self.max_concurrency)
            self.table.arrival_s = self._arrival_s.copy()    # the sends, written at send
        self.arrival_list = self._arrival_s.tolist()
        self.n_requests = len(self.arrival_list)
        self._next = 0
        self._done = 0
        self._bar = None
        # the step log, 8 numbers a step (whole numbers below 2**53 are exact as doubles)
        self._log = array("d")
        self.log_extend = self._log.extend
        # a lone replica pulls its arrivals (pull_mode): the arrival process's steps, as
        # (time, end of the arrivals it handles), and the next one's position
        self.pull_mode = False
        self.fire_h: list[float] = []
        self._fire_end: list[int] = []
        self.fire = 0

    # -- called by replicas ------------------------------------------------------------
    def time_to_next_arrival(self, replica: int | None = None) -> float | None:
        if self.client is not None:
            return self.client.next_send_s(self, replica)
        if self._next >= self.n_requests:
            return None
        return max(self.arrival_list[self._next] - self.env.now, 0.0)

    def finished(self, count: int, rep=None) -> None:
        self._done += count
        if self._bar is not None:
            self._bar.update(count)
        if self.client is not None:
            # the object engine releases a slot per finished row, the rows after it in the
            # step still running (what a least-loaded router counts)
            for left in range(count - 1, -1, -1):
                rep.finishing = left
                self.client.release(self)

    def send(self, i: int, at: float | None) -> int:
        """The closed-loop client sends request `i`, at `at` when it waited for a slot."""
        replicas = self.replicas
        r = 0 if len(replicas) == 1 else ROUTERS[self.router](self, _Row(i))
        rep = replicas[r]
        if at is not None:
            self.table.arrival_s[i] = at
            self.arrival_list[i] = at
            if rep.leading is not None:          # its key with the send as its arrival
                rep.leading[i] = rep._priority(i, 0)[0]
        rep.add(i)
        return r

    def pull(self, now: float, mark: int) -> None:
        """Hand the lone replica, resuming at `now`, what the arrival process would have by
        then: the groups handled before `now`, and the one at `now` if it was the next group
        (`mark`) when the replica last scheduled (`sim/fast/arrivals.py`)."""
        h, f = self.fire_h, self.fire
        nf = len(h)
        if f == nf or h[f] > now or (h[f] == now and f != mark):
            return
        add = self.replicas[0].add
        i = self._next
        while f < nf and (h[f] < now or (h[f] == now and f == mark)):
            end, at = self._fire_end[f], h[f]
            while i < end:
                add(i, at)
                i += 1
            f += 1
        self._next, self.fire = i, f
        if f == nf:
            self.arrivals_done = True

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
        self.pull_mode = len(self.replicas) == 1 and self.client is None
        if self.pull_mode:
            self.fire_h, self._fire_end = fire_times(self._arrival_s)
            self.arrivals_done = not self.fire_h
        arrivals = (None if self.pull_mode else self._arrivals() if self.client is None
                    else self.client.arrivals(self))
        run_until_done(self.env, arrivals, self.replicas, self._bar)

    # -- results -----------------------------------------------------------------------
    def records(self) -> pd.DataFrame:
        df = self.table.records()
        if self.client is not None:          # the object engine's feature column
            df["client_arrival_s"] = self._arrival_s
        return df

    def steps(self) -> pd.DataFrame:
        log = np.frombuffer(self._log, dtype=np.float64).reshape(-1, 8)
        cols = [log[:, j].copy() if j in (1, 2) else log[:, j].astype(np.int64)
                for j in range(8)]
        n = len(log)
        data = {"replica": cols[0], "start_s": cols[1], "end_s": cols[2],
                "kind": np.full(n, "generate", dtype=object), "rows": cols[3],
                "iterations": cols[4], "prefill_tokens": cols[5], "decode_tokens": cols[6],
                "kv_used_tokens": cols[7]}
        return pd.DataFrame({k: data[k] for k in STEP_COLUMNS})

    @property
    def unfinished(self) -> int:
        return len(self.table) - self._done
