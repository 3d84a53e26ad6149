"""vLLM's async scheduling in the object engine's replica (`async_scheduling`, vLLM's
`--async-scheduling`, on by default in vLLM 0.19.0); the array engine's is
`sim/fast/lag.py`, with the same decisions.

What vLLM does (v0.19.0 = commit 2a69949bd): with `async_scheduling` the engine core keeps a
batch queue of two (`MultiprocExecutor` / `UniProcExecutor.max_concurrent_batches` = 2;
`EngineCore.step_with_batch_queue`, vllm/v1/engine/core.py). It schedules and submits step
n+1 and only then waits for step n's output, so step n+1 is planned while step n runs, from
the state after step n-1's output: the `AsyncScheduler` (vllm/v1/core/sched/
async_scheduler.py) counts step n's tokens as computed (`num_output_placeholders`), so prompt
chunks and decodes go on without a gap, and it does not schedule a request whose last token
step n produces (`Scheduler.schedule`: "Avoid scheduling an extra step when we are sure that
the previous step has reached request.max_tokens"). Hence, one iteration later than the
synchronous scheduler:
- a request that arrives while step n runs is seen by the plan of step n+2 (the plan of step
  n+1 was made when step n started);
- a request that finishes in step n keeps its place in the running list (max_num_seqs) and
  its KV blocks through the plan of step n+1; they are freed when step n's output is read,
  before the plan of step n+2.
When the GPU would idle (nothing to plan), vLLM plans again as soon as the outputs are read,
with everything known: here the plan is then made again at once without the lag. Preemption,
KV growth and chunking are otherwise the synchronous scheduler's.

Here the plan of step n+1 is made when step n ends (the replica's usual point), with the
requests that joined the waiting queue after step n's last iteration began hidden from it,
and the rows that finished in step n still holding their slot (`ReplicaView.held_slots`) and
KV blocks; a step planned with arrivals hidden or rows held runs one iteration, so the next
plan sees them.
A request stopped by EOS rather than by its length would in vLLM also take one wasted decode
row in step n+1; requests here stop at their known length (benchmark runs fix it), so no
such row is modelled.
"""

from __future__ import annotations

from collections import deque

from seqsched.sim.sequence import Status


class AsyncLag:
    """One replica's lag state: recent joins, the cutoff, and the rows still held. `depth`:
    how many steps ahead vLLM plans - 1 with a batch queue of two (one GPU); N - 1 under
    pipeline parallelism of N stages, whose batch queue holds N (app/pipeline_setup.py): the
    plan of step n+1 is made when step n+1-depth began, and a row finishing in step m holds
    its slot and KV through the plans of steps m+1 .. m+depth."""

    def __init__(self, env, depth: int = 1) -> None:
        self.env = env
        self.depth = depth
        self.cutoff: float | None = None   # when the plan being made was made in vLLM
        self.starts: deque = deque(maxlen=depth)   # last-iteration starts of recent steps
        self.recent: list = []             # (seq, time it joined the waiting queue)
        self.held: list = []               # rows that finished in that step (slot + KV held)
        self.older: deque = deque()        # [rows, plans still held] per finished step
        self.one_iteration = False         # the step being planned hides arrivals

    def joined(self, seq) -> None:
        self.recent.append((seq, self.env.now))

    def stepped(self, start: float, end: float, result) -> None:
        """A continuous step ran from `start` to `end`: the next plan is the one vLLM made
        when the last iteration of the step `depth` - 1 steps before it began."""
        n = result.iterations
        last = getattr(result, "last_iteration_s", None)
        if last is None:                   # an executor that does not say: mean iteration
            last = 0.0 if n <= 1 else result.first_iteration_s + (
                result.duration_s - result.first_iteration_s) * (n - 2) / (n - 1)
        self.starts.append(start + last)
        self.cutoff = self.starts[0]

    def plan(self, replica, schedule):
        """The next Step of `replica` under the lag; `schedule(held_slots)` asks its policy."""
        hidden = []
        cutoff = self.cutoff
        if cutoff is not None:
            hidden = [s for s, t in self.recent if t > cutoff
                      and s.status is Status.WAITING and s in replica.waiting]
            for s in hidden:
                replica.waiting.remove(s)
        self.recent = ([(s, t) for s, t in self.recent if t > cutoff]
                       if self.depth > 1 and cutoff is not None else [])
        self.cutoff = None
        if self.held:
            self.older.append([self.held, self.depth])
        self.held = []
        held = [s for rows, _ in self.older for s in rows]
        try:
            step = schedule(len(held))
        finally:
            for s in hidden:
                replica.waiting.add(s)
        for entry in self.older:
            entry[1] -= 1
        while self.older and (self.older[0][1] <= 0 or step is None):
            for s in self.older.popleft()[0]:   # that step's output is read: KV freed
                replica.kv.free(s)
                replica.executor.release(s)
        # what was hidden or held is known to the next plan: this step may not run on
        self.one_iteration = bool(hidden or held) and step is not None
        if step is None:                   # the GPU idles: every output is read
            self.starts.clear()
            self.recent = []
            if hidden or held:
                return self.plan(replica, schedule)    # plan with all known
        return step
