"""Help text of the options every run command shares, kept beside `tests/cli/test_help_text.py`,
which checks that each lists every built-in name (no import of the registries here: `--help`
stays fast)."""

from __future__ import annotations

POLICY_HELP = ("static: vanilla, sorted, binned (VBS/FCR); continuous (vLLM-like): fcfs, sjf, "
               "srpt, ltr, mlfq, gittins, srpt-expected (default fcfs; README, 'Policies'). "
               "Parameters with --policy-param or NAME:KEY=VALUE, e.g. batch_size=16, "
               "vbs=false, aging=10, admission=predicted (length-aware admission)")
GPU_HELP = ("A100-40GB, A100-80GB, H100-SXM, H100-PCIe, H200, L4, L40S, RTX-3090, RTX-A6000, "
            "RTX-4090, RTX-PRO-6000 (any case; a CUDA device name such as 'NVIDIA H100 80GB "
            "HBM3' works too) or a GPU TOML file with peak_tflops, bandwidth_gbs, memory_gb "
            "(default A100-80GB)")
MODEL_HELP = ("llama-7b, llama-13b, vicuna-7b, llama-2-7b/13b/70b, llama-3-8b/70b, "
              "llama-3.1-8b/70b, llama-3.3-70b, mistral-7b, codellama-34b, qwen2.5-7b/72b, "
              "qwen3-32b, qwen3-30b-a3b, mixtral-8x7b, phi-mini-moe, tiny; the Hugging Face id "
              "of one as `vllm serve` takes it (meta-llama/Llama-3.1-8B-Instruct); or any "
              "model's config.json (or its folder) (default llama-7b)")
PREDICTOR_HELP = ("oracle (the true length), max-of-samples, noisy, quality, none, from-file, "
                  "column, proxy, llm-perception, llm-lora (default oracle; README, 'Length "
                  "predictors')")
ROUTER_HELP = ("round-robin, least-loaded, random, power-of-two, prefix-aware or vllm-dp "
               "(vLLM's DP balancer) (default round-robin)")
BACKEND_HELP = ("preset: paper-a100 (the paper's HF-eager A100 stack), paper-a100-iter, "
                "roofline; sets GPU, model and overheads (default: none, the GPU x model below)")
