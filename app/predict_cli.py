"""`seqsched predict train | eval | annotate`.

    seqsched predict train --predictor proxy --data FILE --target max-over-samples --out DIR
    seqsched predict train --predictor proxy --finetune [--finetune-layers K] --data FILE --out DIR
    seqsched predict train --predictor llm-lora --base-model LLAMA_DIR --data FILE --out DIR
    seqsched predict eval --model DIR --data FILE [--out REPORT_DIR]
    seqsched predict annotate --trace FILE --predictor proxy --param model=DIR --out FILE
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError


def _bars() -> bool:
    """Progress bars on a terminal only: a log file or a pipe gets none."""
    return sys.stderr.isatty()


TRAINABLE = ("proxy", "llm-lora")


def _params(items: list[str] | None) -> dict:
    from seqsched.app.cli import parse_params

    return parse_params(items, "predictor")


def read_trace(path: str):
    from seqsched.traces.io import load_trace

    if not Path(path).exists():
        raise UserError(f"{path}: no such file; give the path of a trace / length data file")
    return load_trace(path)


def _split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 <= holdout < 1:
        raise UserError(f"--holdout must be in [0, 1), got {holdout}")
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(n * holdout))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _subset(trace, idx):
    from seqsched.traces.request import Trace

    return Trace(trace.df.iloc[idx].reset_index(drop=True), name=trace.name)


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("predict", help="train, evaluate and apply length predictors",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="predict_command", metavar="{train,eval,annotate}")
    sub.required = True

    t = sub.add_parser("train", help="train a proxy model or a LoRA length adapter")
    t.add_argument("--predictor", choices=TRAINABLE, default="proxy")
    t.add_argument("--data", required=True, help="trace / length file with prompts and lengths")
    t.add_argument("--target", choices=("max-over-samples", "greedy"),
                   default="max-over-samples",
                   help="what to predict: max over sampled lengths (the paper) or greedy length")
    t.add_argument("--out", required=True, help="model folder to write")
    t.add_argument("--holdout", type=float, default=0.0,
                   help="fraction held out (seeded) and reported after training")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1,
                   help="torch threads for training (default 1: fastest on a shared machine; "
                        "0 = torch's default)")
    g = t.add_argument_group("proxy")
    g.add_argument("--head", choices=("regression", "classification", "quantile"),
                   default="classification")
    g.add_argument("--encoder", default=None,
                   help="local sentence-transformers / HF encoder folder (default: the packaged "
                        "all-MiniLM-L6-v2)")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--ensemble", type=int, default=None)
    g.add_argument("--no-cache", action="store_true", help="do not cache embeddings on disk")
    g.add_argument("--finetune", action="store_true",
                   help="fine-tune the encoder with one head end to end (--epochs: fine-tuning "
                        "epochs, default 5); the model folder then holds the tuned encoder")
    g.add_argument("--finetune-layers", type=int, default=4,
                   help="with --finetune: tune the top K encoder layers, 0 = all (default 4; "
                        "all is several times slower on a CPU)")
    g.add_argument("--max-length", type=int, default=None,
                   help="encoder input truncation in tokens (default 64)")
    g.add_argument("--bucket", type=int, default=None,
                   help="classification bucket width in tokens (default 50; 25 with --finetune)")
    g.add_argument("--decode", choices=("median", "within"), default="median",
                   help="classification point prediction: the median (best MAE) or the point "
                        "most likely within 50 and 100 tokens (best Acc-50 / Acc-100)")
    g = t.add_argument_group("llm-lora")
    g.add_argument("--base-model", help="local LLaMA-family Hugging Face model folder")
    g.add_argument("--steps", type=int, default=1000)
    g.add_argument("--lr", type=float, default=2e-4)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--lora-r", type=int, default=8)
    g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    g.add_argument("--dtype", default="float32",
                   help="float32, float16 or bfloat16 (float16/bfloat16 for a 7B on a GPU)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="accuracy of a trained model (or any predictor) on a file")
    e.add_argument("--model", help="model folder from `predict train`")
    e.add_argument("--predictor", help="or evaluate any predictor by name (with --param)")
    e.add_argument("--param", "--predictor-param", dest="param", action="append",
                   metavar="KEY=VALUE", help="predictor parameter, as simulate's "
                   "--predictor-param (repeatable), e.g. scale=62")
    e.add_argument("--data", required=True,
                   help="trace file with prompts and true lengths (JSONL/CSV/Parquet)")
    e.add_argument("--target", choices=("max-over-samples", "greedy"), default=None,
                   help="default: max-over-samples when the file has sampled lengths")
    e.add_argument("--out", help="folder for metrics.json (accuracy; the same bytes for the "
                   "same inputs), speed.json (prompts/s measured on this machine, its load "
                   "average), scatter.png, error_hist.png")
    e.set_defaults(func=cmd_eval)

    a = sub.add_parser("annotate", help="add a `predicted` column to a trace file")
    a.add_argument("--trace", required=True, help="trace file to annotate")
    a.add_argument("--predictor", default=None, help="predictor name (default: from --model)")
    a.add_argument("--model", help="model folder (shortcut for the predictor's model/adapter)")
    a.add_argument("--param", "--predictor-param", dest="param", action="append",
                   metavar="KEY=VALUE", help="predictor parameter, as simulate's "
                   "--predictor-param (repeatable)")
    a.add_argument("--out", required=True, help="output trace (.jsonl, .csv, .parquet)")
    a.set_defaults(func=cmd_annotate)
    return p


def predictor_for(model: str | None, name: str | None, params: dict):
    """A predictor from a model folder (kind read from its config.json) or a name."""
    from seqsched.predictors import make_predictor

    if model:
        cfg_path = Path(model) / "config.json"
        if not cfg_path.is_file():
            raise UserError(f"{model}: no config.json; give a folder written by "
                            "`seqsched predict train`")
        fmt = json.loads(cfg_path.read_text()).get("format")
        if fmt == "seqsched-proxy":
            name, params = name or "proxy", {"model": model, "progress": _bars(), **params}
        elif fmt == "seqsched-llm-lora":
            name, params = name or "llm-lora", {"adapter": model, "progress": _bars(), **params}
        else:
            raise UserError(f"{model}: unknown model folder format {fmt!r}; train one with "
                            "`seqsched predict train`")
    if not name:
        raise UserError("give --model DIR or --predictor NAME")
    return make_predictor(name, **params)


def cmd_train(args: argparse.Namespace) -> int:
    from seqsched.predictors.metrics import evaluate, target_lengths

    from seqsched.analysis.output import check_writable_folder
    check_writable_folder(args.out)
    trace = read_trace(args.data)
    y = target_lengths(trace, args.target)
    train_idx, hold_idx = _split(len(trace), args.holdout, args.seed)
    train = _subset(trace, train_idx)
    out = Path(args.out)
    if args.predictor == "proxy":
        from seqsched.predictors.proxy import ProxyConfig, ProxyModel, trace_prompts

        cfg = ProxyConfig(head=args.head, target=args.target, seed=args.seed,
                          encoder=args.encoder or ProxyConfig.encoder, decode=args.decode)
        if args.epochs and not args.finetune:
            cfg.epochs = args.epochs
        if args.ensemble:
            cfg.ensemble = args.ensemble
        if args.finetune:    # the settings validated on a split of the Alpaca/Vicuna data
            cfg.finetune_layers, cfg.hidden, cfg.lr, cfg.bucket = \
                args.finetune_layers, 256, 1e-3, 25
        if args.bucket:
            cfg.bucket = args.bucket
        model = ProxyModel.train(trace_prompts(train), train.prompt_tokens, y[train_idx], cfg,
                                 progress=_bars(), use_cache=not args.no_cache,
                                 finetune_encoder=args.finetune,
                                 epochs=(args.epochs or 5) if args.finetune else None,
                                 max_length=args.max_length, threads=args.threads)
        if len(hold_idx):
            from seqsched.predictors.proxy.threads import torch_threads

            hold = _subset(trace, hold_idx)
            with torch_threads(args.threads):
                point, quant, _ = model.predict(trace_prompts(hold), hold.prompt_tokens,
                                                use_cache=not args.no_cache)
            cfg.report = {"holdout": evaluate(point, y[hold_idx], quant)}
        model.save(out)
    else:
        if not args.base_model:
            raise UserError("--predictor llm-lora needs --base-model DIR (a local LLaMA-family "
                            "Hugging Face model folder)")
        from seqsched.predictors.llm import LoraSettings, build_tuning_set, lora_tune

        examples = build_tuning_set(train, target=args.target)
        settings = LoraSettings(steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                                r=args.lora_r, alpha=2 * args.lora_r, seed=args.seed,
                                device=args.device, dtype=args.dtype)
        lora_tune(args.base_model, examples, out, settings, progress=_bars())
        if len(hold_idx):
            from seqsched.predictors.llm import make_lora

            hold = _subset(trace, hold_idx)
            pred = make_lora(adapter=str(out), progress=_bars(), device=args.device,
                             dtype=args.dtype)
            rep = evaluate(pred.predict(hold), y[hold_idx])
            rep["fallbacks"] = pred.fallbacks
            cfg = json.loads((out / "config.json").read_text())
            cfg["report"]["holdout"] = rep
            (out / "config.json").write_text(json.dumps(cfg, indent=1))
    print(f"model saved to {out}")
    rep = json.loads((out / "config.json").read_text()).get("report", {}).get("holdout")
    if rep:
        print(_table({"holdout": rep}))
    return 0


def _table(rows: dict[str, dict]) -> str:
    from tabulate import tabulate

    keys = ["n", "mae", "acc50", "acc100", "spearman", "kendall", "bias"]
    extra = sorted({k for r in rows.values() for k in r if k.startswith(("coverage", "fallb"))})
    data = [[name] + [r.get(k) for k in keys + extra] for name, r in rows.items()]
    return tabulate(data, headers=["target"] + keys + extra, floatfmt=".3f")


def cmd_eval(args: argparse.Namespace) -> int:
    from seqsched.predictors.basic import sample_columns
    from seqsched.predictors.metrics import error_plots, evaluate, target_lengths

    if args.out:
        from seqsched.analysis.output import check_writable_folder
        check_writable_folder(args.out)
    trace = read_trace(args.data)
    pred = predictor_for(args.model, args.predictor, _params(args.param))
    point = np.asarray(pred.predict(trace), np.int64)
    quant = pred.predict_quantiles(trace) if hasattr(pred, "predict_quantiles") else {}
    has_samples = bool(sample_columns(trace)) or "max_of_samples" in trace.df.columns
    targets = [args.target] if args.target else (
        ["max-over-samples", "greedy"] if has_samples else ["greedy"])
    rows = {}
    for tgt in targets:
        rows[tgt] = evaluate(point, target_lengths(trace, tgt), quant)
        if hasattr(pred, "fallbacks"):
            rows[tgt]["fallbacks"] = pred.fallbacks
    speed = measured_speed(pred, len(trace))
    print(_table(rows))
    if speed:
        print(f"{speed['prompts_per_s']:.1f} prompts/s measured here with "
              f"{speed['threads']} torch thread(s), load average {speed['loadavg_1m']:.2f} "
              "(what this machine did; the simulated timeline charges the modelled cost)")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(rows, indent=1))
        if speed:       # wall-clock, so kept out of metrics.json (same inputs, same bytes)
            (out / "speed.json").write_text(json.dumps(speed, indent=1))
        error_plots(point, target_lengths(trace, targets[0]), out,
                    title=f"{pred.name} vs {targets[0]}")
        print(f"metrics.json, {'speed.json, ' if speed else ''}scatter.png, error_hist.png "
              f"written to {out}")
    return 0


def measured_speed(pred, n: int) -> dict:
    """Prompts/s of the predictor's last run on this machine, with the torch thread count and
    the 1-minute load average it ran under (empty when the predictor records no wall time)."""
    import os

    wall = getattr(pred, "wall_s", 0.0)
    if not wall:
        return {}
    return {"prompts_per_s": n / wall, "threads": int(getattr(pred, "threads_used", 0)),
            "loadavg_1m": os.getloadavg()[0]}


def cmd_annotate(args: argparse.Namespace) -> int:
    from seqsched.traces.io import save_trace

    from seqsched.predictors.from_file import QUANTILE_COLUMNS

    from seqsched.analysis.output import check_output_file
    from seqsched.traces.io import output_suffix
    check_output_file(args.out)
    output_suffix(Path(args.out))
    trace = read_trace(args.trace)
    pred = predictor_for(args.model, args.predictor, _params(args.param))
    cols = {"predicted": np.asarray(pred.predict(trace), np.int64)}
    if hasattr(pred, "predict_quantiles"):
        for q, v in pred.predict_quantiles(trace).items():
            if q in QUANTILE_COLUMNS:
                cols[QUANTILE_COLUMNS[q]] = np.asarray(v, np.int64)
    save_trace(trace.with_columns(**cols), args.out)
    print(f"{len(trace)} predictions ({', '.join(cols)}) by {pred.name} written to {args.out}; "
          "simulate with --predictor column")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (the project CLI `seqsched predict ...` calls `register`)."""
    import sys

    parser = argparse.ArgumentParser(prog="seqsched")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"seqsched: error: {e}", file=sys.stderr)
        return 2
