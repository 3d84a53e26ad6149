"""What dominates the error of a replayed recorded run: the same replay as `seqsched validate
--measured` with every modelled iteration time scaled by a factor (1.00 = the model as built).

    .venv/bin/python benchmarks/replay_sensitivity.py [RUN] [--gpu RTX-PRO-6000] [--scales ...]

A diagnostic, not a fit: the scaled rows show how TTFT (queueing for one of max_num_seqs
slots, which free up at decode speed) follows a small error in the per-iteration time.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from seqsched.analysis.measured import error_table, sim_latencies
from seqsched.app.run import build_cost_model, execute, prepare
from seqsched.backends.executor import CostModelExecutor
from seqsched.traces.recorded import read_recorded

RUN = Path(os.environ.get("SEQSCHED_DATA", "/work/shared/data"),
           "serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19")
METRICS = ("ttft_mean_ms", "ttft_p50_ms", "tpot_mean_ms", "tpot_p50_ms", "e2e_mean_ms",
           "e2e_p50_ms")


class Scaled:
    """A cost model whose iteration times are `factor` x the inner model's."""

    def __init__(self, inner, factor: float) -> None:
        self.inner, self.factor, self.name = inner, factor, inner.name

    def __getattr__(self, key):
        return getattr(self.inner, key)

    def prefill_time(self, *args, **kw):
        return self.inner.prefill_time(*args, **kw) * self.factor

    def decode_times(self, *args, **kw):
        return self.inner.decode_times(*args, **kw) * self.factor


def main() -> None:
    from seqsched.app.cli import build_parser
    from seqsched.app.measured_cli import measured_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", default=str(RUN))
    p.add_argument("--gpu", default="RTX-PRO-6000")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.03, 1.05])
    a = p.parse_args()
    if not Path(a.run).exists():
        raise SystemExit(f"no recorded run at {a.run} (the shared data folder is absent)")
    run = read_recorded(a.run)
    args = build_parser().parse_args(["validate", "--measured", a.run, "--gpu", a.gpu])
    cfg = measured_config(args, run)
    base = build_cost_model(cfg)
    print(f"{run.name}: {cfg.gpu} / {cfg.model}, {base.name}; error % vs measured")
    print("scale  " + "  ".join(f"{m:>13}" for m in METRICS))
    for f in a.scales:
        res = execute(prepare(run.trace, cfg, executor=CostModelExecutor(Scaled(base, f))))
        t = error_table(sim_latencies(res.records), run.measured).set_index("metric")
        print(f"{f:5.2f}  " + "  ".join(f"{t.loc[m, 'error_pct']:+13.1f}" for m in METRICS))


if __name__ == "__main__":
    main()
