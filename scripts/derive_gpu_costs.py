"""Derive analysis/figures/gpu_costs.json: a price per GPU-hour and a power model per GPU.

    python scripts/derive_gpu_costs.py          # rewrites the JSON next to analysis/

Prices are public cloud on-demand list prices (Linux, us-east-1), instance price / GPUs in
the instance. They are facts quoted from the providers' public pricing pages; no licence
restricts quoting a list price. They change often: override with `--prices FILE` (same JSON
shape, or a CSV with columns gpu,usd_per_gpu_hour[,tdp_w,idle_w]).

- A100-40GB: AWS p4d.24xlarge, 8 x A100 40GB, $32.7726/h
  (https://aws.amazon.com/ec2/instance-types/p4/, on-demand price as listed 2023-2025).
- A100-80GB: AWS p4de.24xlarge, 8 x A100 80GB, $40.9657/h (same page).
- H100-SXM: AWS p5.48xlarge, 8 x H100 SXM, $98.32/h
  (https://aws.amazon.com/ec2/instance-types/p5/; quoted e.g. by
  https://computespec.pages.dev/learn/pricing/cloud-gpu-pricing-explained, "$98.32/hr ...
  $12.29/GPU/hr").
- H200: the H100 on-demand figure times the H200/H100 ratio of AWS's EC2 Capacity Blocks
  effective accelerator rates ($5.408 / $4.916 per accelerator-hour, p5e vs p5,
  https://aws.amazon.com/ec2/capacityblocks/pricing/), since one on-demand list price for
  the H200 instance is not stable across regions.
- L4: AWS g6.xlarge, 1 x L4, $0.8048/h (https://aws.amazon.com/ec2/instance-types/g6/).
- RTX-4090, RTX-PRO-6000, H100-PCIe: AWS rents none of them, so RunPod's on-demand pod
  prices, one GPU per pod, as tabulated by Deploybase, "RunPod GPU Pricing: 2026
  Comprehensive Pricing Guide" (https://deploybase.ai/articles/runpod-gpu-pricing, data as
  of March 2026): RTX 4090 $0.60/h, RTX PRO 6000 $1.57/h, H100 PCIe $3.51/h. A marketplace
  price from a third-party summary, lower-grade than a provider's list price: the figures
  differ by tier (e.g. Spheron's May 2026 post quotes ~$2.79/h for RunPod's Secure Cloud
  H100 PCIe), so treat cost per token on these cards as +-30%. The same table gives the L40S
  ($1.40/h) and RTX 3090 ($0.39/h). The RTX A6000 is not in it: RunPod's own serverless page
  (https://docs.runpod.io/serverless/pricing) bills its A6000/A40 tier at $0.00034/s and the
  4090 PRO at $0.00031/s flex, so the A6000 pod is taken as the 4090 pod x 0.34 / 0.31.

Power model per GPU: P(u) = idle + (TDP - idle) * u, u the busy share of the run (from the
step log). TDP (maximum board power) from NVIDIA's datasheets: A100 SXM4 400 W (40 and 80
GB), H100 SXM5 700 W, H200 SXM 700 W, L4 72 W, H100 PCIe 350 W, GeForce RTX 4090 450 W
(total graphics power), RTX PRO 6000 Blackwell Server Edition 600 W (configurable), L40S
350 W, GeForce RTX 3090 350 W, RTX A6000 300 W. Idle is the draw of a GPU holding a loaded
model with nothing to run: bare idle plus the CUDA-context step measured by Vadari et al.,
"The Model Parking Tax" (arXiv:2605.23918): +26-50 W on HBM GPUs over bare idle, constant
in the memory held; bare idle ~50 W (A100 SXM) and ~70 W (H100 SXM) as commonly reported by
nvidia-smi, ~16 W for the L4. So idle = 50 + 38 = 88 W (A100), 70 + 38 = 108 W (H100,
H200), 16 + 14 = 30 W (L4; half the GDDR6 step of that paper scaled to a 72 W board).
The H100 PCIe takes the A100's figures (same HBM2e class, a 350 W board: 50 + 38 = 88 W);
the GDDR boards take the L4's reasoning: RTX 4090 ~25 W bare idle + 14 = 39 W, RTX PRO 6000
~30 W + 14 = 44 W, L40S ~30 + 14 = 44 W, RTX 3090 ~25 + 14 = 39 W, RTX A6000 ~20 + 14 =
34 W (bare idle as commonly reported by nvidia-smi for these boards).
These are estimates good to maybe +-30%; the linear-in-utilisation shape is the common
"load-scaled TDP" baseline (e.g. WattGPU, arXiv 2026, uses it as its physical baseline) and
overstates the draw of memory-bound decode steps that keep the GPU busy below full power.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "analysis" / "figures" / "gpu_costs.json"

# gpu -> (instance, instance $/h, GPUs per instance)
INSTANCES = {
    "A100-40GB": ("AWS p4d.24xlarge on-demand", 32.7726, 8),
    "A100-80GB": ("AWS p4de.24xlarge on-demand", 40.9657, 8),
    "H100-SXM": ("AWS p5.48xlarge on-demand", 98.32, 8),
    "L4": ("AWS g6.xlarge on-demand", 0.8048, 1),
    "RTX-4090": ("RunPod on-demand pod (Deploybase, March 2026)", 0.60, 1),
    "RTX-PRO-6000": ("RunPod on-demand pod (Deploybase, March 2026)", 1.57, 1),
    "H100-PCIe": ("RunPod on-demand pod (Deploybase, March 2026)", 3.51, 1),
    "L40S": ("RunPod on-demand pod (Deploybase, March 2026)", 1.40, 1),
    "RTX-3090": ("RunPod on-demand pod (Deploybase, March 2026)", 0.39, 1),
    "RTX-A6000": ("RunPod RTX 4090 pod x A6000/4090 PRO serverless rate (0.34/0.31)",
                  round(0.60 * 0.34 / 0.31, 4), 1),
}
H200_OVER_H100 = 5.408 / 4.916     # AWS EC2 Capacity Blocks, effective $/accelerator-hour
TDP_W = {"A100-40GB": 400.0, "A100-80GB": 400.0, "H100-SXM": 700.0, "H200": 700.0, "L4": 72.0,
         "H100-PCIe": 350.0, "RTX-4090": 450.0, "RTX-PRO-6000": 600.0, "L40S": 350.0,
         "RTX-3090": 350.0, "RTX-A6000": 300.0}
BARE_IDLE_W = {"A100-40GB": 50.0, "A100-80GB": 50.0, "H100-SXM": 70.0, "H200": 70.0, "L4": 16.0,
               "H100-PCIe": 50.0, "RTX-4090": 25.0, "RTX-PRO-6000": 30.0, "L40S": 30.0,
               "RTX-3090": 25.0, "RTX-A6000": 20.0}
CONTEXT_W = {"A100-40GB": 38.0, "A100-80GB": 38.0, "H100-SXM": 38.0, "H200": 38.0, "L4": 14.0,
             "H100-PCIe": 38.0, "RTX-4090": 14.0, "RTX-PRO-6000": 14.0, "L40S": 14.0,
             "RTX-3090": 14.0, "RTX-A6000": 14.0}


def derive() -> dict:
    prices = {g: round(p / n, 4) for g, (_, p, n) in INSTANCES.items()}
    prices["H200"] = round(prices["H100-SXM"] * H200_OVER_H100, 4)
    sources = {g: f"{inst} ${p}/h / {n} GPUs" for g, (inst, p, n) in INSTANCES.items()}
    sources["H200"] = (f"H100-SXM on-demand x {H200_OVER_H100:.4f} (AWS Capacity Blocks "
                       "H200/H100 ratio)")
    gpus = {}
    for gpu in TDP_W:
        gpus[gpu] = {"usd_per_gpu_hour": prices[gpu], "price_source": sources[gpu],
                     "tdp_w": TDP_W[gpu], "idle_w": BARE_IDLE_W[gpu] + CONTEXT_W[gpu]}
    return {"derived_by": "scripts/derive_gpu_costs.py (sources in its docstring)",
            "gpus": gpus}


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(derive(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
