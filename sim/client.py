"""vLLM bench's `--max-concurrency`: a closed-loop client in front of the engine.

What vLLM's benchmark client does (vLLM v0.19.0, `vllm/benchmarks/serve.py`):
- it draws every request's arrival time up front (`get_request`, :243-340) and, as each
  comes due, creates one asyncio task for it (`asyncio.create_task(limited_request_func(..))`,
  :855-861), in arrival order;
- each task waits on `asyncio.Semaphore(max_concurrency)` before it sends (:789-798);
- the request function starts its clock when it sends (`st = time.perf_counter()` just
  before `session.post`, `vllm/benchmarks/lib/endpoint_request_func.py:191`), so TTFT and
  latency count from the send, not from the arrival;
- CPython's Semaphore is FIFO and lets no newcomer pass a waiter (CPython 3.11
  `asyncio/locks.py`: `locked()` is true while any waiter waits, :359-362; waiters queue in a
  deque, :377-380; `release` wakes the first, :400-420).

So request i is sent at max(its arrival, the moment fewer than N of the requests sent before
it are unfinished), in arrival order. Here a slot frees at the finishing request's step end
and the next request reaches the server at that instant (no network or client latency), so
the replica plans its next step with it. Records: `arrival_s` is the send (when the server
got the request; the clock vLLM bench times from), `client_arrival_s` the trace's arrival.

Both engines drive this one client: each gives `_arrival_s` (the trace's arrival times, never
changed), `_next` (the first request not sent), `send(i, at)` (request i reaches the server,
at `at` when it waited for a slot; returns its replica), `replicas` (each with `wake()` and
`busy_until`, the end of the step it runs) and `arrivals_done`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from seqsched.common.errors import UserError


@dataclass
class ClosedLoop:
    """At most `limit` requests in flight (sent, not finished); the rest wait, FIFO."""

    limit: int
    in_flight: int = 0
    _slot: simpy.Event | None = None    # the arrival process waits here while the cap binds

    def __post_init__(self) -> None:
        if not self.limit >= 1:
            raise UserError(f"max-concurrency must be >= 1, got {self.limit}")

    def arrivals(self, engine):
        """`Engine._arrivals` with the cap: the same steps (one per distinct arrival time)
        while a slot is free, so a cap that never binds changes nothing."""
        env, times = engine.env, engine._arrival_s
        n = len(times)
        while engine._next < n:
            if self.in_flight >= self.limit:
                self._slot = env.event()
                yield self._slot            # a finish sends the backlog (release)
                self._slot = None
                continue
            t = times[engine._next]
            if t > env.now:
                yield env.timeout(t - env.now)
            # every request arriving at this instant, as far as the free slots go
            self._send(engine, int(np.searchsorted(times, t, side="right")), None)

    def release(self, engine) -> None:
        """A request finished: its slot goes to the longest-waiting request, sent now."""
        self.in_flight -= 1
        if self._slot is None:              # nobody is waiting for a slot
            return
        now = engine.env.now
        self._send(engine, int(np.searchsorted(engine._arrival_s, now, side="right")), now)
        backlog = (engine._next < len(engine._arrival_s)
                   and engine._arrival_s[engine._next] <= now)
        if not backlog and self.in_flight < self.limit and not self._slot.triggered:
            self._slot.succeed()            # the process goes back to waiting for arrivals

    def _send(self, engine, end: int, at: float | None) -> None:
        """Send the waiting requests before trace position `end` while slots are free; `at`:
        their send time when it is not their arrival (they waited for a slot)."""
        start = engine._next
        end = min(end, start + self.limit - self.in_flight)
        if end <= start:
            return
        touched = set()
        for i in range(start, end):
            touched.add(engine.send(i, at))
        self.in_flight += end - start
        engine._next = end
        if end >= len(engine._arrival_s):
            engine.arrivals_done = True
            touched = range(len(engine.replicas))
            if self._slot is not None and not self._slot.triggered:
                self._slot.succeed()        # the process ends
        for r in touched:
            engine.replicas[r].wake()

    def next_send_s(self, engine, replica: int | None) -> float | None:
        """A lower bound on the time to the next send (a replica stops a multi-iteration step
        there): its arrival; while the cap binds, also the end of the first running step of
        another replica (only a finish frees a slot, and a request finishes at its step's end;
        the asking replica's own step already ends at its first finish)."""
        if engine._next >= len(engine._arrival_s):
            return None
        now = engine.env.now
        wait = max(engine._arrival_s[engine._next] - now, 0.0)
        if self.in_flight < self.limit:
            return wait
        ends = [r.busy_until - now for i, r in enumerate(engine.replicas)
                if i != replica and r.busy_until > now]
        return max(wait, min(ends)) if ends else None
