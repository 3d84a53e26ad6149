"""Two measurements of the same GPU + vLLM, operator family by operator family: each built-in
aiconfigurator kernel-table profile (`<name>-aic`, scripts/derive_kernel_profiles.py) beside
the built-in profile of the same GPU x model x TP from another source (the LLMServingSim
bundle on the RTX PRO 6000: vLLM 0.19.0 on both sides), at the same shapes. The calibration
report per profile the issue asks for: where do two independent kernel measurements disagree?

Families (microseconds per iteration, every layer included):
- GEMM: QKV, O, gate/up, down projections, by the iteration's tokens;
- elementwise: norms, rotary, activation, q/k norm, embedding, final norm, by tokens;
- LM head, sampler: by sequences;
- attention: a prefill chunk of q tokens on p cached ones (one sequence), n decode rows at
  context c, and a mixed batch (one chunk of q tokens beside n decode rows at c);
- all-reduce (TP > 1), by tokens.
With `--run DIR` (a recorded run, as benchmarks/kernel_profile_accuracy.py replays it), also
the run's own iterations: the shapes of every iteration of its replay on the reference
profile, timed by both profiles family by family (seconds summed over the run).

    .venv/bin/python benchmarks/kernel_family_comparison.py [--pair REF AIC] [--run DIR]
    .venv/bin/python benchmarks/kernel_family_comparison.py --before OLD_PROFILES_DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from seqsched.backends.profile_registry import builtin_index, load_cost_profile

GEMM_OPS = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
TOKENS = (1, 16, 128, 512, 2048)
SEQS = (1, 16, 128)
PREFILL = ((128, 0), (512, 0), (2048, 0), (512, 1536), (1024, 4096))
DECODE = ((1, 512), (32, 1024), (128, 512), (128, 2048))
MIXED = ((1920, 128, 1024), (512, 100, 800), (64, 128, 1000))


def linear_families(cost, tokens, rows) -> dict:
    """Seconds of the token- and sequence-indexed families (arrays like `tokens`)."""
    tokens = np.asarray(tokens, dtype=float)
    rows = np.asarray(rows, dtype=float)
    out = {"GEMM": np.zeros_like(tokens), "elementwise": np.zeros_like(tokens)}
    for op in cost.dense:
        if op.name == "router_gemm":        # the bundle's MoE table includes its router
            out["MoE"] = out.get("MoE", np.zeros_like(tokens)) + op.seconds(tokens)
            continue
        out["GEMM" if op.name in GEMM_OPS else "elementwise"] += op.seconds(tokens)
    for op in cost.per_sequence:
        name = "LM head" if op.name == "lm_head" else op.name
        out[name] = out.get(name, np.zeros_like(rows)) + op.seconds(rows)
    out.setdefault("sampler", np.zeros_like(rows))
    if cost.allreduce is not None:
        out["all-reduce"] = cost.allreduce.seconds(tokens * cost.allreduce_bytes_per_token)
    if cost.moe is not None:
        out["MoE"] = out.get("MoE", np.zeros_like(tokens)) + cost.moe.seconds(tokens)
    if cost.iteration_overhead_s:
        out["overhead"] = np.full_like(tokens, cost.iteration_overhead_s)
    return out


def linear_total(cost, tokens, rows) -> float:
    return float(sum(np.sum(v) for v in linear_families(cost, tokens, rows).values()))


def prefill_attention(cost, q: int, p: int) -> float:
    return cost.prefill_time([q], [p]) - linear_total(cost, q, 1)


def decode_attention(cost, n: int, c: int) -> float:
    return float(cost.decode_times(n, n * c, 1)[0]) - linear_total(cost, n, n)


def mixed_attention(cost, q: int, n: int, c: int) -> float:
    return cost.prefill_time([q], [0], n, n * c) - linear_total(cost, q + n, 1 + n)


def pct(a: float, b: float) -> str:
    return f"{100.0 * (b - a) / a:+.1f}%" if a > 0 else ("n/a" if b == 0 else "missing")


def shape_rows(ref, aic) -> list[tuple]:
    rows = []
    for t in TOKENS:
        fr, fa = linear_families(ref, t, 1), linear_families(aic, t, 1)
        for fam in ("GEMM", "elementwise", "all-reduce"):
            if fam in fr or fam in fa:
                rows.append((fam, f"{t} tokens", float(fr.get(fam, 0)), float(fa.get(fam, 0))))
    for s in SEQS:
        fr, fa = linear_families(ref, 1, s), linear_families(aic, 1, s)
        for fam in ("LM head", "sampler"):
            rows.append((fam, f"{s} sequences", float(fr.get(fam, 0)), float(fa.get(fam, 0))))
    for q, p in PREFILL:
        rows.append(("attention, prefill", f"{q} new on {p} cached",
                     prefill_attention(ref, q, p), prefill_attention(aic, q, p)))
    for n, c in DECODE:
        rows.append(("attention, decode", f"{n} rows at context {c}",
                     decode_attention(ref, n, c), decode_attention(aic, n, c)))
    for q, n, c in MIXED:
        rows.append(("attention, mixed", f"{q} new + {n} rows at {c}",
                     mixed_attention(ref, q, n, c), mixed_attention(aic, q, n, c)))
    for n, c in DECODE[1:]:
        rows.append(("iteration, decode", f"{n} rows at context {c}",
                     float(ref.decode_times(n, n * c, 1)[0]),
                     float(aic.decode_times(n, n * c, 1)[0])))
    for q, n, c in MIXED[:1]:
        rows.append(("iteration, prefill", f"{q + n} new tokens", ref.prefill_time([q + n], [0]),
                     aic.prefill_time([q + n], [0])))
        rows.append(("iteration, mixed", f"{q} new + {n} rows at {c}",
                     ref.prefill_time([q], [0], n, n * c), aic.prefill_time([q], [0], n, n * c)))
    return rows


def print_shapes(ref_name: str, aic_name: str, ref, aic) -> None:
    source = builtin_index().get(ref_name, {}).get("source", "a profile file")
    print(f"\n{aic_name} vs {ref_name} ({source}; us per iteration, all layers)\n")
    print("| family | shape | reference | aiconfigurator | difference |")
    print("|---|---|---|---|---|")
    for fam, shape, a, b in shape_rows(ref, aic):
        print(f"| {fam} | {shape} | {a * 1e6:,.0f} | {b * 1e6:,.0f} | {pct(a, b)} |")


# -- the run's own iterations ----------------------------------------------------------------
def record_shapes(folder: Path, profile: str) -> list[tuple]:
    """Every iteration's shape of the run's replay (kernel_profile_accuracy's settings) on
    `profile`: ('p', chunks, cached, decode rows, their context sum, max, min) for a step's
    first iteration, ('d', rows, context sum, iterations, max, min) for its later ones (only
    those the engine kept)."""
    import dataclasses

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import kernel_profile_accuracy as kpa
    from seqsched.app.cost_setup import build_cost_model
    from seqsched.backends.executor import CostModelExecutor

    run, base = kpa.replay_setup(folder)
    cfg = dataclasses.replace(base, profile=profile)
    cost, log = build_cost_model(cfg), []

    class Recorder:             # the cost model, logging what the executor asks of it
        def __getattr__(self, name):
            return getattr(cost, name)

        def prefill_time(self, new, past, decode_rows=0, decode_context=0, decode_max=None,
                         decode_min=None):
            log.append(("p", np.array(new), np.array(past), int(decode_rows),
                        int(decode_context), decode_max, decode_min))
            return cost.prefill_time(new, past, decode_rows, decode_context, decode_max,
                                     decode_min)

        def decode_times(self, rows, context_sum, iterations, context_max=None,
                         context_min=None):
            log.append(("d", rows, context_sum, iterations, context_max, context_min))
            return cost.decode_times(rows, context_sum, iterations, context_max, context_min)

    class Keeping(CostModelExecutor):
        def run(self, step, iterations, stop_after_s):
            start = len(log)
            res = super().run(step, iterations, stop_after_s)
            for i in range(start, len(log)):
                if log[i][0] == "d":            # only the iterations the engine kept
                    log[i] = log[i][:3] + (res.iterations - 1,) + log[i][4:]
            return res

    kpa.simulate(run.trace, cfg, executor=Keeping(Recorder()))
    return [e for e in log if e[0] == "p" or e[3] > 0]


def run_families(cost, shapes: list[tuple]) -> dict:
    """(iteration kind, family) -> seconds over the run's iterations."""
    out: dict = {}

    def add(kind, fams, total):
        fams = {k: float(np.sum(v)) for k, v in fams.items()}
        fams["attention"] = total - sum(fams.values())
        for fam, v in fams.items():
            out[(kind, fam)] = out.get((kind, fam), 0.0) + v
    for e in shapes:
        if e[0] == "p":
            _, new, past, rows, ctx, cmax, cmin = e
            if not getattr(cost, "wants_decode_spread", False):
                cmax = cmin = None
            kind = "mixed" if rows and new.size else ("prefill" if new.size else "decode")
            add(kind, linear_families(cost, float(new.sum()) + rows, float(new.size + rows)),
                cost.prefill_time(new, past, rows, ctx, cmax, cmin))
        else:
            _, rows, ctx, k, cmax, cmin = e
            if not getattr(cost, "wants_decode_spread", False):
                cmax = cmin = None
            fams = linear_families(cost, float(rows), float(rows))
            add("decode", {f: v * k for f, v in fams.items()},
                float(cost.decode_times(rows, ctx, k, cmax, cmin).sum()))
    return out


def print_run(folder: Path, ref_name: str, aic_name: str) -> None:
    """Both profiles as the run replays them (expert parallelism over its DP x TP GPUs)."""
    import dataclasses

    import kernel_profile_accuracy as kpa
    from seqsched.app.cost_setup import build_cost_model
    run, base = kpa.replay_setup(folder)
    ref, aic = (build_cost_model(dataclasses.replace(base, profile=n))
                for n in (ref_name, aic_name))
    shapes = record_shapes(folder, ref_name)
    r, a = run_families(ref, shapes), run_families(aic, shapes)
    kinds = {"decode": sum(e[3] for e in shapes if e[0] == "d")
             + sum(1 for e in shapes if e[0] == "p" and e[1].size == 0),
             "mixed": sum(1 for e in shapes if e[0] == "p" and e[1].size and e[3]),
             "prefill": sum(1 for e in shapes if e[0] == "p" and e[1].size and not e[3])}
    print(f"\n{folder.name}: the replay's {sum(kinds.values()):,} iterations on {ref_name} "
          f"({', '.join(f'{v:,} {k}' for k, v in kinds.items())}), seconds summed\n")
    print("| iterations | family | reference | aiconfigurator | difference |")
    print("|---|---|---|---|---|")
    fams = sorted({f for _, f in r} | {f for _, f in a})
    for kind in ("decode", "mixed", "prefill", "all"):
        for fam in fams + ["total"]:
            def tot(d):
                return sum(v for (k, f), v in d.items()
                           if (kind == "all" or k == kind) and (fam == "total" or f == fam))
            x, y = tot(r), tot(a)
            if x or y:
                print(f"| {kind} | {fam} | {x:.3f} | {y:.3f} | {pct(x, y)} |")


def print_before_after(before: Path) -> None:
    """Each built-in `-aic` profile against its older version in `before` (e.g. `git archive
    REV backends/profiles | tar -x -C DIR`, then DIR/backends/profiles): iteration times."""
    shapes = [("decode, 1 row at 1024", lambda c: c.decode_times(1, 1024, 1)[0]),
              ("decode, 32 rows at 1024", lambda c: c.decode_times(32, 32 * 1024, 1)[0]),
              ("decode, 128 rows at 2048", lambda c: c.decode_times(128, 128 * 2048, 1)[0]),
              ("prefill, 2048 tokens", lambda c: c.prefill_time([2048], [0])),
              ("mixed, 1920 + 128 rows at 1024",
               lambda c: c.prefill_time([1920], [0], 128, 128 * 1024))]
    print("\n| profile | " + " | ".join(label for label, _ in shapes) + " |")
    print("|---|" + "---|" * len(shapes))
    for name in sorted(n for n in builtin_index() if n.endswith("-aic")):
        old_path = before / f"{name}.json"
        if not old_path.is_file():
            continue
        old, new = load_cost_profile(str(old_path)), load_cost_profile(name)
        cells = [f"{f(old) * 1e3:.2f} → {f(new) * 1e3:.2f} ms ({pct(f(old), f(new))})"
                 for _, f in shapes]
        print(f"| {name} | " + " | ".join(cells) + " |")


def default_pairs() -> list[tuple[str, str]]:
    index = builtin_index()
    return [(name[:-4], name) for name in sorted(index)
            if name.endswith("-aic") and name[:-4] in index]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=2, action="append", metavar=("REF", "AIC"),
                    help="reference and aiconfigurator profile (default: every built-in "
                         "'-aic' profile with a same-named reference)")
    ap.add_argument("--run", default=None,
                    help="also time a recorded run's iterations with the pair matching its "
                         "GPU x model x TP")
    ap.add_argument("--before", default=None, metavar="DIR",
                    help="a folder of older profile JSONs: print each built-in '-aic' "
                         "profile's iteration times before and after")
    args = ap.parse_args()
    if args.before:
        print_before_after(Path(args.before))
        return 0
    pairs = args.pair or default_pairs()
    for ref_name, aic_name in pairs:
        print_shapes(ref_name, aic_name, load_cost_profile(ref_name),
                     load_cost_profile(aic_name))
    if args.run:
        folder = Path(args.run)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import kernel_profile_accuracy as kpa
        _, base = kpa.replay_setup(folder)
        index = builtin_index()
        pair = next(((r, a) for r, a in pairs if index.get(r, {}).get("model") == base.model
                     and int(index[r]["tp"]) == base.tp), None)
        if pair is None:
            print(f"no pair for {base.model} TP{base.tp}")
            return 2
        print_run(folder, *pair)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
