"""Derive NCCL's measured all-gather per GPU and TP degree (backends/profiles/
nccl_allgather.json): gathered bytes -> microseconds, what vLLM's logits gather at TP > 1
costs (backends/logits_gather.py; vLLM's LogitsProcessor all-gathers through NCCL).

Source: ai-dynamo/aiconfigurator @ 095f58a (Apache-2.0), `aic-core/src/aiconfigurator_core/
systems/data/<system>/comm/nccl/<version>/nccl_perf.parquet` (nccl-tests; `message_size` in
elements of the whole gathered buffer, fp16, `latency` in ms), read by the MoE importer's
`measured_collectives` (backends/import_aiconfigurator_moe.py, the same rows its expert-
parallel dispatch uses), newest NCCL version per system. The shared data has no NCCL tables:
this needs a checkout (`--aiconfigurator-repo`; a partial one is enough: `git archive 095f58a
aic-core/src/aiconfigurator_core/systems/data/{a100_sxm,h100_sxm,h200_sxm,
rtx_pro_6000_server}/comm/nccl | tar -x -C AIC`). A GPU whose table is not found keeps its
previous entry.

    .venv/bin/python scripts/derive_nccl_allgather.py --aiconfigurator-repo AIC
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seqsched.backends.import_aiconfigurator_moe import measured_collectives
from seqsched.backends.logits_gather import TABLE

from derive_roofline_allreduce import SYSTEMS  # a sibling script: scripts/ is on sys.path

GPUS = {"A100-80GB": "a100_sxm", "H100-SXM": "h100_sxm", "H200": "h200_sxm",
        "RTX-PRO-6000": "rtx_pro_6000_server"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aiconfigurator-repo", required=True,
                    help="a checkout of ai-dynamo/aiconfigurator @ 095f58a")
    args = ap.parse_args()
    out = json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.is_file() else {}
    for gpu, system in GPUS.items():
        comm = measured_collectives(Path(args.aiconfigurator_repo) / SYSTEMS / system)
        if comm is None:
            print(f"skip {gpu}: no {system}/comm/nccl/*/nccl_perf.parquet")
            continue
        tp = {n: ops["all_gather"] for n, ops in comm["by_gpus"].items() if "all_gather" in ops}
        source = comm["source"].replace(" / reduce_scatter", "")
        out[gpu] = {"tp": tp, "source": f"{source} on {system}, aiconfigurator @ 095f58a "
                                        "(Apache-2.0)"}
        print(f"{gpu:<14} TP {','.join(tp)}  ({out[gpu]['source']})")
    TABLE.write_text(json.dumps(dict(sorted(out.items())), separators=(",", ":")) + "\n",
                     encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
