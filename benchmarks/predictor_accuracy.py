"""Length-predictor accuracy on the paper's Alpaca/Vicuna data, and its scheduling impact.

    python benchmarks/predictor_accuracy.py --data ../shared/data/alpaca_vicuna_lengths_train.jsonl

Train the proxy model (packaged all-MiniLM-L6-v2 + heads) on a fixed 9,000 of the 10,000 prompts
(seeded permutation), report on the other 1,000 (the paper also reports on 1,000 held-out
prompts):
- the paper's metric: |prediction - max over the four sampled lengths| -> MAE, Acc-50, Acc-100
  (paper's LoRA-tuned Vicuna-7B: 62, 59%, 81%); also against the paper's rounded training
  label (max rounded up to 50) and against the greedy length (what the schedule runs);
- quantile coverage (p50 / p90), Spearman and Kendall tau;
- throughput on this machine: prompts/s of the full predictor (encoder + head, no cache) for
  each torch thread count of `--threads` (0 = torch's default), after a warm-up, with the load
  average it ran under and the ratio to the first count;
- scheduling impact: the paper's binned + VBS + FCR schedule (paper-a100 preset, cap 512) on
  the held-out prompts with the proxy's predictions vs the max-of-samples ground truth, the
  proxy's cost modelled (predictors/proxy/cost.py) on the served A100 and on one host core.
Embeddings are cached by content hash under $SEQSCHED_CACHE (default ~/.cache/seqsched).

    python benchmarks/predictor_accuracy.py --speed-model DIR --threads 1,0
measures only the throughput of a trained model folder (no training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER = {"mae": 62.0, "acc50": 0.59, "acc100": 0.81}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                          / "alpaca_vicuna_lengths_train.jsonl"))
    ap.add_argument("--test", type=int, default=1000, help="held-out prompts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heads", default="classification,regression,quantile",
                    help="comma-separated proxy heads to train; the first is the one scheduled")
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--finetune", type=int, default=1,
                    help="also fine-tune the encoder + a classification head (0: skip)")
    ap.add_argument("--ft-layers", type=int, default=4,
                    help="fine-tune the top K encoder layers (0: all; all is ~3x slower on CPU)")
    ap.add_argument("--ft-epochs", type=int, default=5)
    ap.add_argument("--ft-bucket", type=int, default=25)
    ap.add_argument("--threads", default="1,0",
                    help="torch thread counts to time inference with, comma-separated (0: "
                         "torch's default); training uses the first")
    ap.add_argument("--speed-model", help="only time this trained model folder's inference")
    ap.add_argument("--speed-n", type=int, default=1000, help="prompts timed")
    ap.add_argument("--json", help="write all numbers to this JSON file")
    args = ap.parse_args(argv)

    import torch

    # 0 = torch's default, resolved before anything changes it
    threads = [int(t) or torch.get_num_threads() for t in args.threads.split(",") if t.strip()]
    torch.set_num_threads(threads[0])
    from seqsched.predictors.basic import FixedPredictor, MaxOfSamplesPredictor
    from seqsched.predictors.metrics import evaluate, round_up, target_lengths
    from seqsched.predictors.proxy import ProxyConfig, ProxyModel, trace_prompts
    from seqsched.predictors.proxy.cost import Placement, encoder_tokens, proxy_shape
    from seqsched.traces.io import load_trace
    from seqsched.traces.request import Trace

    if not Path(args.data).is_file():
        print(f"{args.data}: no such file; pass --data PATH to alpaca_vicuna_lengths_train.jsonl")
        return 2
    trace = load_trace(args.data)
    perm = np.random.default_rng(args.seed).permutation(len(trace))
    test_idx, train_idx = perm[:args.test], perm[args.test:]
    sub = (lambda idx: Trace(trace.df.iloc[idx].reset_index(drop=True), name=trace.name))
    train, test = sub(train_idx), sub(test_idx)
    y_train = target_lengths(train)
    mx, greedy = target_lengths(test), target_lengths(test, "greedy")
    targets = {"max (paper metric)": mx, "max rounded up to 50": round_up(mx), "greedy": greedy}
    results = {"data": args.data, "train": len(train), "test": len(test), "rows": {}}
    n_speed = min(len(test), args.speed_n)
    speed_trace = sub(test_idx[:n_speed])
    if args.speed_model:
        model = ProxyModel.load(args.speed_model)
        results["speed"] = speed_table({"model": model}, speed_trace, threads)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=float))
        return 0

    def report(label, pred, quant=None):
        rows = {t: evaluate(pred, y, quant) for t, y in targets.items()}
        results["rows"][label] = rows
        r = rows["max (paper metric)"]
        g = rows["greedy"]
        print(f"{label:34s} MAE {r['mae']:6.1f}  Acc-50 {r['acc50']:5.1%}  Acc-100 "
              f"{r['acc100']:5.1%}  rho {r['spearman']:.3f}  tau {r['kendall']:.3f}  | greedy: "
              f"MAE {g['mae']:6.1f} Acc-50 {g['acc50']:5.1%} Acc-100 {g['acc100']:5.1%}"
              + (f"  | coverage p50 {r['coverage_p50']:.2f} p90 {r['coverage_p90']:.2f}"
                 if quant else ""), flush=True)

    print(f"{len(train)} train / {len(test)} test prompts (seed {args.seed})")
    report("constant (train median of max)", np.full(len(test), np.median(y_train)))
    cols = [c for c in test.df.columns if c.startswith("len_t")]
    report("one real sample (T=0.7 length)", test.df["len_t0.7"].to_numpy() if "len_t0.7" in cols
           else greedy)
    models = {}
    for head in [h.strip() for h in args.heads.split(",") if h.strip()]:
        cfg = ProxyConfig(head=head, ensemble=args.ensemble, epochs=args.epochs, seed=args.seed)
        t0 = time.perf_counter()
        model = ProxyModel.train(trace_prompts(train), train.prompt_tokens, y_train, cfg,
                                 progress=True, threads=threads[0])
        train_s = time.perf_counter() - t0
        point, quant, _ = model.predict(trace_prompts(test), test.prompt_tokens, use_cache=True)
        report(f"proxy {head} (x{args.ensemble})", point, quant)
        results["rows"][f"proxy {head} (x{args.ensemble})"]["train_s"] = train_s
        models[head] = (model, point, quant)

    if args.finetune:
        label = (f"proxy fine-tuned ({'all' if args.ft_layers == 0 else f'top {args.ft_layers}'}"
                 f" layers, classification /{args.ft_bucket})")
        cfg = ProxyConfig(head="classification", bucket=args.ft_bucket, hidden=256, lr=1e-3,
                          seed=args.seed, finetune_layers=args.ft_layers)
        t0 = time.perf_counter()
        model = ProxyModel.train(trace_prompts(train), train.prompt_tokens, y_train, cfg,
                                 progress=True, finetune_encoder=True, epochs=args.ft_epochs,
                                 threads=threads[0])
        train_s = time.perf_counter() - t0
        point, quant, _ = model.predict(trace_prompts(test), test.prompt_tokens, use_cache=False)
        report(label + ", median", point, quant)
        results["rows"][label + ", median"]["train_s"] = train_s
        # the same net decoded to the point most likely within 50 and 100 tokens
        model.cfg.decode = "within"
        p_w, q_w, _ = model.predict(trace_prompts(test), test.prompt_tokens, use_cache=False)
        report(label + ", within-50/100 decode", p_w, q_w)
        models["fine-tuned"] = (model, p_w, q_w)

    # throughput on this machine: the whole predictor, encoder included, no cache
    results["speed"] = speed_table({h: m[0] for h, m in models.items()}, speed_trace, threads)
    for head0 in models:
        point_s, _, _ = models[head0][0].predict(trace_prompts(speed_trace),
                                                 speed_trace.prompt_tokens, use_cache=False)
        assert np.array_equal(point_s, models[head0][1][:n_speed]), "cache changed predictions"
    head0 = next(iter(models))

    # scheduling impact
    try:
        from seqsched.app.run import RunConfig, simulate
    except ImportError as e:            # the engine is not there: keep the accuracy numbers
        print(f"scheduling impact skipped: sim.run not importable ({e})")
        simulate = None
    if simulate is not None:
        runs = {"max-of-samples (GT)": MaxOfSamplesPredictor()}
        for h in models:
            shape = proxy_shape(models[h][0])
            tokens = encoder_tokens(models[h][0], trace_prompts(test))
            for on in ("gpu", "cpu"):
                runs[f"proxy {h}, on {on}"] = FixedPredictor(
                    models[h][1], Placement(on).cost(shape, tokens), f"proxy-{h}")
        runs[f"proxy {head0}, cost not charged"] = FixedPredictor(models[head0][1],
                                                                  name="proxy-free")
        cfg = RunConfig(policy="binned", policy_params={"vbs": True, "fcr": True},
                        backend="paper-a100", max_new_tokens=512, seed=args.seed)
        results["schedule"] = {}
        print(f"\nbinned + VBS + FCR, paper-a100, cap 512, {len(test)} held-out requests:")
        for label, pred in runs.items():
            s = simulate(test, cfg, predictor=pred).summary
            keep = {k: float(s[k]) for k in ("throughput_rps", "avg_processed_length",
                                            "effective_token_ratio", "fcr_recompute_ratio",
                                            "makespan_s")}
            results["schedule"][label] = keep
            print(f"  {label:34s} {keep['throughput_rps']:.3f} req/s  avg processed "
                  f"{keep['avg_processed_length']:.1f}  effective {keep['effective_token_ratio']:.1%}"
                  f"  recomputed {keep['fcr_recompute_ratio']:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


def speed_table(models: dict, trace, threads: list[int]) -> dict:
    """Prompts/s of each model's inference (no embedding cache) for each torch thread count,
    with the 1-minute load average after each and the ratio to the first count."""
    import os

    from seqsched.predictors.proxy import trace_prompts
    from seqsched.predictors.proxy.threads import torch_threads

    out = {}
    prompts = trace_prompts(trace)
    print(f"\nthroughput on this machine ({os.cpu_count()} CPUs), {len(trace)} prompts, "
          "no embedding cache:")
    for label, model in models.items():
        model.predict(prompts[:32], trace.prompt_tokens[:32], use_cache=False)   # warm-up
        rows = []
        for n in threads:
            with torch_threads(n) as used:
                t0 = time.perf_counter()
                model.predict(prompts, trace.prompt_tokens, use_cache=False)
                wall = time.perf_counter() - t0
            rows.append({"threads": used, "prompts_per_s": len(prompts) / wall,
                         "loadavg_1m": os.getloadavg()[0]})
            r = rows[-1]
            print(f"  proxy {label:12s} {used} thread(s): {r['prompts_per_s']:7.1f} prompts/s "
                  f"(x{r['prompts_per_s'] / rows[0]['prompts_per_s']:.2f} vs {rows[0]['threads']}"
                  f" thread(s)), load average {r['loadavg_1m']:.2f}", flush=True)
        out[label] = rows
    return out


if __name__ == "__main__":
    raise SystemExit(main())
