"""Interconnect figures: the links KV cache crosses when it is swapped to host memory
(`preemption=swap`) or shipped from a prefill replica to a decode replica (disaggregation).

Every figure is the theoretical peak in ONE direction, in GB/s (1e9 bytes/s), as the
standards and datasheets give it; real copies reach somewhat less (pinned-memory copies reach
~80-90% of PCIe peak), so times computed from them are lower bounds.

- PCIe 4.0 x16: 16 GT/s per lane, 128b/130b encoding -> 1.969 GB/s per lane, 31.5 GB/s for
  x16 (PCI-SIG, PCI Express Base Specification 4.0). The A100 and L4 datasheets list
  "PCIe Gen4: 64 GB/s" (both directions together).
- PCIe 5.0 x16: 32 GT/s per lane, 128b/130b -> 63.0 GB/s (PCI-SIG, PCIe Base Specification
  5.0). The H100/H200 SXM datasheets list "PCIe Gen5: 128 GB/s" (both directions).
- NVLink 3 (A100 SXM): 600 GB/s total, 300 GB/s per direction (NVIDIA A100 datasheet).
- NVLink 4 (H100/H200 SXM): 900 GB/s total, 450 GB/s per direction (NVIDIA H100 datasheet).
- InfiniBand HDR 200 Gb/s = 25 GB/s (NVIDIA ConnectX-6 datasheet), NDR 400 Gb/s = 50 GB/s
  (NVIDIA ConnectX-7 datasheet), per port and direction.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqsched.common.errors import UserError


@dataclass(frozen=True)
class Link:
    name: str
    gbs: float          # GB/s, one direction
    source: str

    @property
    def bandwidth(self) -> float:
        return self.gbs * 1e9


LINKS: dict[str, Link] = {k.name: k for k in [
    Link("pcie4", 16 * 16 * 128 / 130 / 8, "PCI-SIG PCIe 4.0 x16 (16 GT/s, 128b/130b)"),
    Link("pcie5", 16 * 32 * 128 / 130 / 8, "PCI-SIG PCIe 5.0 x16 (32 GT/s, 128b/130b)"),
    Link("nvlink3", 300.0, "NVIDIA A100 datasheet: NVLink 600 GB/s (both directions)"),
    Link("nvlink4", 450.0, "NVIDIA H100 datasheet: NVLink 900 GB/s (both directions)"),
    Link("ib-hdr", 25.0, "InfiniBand HDR 200 Gb/s (NVIDIA ConnectX-6)"),
    Link("ib-ndr", 50.0, "InfiniBand NDR 400 Gb/s (NVIDIA ConnectX-7)"),
]}

# the host (CPU) link of each GPU, from its datasheet
HOST_LINK = {"A100-40GB": "pcie4", "A100-80GB": "pcie4", "H100-SXM": "pcie5", "H200": "pcie5",
             "L4": "pcie4"}
# the GPU-to-GPU link inside a node (the L4 has no NVLink: PCIe)
PEER_LINK = {"A100-40GB": "nvlink3", "A100-80GB": "nvlink3", "H100-SXM": "nvlink4",
             "H200": "nvlink4", "L4": "pcie4"}


def get_link(spec: str) -> Link:
    """A link by name (pcie4, pcie5, nvlink3, nvlink4, ib-hdr, ib-ndr) or a bandwidth in GB/s
    ("25" is 25 GB/s)."""
    if spec in LINKS:
        return LINKS[spec]
    try:
        gbs = float(spec)
    except (TypeError, ValueError):
        gbs = float("nan")
    if not gbs > 0 or gbs == float("inf"):
        raise UserError(f"unknown link {spec!r}; use one of {', '.join(LINKS)} or a bandwidth "
                        "in GB/s such as 25")
    return Link(str(spec), gbs, "given on the command line")


def peer_link(gpu: str, spec: str | None = None) -> Link:
    """The prefill -> decode link: `spec` if given, else the GPU's NVLink (same node)."""
    return get_link(spec if spec is not None else PEER_LINK.get(gpu, "pcie4"))


def host_link(gpu: str, spec: str | None = None) -> Link:
    """The link to host memory: `spec` if given, else the GPU's PCIe generation."""
    return get_link(spec if spec is not None else HOST_LINK.get(gpu, "pcie4"))
