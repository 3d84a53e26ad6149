"""Which built-in GPU a recorded run ran on, from the CUDA device name it logged.

A run's metadata names its GPU as CUDA does (`torch.cuda.get_device_name()`, nvidia-smi's
"name"): "NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB". Those
strings are not our GPU names, and near neighbours differ in ways that matter (the H100 PCIe
card has 60% of the SXM part's bandwidth), so each rule below matches one product only; a name
no rule matches is not guessed: the caller asks for `--gpu`.
"""

from __future__ import annotations

import re

# (pattern on the lower-cased name with "nvidia" and "geforce" removed, built-in GPU). Device
# names as the driver reports them (NVIDIA's product names; nvidia-smi --query-gpu=name).
_RULES: tuple[tuple[str, str], ...] = (
    (r"^rtx 4090( d)?$", "RTX-4090"),
    (r"^rtx pro 6000 blackwell (server|workstation) edition$", "RTX-PRO-6000"),
    (r"^h100 80gb hbm3$|^h100 sxm5?( 80gb)?$", "H100-SXM"),
    (r"^h100 pcie$", "H100-PCIe"),
    (r"^h200$", "H200"),
    (r"^a100-sxm4-80gb$", "A100-80GB"),
    (r"^a100-sxm4-40gb$", "A100-40GB"),
    (r"^l4$", "L4"),
    (r"^l40s$", "L40S"),
    (r"^rtx 3090$", "RTX-3090"),
    (r"^rtx a6000$", "RTX-A6000"),
)
# Folder spellings of a GPU other than its built-in name (LLMServingSim files its RTX A6000
# profiles under A6000/); each names one product.
FOLDER_NAMES = {"A6000": "RTX-A6000"}


def gpu_for_device(device_name: str) -> str | None:
    """The built-in GPU a CUDA device name denotes, or None when no rule is sure of one."""
    name = re.sub(r"\b(nvidia|geforce)\b", " ", str(device_name).lower())
    name = re.sub(r"\s+", " ", name).strip()
    for pattern, gpu in _RULES:
        if re.search(pattern, name):
            return gpu
    return None


def gpu_in_name(parts, gpus) -> str | None:
    """The one built-in GPU (of `gpus`) that folder names spell out, ignoring case and
    punctuation: "rtxpro6000-llama-3.1-8b-vllm-0.19" -> RTX-PRO-6000, LLMServingSim's
    bench/examples/RTX4090/Llama-3.1-8B/vllm -> RTX-4090. A run of consecutive words must
    equal the whole GPU name ("H100" alone names no GPU: SXM or PCIe?). None when no GPU or
    several match."""
    def squash(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())

    spelled = set()
    for part in parts:
        words = [w for w in re.split(r"[\s_\-.]+", str(part)) if w]
        spelled.update(squash("".join(words[i:j])) for i in range(len(words))
                       for j in range(i + 1, min(len(words), i + 4) + 1))
    found = {g for g in gpus if squash(g) in spelled}
    found |= {g for alias, g in FOLDER_NAMES.items() if g in gpus and squash(alias) in spelled}
    return found.pop() if len(found) == 1 else None


__all__ = ["FOLDER_NAMES", "gpu_for_device", "gpu_in_name"]
