"""The SimPy engine: arrivals -> router -> replicas; collects RequestRecords and a step log."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy
from tqdm import tqdm

from seqsched.sim.client import ClosedLoop
from seqsched.sim.dp_router import route_vllm_dp
from seqsched.sim.router import route_power_of_two, route_prefix_aware
from seqsched.sim.sequence import Seq

STEP_COLUMNS = ["replica", "start_s", "end_s", "kind", "rows", "iterations", "prefill_tokens",
                "decode_tokens", "kv_used_tokens"]
# record column -> Seq attribute
RECORD_FIELDS = {"id": "id", "replica": "replica", "arrival_s": "arrival_s",
                 "prompt_tokens": "prompt_tokens", "output_tokens": "output_tokens",
                 "predicted": "predicted", "generated_tokens": "generated",
                 "first_scheduled_s": "first_scheduled_s", "first_token_s": "first_token_s",
                 "finish_s": "finish_s", "attempts": "attempts", "preemptions": "preemptions",
                 "wasted_tokens": "wasted_tokens", "recomputed_tokens": "recomputed_tokens",
                 "slot_tokens": "slot_tokens",
                 "slot_tokens_all": "slot_tokens_all", "truncated": "truncated"}
RECORD_COLUMNS = [*list(RECORD_FIELDS)[:11], "failed_attempts", *list(RECORD_FIELDS)[11:]]
# record columns of the serving features, present only when the feature is on (a run without
# them writes the same records as before): column -> Seq attribute
FEATURE_FIELDS = {"swap": {"swapped_tokens": "swapped_tokens"},
                  "prefix": {"cached_tokens": "cached_tokens"},
                  "disagg": {"prefill_replica": "prefill_replica",
                             "prefill_end_s": "prefill_end_s",
                             "kv_transfer_s": "kv_transfer_s"},
                  "lockstep": {},     # DP lockstep (sim/lockstep.py): no record columns
                  "pipeline": {},     # pipeline parallelism (sim/pipeline.py): none either
                  "max-concurrency": {"client_arrival_s": "client_arrival_s"}}  # sim/client.py


def route_round_robin(engine: "Engine", seq: Seq) -> int:
    return seq.idx % len(engine.replicas)


def route_least_loaded(engine: "Engine", seq: Seq) -> int:
    loads = [r.outstanding for r in engine.replicas]
    return int(np.argmin(loads))


def route_random(engine: "Engine", seq: Seq) -> int:
    return int(engine.rng.integers(len(engine.replicas)))


ROUTERS = {"round-robin": route_round_robin, "least-loaded": route_least_loaded,
           "random": route_random, "power-of-two": route_power_of_two,
           "prefix-aware": route_prefix_aware, "vllm-dp": route_vllm_dp}


@dataclass
class Engine:
    seqs: list[Seq]
    router: str = "round-robin"
    seed: int = 0
    max_new_tokens: int = 512
    progress: bool = False
    features: tuple[str, ...] = ()      # serving features on (keys of FEATURE_FIELDS)
    disagg: object = None               # prefill/decode disaggregation (sim/disagg.py)
    max_concurrency: int | None = None  # vLLM bench's client cap (sim/client.py)
    env: simpy.Environment = field(default_factory=lambda: simpy.Environment(initial_time=0.0))

    def __post_init__(self) -> None:
        self.replicas = []
        self.arrivals_done = False
        self.rng = np.random.default_rng(self.seed)
        self._arrival_s = np.fromiter((s.arrival_s for s in self.seqs), float, len(self.seqs))
        self._next = 0
        self._finished: list[Seq] = []
        self._steps: list[tuple] = []
        self._bar = None
        self.route_state: dict = {}     # routers that remember (sim/router.py)
        self.client = None if self.max_concurrency is None else ClosedLoop(self.max_concurrency)

    # -- called by replicas ------------------------------------------------------------
    def time_to_next_arrival(self, replica: int | None = None) -> float | None:
        if self.client is not None:
            arrival = self.client.next_send_s(self, replica)
        else:
            arrival = (None if self._next >= len(self.seqs)
                       else max(self._arrival_s[self._next] - self.env.now, 0.0))
        if self.disagg is not None and replica is not None:
            return self.disagg.next_input_s(self, replica, arrival)
        return arrival

    def inputs_done(self, replica: int) -> bool:
        """No request will reach `replica` any more."""
        if self.disagg is not None:
            return self.disagg.inputs_done(self, replica)
        return self.arrivals_done

    def finished(self, seq: Seq) -> None:
        if self.disagg is not None and self.disagg.hand_off(self, seq):
            return                      # prefilled: its KV goes on to a decode replica
        self._finished.append(seq)
        if self.client is not None:
            self.client.release(self)
        if self._bar is not None:
            self._bar.update(1)

    def log_step(self, *row) -> None:
        self._steps.append(row)

    def deliver(self, seq: Seq) -> int:
        """Route an arriving request and add it to its replica; returns the replica."""
        route = ROUTERS[self.router]
        r = route(self, seq) if self.disagg is None else self.disagg.route(self, route, seq)
        self.replicas[r].add(seq)
        return r

    def send(self, i: int, at: float | None) -> int:
        """The closed-loop client sends request `i` (sim/client.py), at `at` when it waited."""
        seq = self.seqs[i]
        seq.client_arrival_s = seq.arrival_s
        if at is not None:
            seq.arrival_s = at
        return self.deliver(seq)

    # -- running -----------------------------------------------------------------------
    def _arrivals(self):
        times = self._arrival_s
        n = len(self.seqs)
        while self._next < n:
            t = times[self._next]
            if t > self.env.now:
                yield self.env.timeout(t - self.env.now)
            # every request arriving at this instant, in one go
            end = int(np.searchsorted(times, t, side="right"))
            touched = set()
            for seq in self.seqs[self._next:end]:
                touched.add(self.deliver(seq))
            self._next = end
            if self._next >= n:
                self.arrivals_done = True
                touched = range(len(self.replicas))
            for r in touched:
                self.replicas[r].wake()

    def run(self) -> None:
        if self.progress:
            self._bar = tqdm(total=len(self.seqs), desc="simulating", unit="req", leave=False)
        if self.disagg is not None:
            self.disagg.setup(self)
        arrivals = self._arrivals() if self.client is None else self.client.arrivals(self)
        run_until_done(self.env, arrivals, self.replicas, self._bar)

    # -- results -----------------------------------------------------------------------
    def records(self) -> pd.DataFrame:
        """One RequestRecord per request, in trace order."""
        seqs = sorted(self._finished, key=lambda s: s.idx)
        df = pd.DataFrame({col: [getattr(s, attr) for s in seqs]
                           for col, attr in RECORD_FIELDS.items()})
        df["failed_attempts"] = df["attempts"] - 1 - df["preemptions"]
        extra = {col: attr for f in self.features for col, attr in FEATURE_FIELDS[f].items()}
        for col, attr in extra.items():
            df[col] = [getattr(s, attr) for s in seqs]
        return df[RECORD_COLUMNS + list(extra)]

    def steps(self) -> pd.DataFrame:
        return pd.DataFrame(self._steps, columns=STEP_COLUMNS)

    @property
    def unfinished(self) -> int:
        return len(self.seqs) - len(self._finished)


def run_until_done(env: simpy.Environment, arrivals, replicas, bar) -> None:
    """Run the arrival process until every replica's process has ended (both engines), then
    close the progress bar whatever happened. `arrivals` None: the replicas pull their own."""
    try:
        if arrivals is not None:
            env.process(arrivals)
        env.run(until=simpy.AllOf(env, [r.process for r in replicas]))
    finally:
        if bar is not None:
            bar.close()
