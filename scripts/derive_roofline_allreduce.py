"""Derive the roofline's measured all-reduce table per GPU (backends/profiles/
roofline_allreduce.json): message bytes x TP degree -> microseconds of one vLLM custom
all-reduce, so a roofline run at TP > 1 on a GPU that has measurements does not assume the
datasheet link speed (on PCIe the measured kernel is ~4x slower than a ring at 64 GB/s).

Source: ai-dynamo/aiconfigurator @ 095f58a (Apache-2.0), `aic-core/src/aiconfigurator_core/
systems/data/<system>/comm/vllm/<version>/custom_allreduce_perf.parquet`: vLLM's custom
all-reduce under CUDA graphs (`backend == "vllm_graph"`, the rows the kernel-profile importers
use too), bf16; `message_size` counts elements (x 2 bytes), `latency` is in ms. Rows repeated
at one (GPUs, size) are averaged. The H100-SXM and A100 tables are also under
../shared/data/serving/profiles/aiconfigurator/ (README there); the RTX PRO 6000 and H200
ones need a checkout (`--aiconfigurator-repo`; a partial one is enough: `git archive 095f58a
aic-core/src/aiconfigurator_core/systems/data/{rtx_pro_6000_server,h200_sxm}/comm/vllm | tar
-x -C AIC`). A GPU whose table is not found keeps its previous entry.

    .venv/bin/python scripts/derive_roofline_allreduce.py [--data ../shared/data/serving/profiles]
        [--aiconfigurator-repo PATH]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from seqsched.backends.allreduce_table import TABLE

SYSTEMS = "aic-core/src/aiconfigurator_core/systems/data"
# built-in GPU -> (aiconfigurator system, vLLM version measured); the version closest to the
# vLLM 0.19 the shared runs use (A100 has only 0.14.0)
GPUS = {"A100-80GB": ("a100_sxm", "0.14.0"), "H100-SXM": ("h100_sxm", "0.19.0"),
        "H200": ("h200_sxm", "0.19.0"), "RTX-PRO-6000": ("rtx_pro_6000_server", "0.19.0")}
REL = "comm/vllm/{version}/custom_allreduce_perf.parquet"


def aic_file(repo: Path | None, data: Path, system: str, rel: str) -> Path:
    """One aiconfigurator system file: from the checkout when given, else the shared data's
    copy (derive_roofline_efficiency.py reads its GEMM and attention tables the same way)."""
    for path in ([repo / SYSTEMS / system / rel] if repo else []) + [
            data / "aiconfigurator" / system / rel]:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{system}/{rel}")


def table(path: Path, system: str, version: str) -> dict:
    df = pd.read_parquet(path)
    df = df[(df["backend"] == "vllm_graph") & (df["allreduce_dtype"] == "bfloat16")]
    mean = df.groupby(["num_gpus", "message_size"])["latency"].mean()
    out = {}
    for tp, sel in mean.groupby(level=0):
        sizes = sel.index.get_level_values(1).to_numpy()
        out[str(int(tp))] = {"bytes": [int(s) * 2 for s in sizes],
                             "us": [round(float(ms) * 1e3, 3) for ms in sel.to_numpy()]}
    return {"tp": out, "source": f"aiconfigurator @ 095f58a (Apache-2.0) {system}: vLLM "
                                 f"{version} custom all-reduce, CUDA graph, bf16"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get(
        "SEQSCHED_SERVING_PROFILES", "../shared/data/serving/profiles"))
    ap.add_argument("--aiconfigurator-repo", default=None,
                    help="a checkout of ai-dynamo/aiconfigurator @ 095f58a")
    args = ap.parse_args()
    repo = Path(args.aiconfigurator_repo) if args.aiconfigurator_repo else None
    out = json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.is_file() else {}
    for gpu, (system, version) in GPUS.items():
        try:
            path = aic_file(repo, Path(args.data), system, REL.format(version=version))
        except FileNotFoundError as e:
            print(f"skip {gpu}: {e} not found")
            continue
        out[gpu] = table(path, system, version)
        e = out[gpu]["tp"]
        print(f"{gpu:<14} TP {','.join(e)}  {len(next(iter(e.values()))['bytes'])} sizes  "
              f"({out[gpu]['source']})")
    TABLE.write_text(json.dumps(dict(sorted(out.items())), separators=(",", ":")) + "\n",
                     encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
