"""Mixed prefill + decode attention in the aiconfigurator path (backends/fa_tiles.py): tile counts
by hand, the FlashAttention version by GPU architecture, and the cost model charging exactly the
tile formula to each decode row of a mixed batch while decode-only and prefill-only batches keep
their times."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest

from seqsched.backends.fa_tiles import SM_ARCH, Tiling, fa_version, mixed_extra_us, tile_rate
from seqsched.backends.import_aiconfigurator import import_aiconfigurator
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.profile import BUILTIN_DIR
from seqsched.backends.profile_registry import builtin_index, load_cost_profile
from seqsched.backends.specs import GPUS, get_gpu
from tests.backends.test_vidur_aiconf_import import TINY, write_aiconf


def test_flash_attention_version_by_architecture():
    assert fa_version(SM_ARCH["H100-SXM"]) == 3 and fa_version(SM_ARCH["H200"]) == 3
    for gpu in ("A100-80GB", "RTX-4090", "L4", "L40S", "RTX-3090", "RTX-A6000", "RTX-PRO-6000"):
        assert fa_version(SM_ARCH[gpu]) == 2
    assert fa_version(100) is None and fa_version(None) is None     # FA4 / unknown
    assert set(SM_ARCH) == set(GPUS)            # every built-in GPU has its architecture


def test_tile_counts_by_hand():
    fa2 = Tiling(2, 32, 8, 128)             # Llama-3.1-8B, TP1
    assert (fa2.block_m, fa2.block_n) == (64, 128)
    # one decode row: 32 heads x 64 rows in a mixed batch, 8 KV heads x 64 (4 packed) alone
    assert (fa2.decode_rows(True), fa2.decode_rows(False)) == (2048, 512)
    # 256-token prefill: query blocks of 64 see 1, 1, 2, 2 key blocks of 128, per head
    tiles, ctas = fa2.prefill_tiles([256])
    assert (tiles[0], ctas[0]) == (32 * 6, 32 * 4)
    fa3 = Tiling(3, 8, 2, 128)              # 4 query heads per KV head, packed
    assert (fa3.decode_rows(True), fa3.decode_rows(False)) == (2 * 128, 2 * 64)
    # 256 tokens x 4 heads = 1,024 packed rows: 8 blocks of 128 (32 tokens each) see
    # ceil(32 (m + 1) / 128) = 1, 1, 1, 1, 2, 2, 2, 2 key blocks, per KV head
    tiles, ctas = fa3.prefill_tiles([256])
    assert (tiles[0], ctas[0]) == (2 * 12, 2 * 8)
    assert Tiling(2, 4, 2, 16).block_n == 256 and Tiling(2, 4, 2, 256).block_n == 64


def test_tile_rate_takes_the_largest_batch_per_length():
    t = Tiling(2, 32, 8, 128)
    per_cta, per_tile = tile_rate(t, [128, 256, 256, 512], [8, 1, 4, 2], [1.0, 5.0, 9.0, 7.0])
    # 128 tokens (one key block a CTA) is left out; 256 keeps batch 4
    assert per_cta.tolist() == [6 / 4, 20 / 8]
    assert per_tile.tolist() == pytest.approx([9.0 / (4 * 32 * 6), 7.0 / (2 * 32 * 20)])


def _tiny_profiles(tmp_path, gpu):
    prof = import_aiconfigurator(write_aiconf(tmp_path / "sys"), TINY, 1, gpu)
    plain = copy.deepcopy(prof)
    plain["attention"].pop("mixed", None)
    return prof, kernel_profile_from_dict(prof), kernel_profile_from_dict(plain)


def test_one_decode_row_in_a_mixed_batch_costs_the_tile_formula(tmp_path):
    prof, mixed, plain = _tiny_profiles(tmp_path, get_gpu("L4"))     # SM 8.9: FA2
    sec = prof["attention"]["mixed"]
    assert (sec["flash_attention"], sec["block_n"]) == (2, 256)     # head dim 16
    # tiny: 4 query / 2 KV heads. Context table (batch 1): 10 + 0.01 isl us; 4,096 tokens =
    # 64 query blocks of 64 seeing ceil(64 (m + 1) / 256) key blocks = 4 (1 + ... + 16) = 544
    # tiles a head (2,176 in all) over 256 CTAs (8.5 key blocks each)
    per_tile = (10 + 0.01 * 4096) / 2176
    # a row at context 1,024: 4 key blocks x (4 x 64 - 2 x 64) extra rows / 64 = 8 tiles,
    # at the rate of the shortest measured CTAs (8.5 key blocks: 4 is below, clamped)
    want_us = 8 * per_tile
    assert sec["us"][sec["context"].index(1024)] == pytest.approx(want_us, rel=1e-3)
    new, past = np.array([128]), np.array([0])
    extra = mixed.prefill_time(new, past, 1, 1024) - plain.prefill_time(new, past, 1, 1024)
    assert extra == pytest.approx(2 * want_us * 1e-6, rel=1e-3)        # 2 layers
    three = mixed.prefill_time(new, past, 3, 3 * 1024) - plain.prefill_time(new, past, 3, 3 * 1024)
    assert three == pytest.approx(3 * extra, rel=1e-9)
    # decode-only and prefill-only batches keep their times
    assert np.array_equal(mixed.decode_times(5, 5 * 700, 4), plain.decode_times(5, 5 * 700, 4))
    assert mixed.prefill_time(new, past) == plain.prefill_time(new, past)


def test_hopper_packs_gqa_and_unknown_gpus_get_no_term(tmp_path):
    prof, mixed, plain = _tiny_profiles(tmp_path, get_gpu("H100-SXM"))
    sec = prof["attention"]["mixed"]
    assert (sec["flash_attention"], sec["rows_mixed"], sec["rows_decode"]) == (3, 256, 128)
    h100 = Tiling(3, 4, 2, 16)
    isl = np.array([1, 16, 256, 4096, 16384])      # the table's lengths (256 up kept: FA3's
    per_cta, per_tile = tile_rate(h100, isl, np.ones(5), 10 + 0.01 * isl)  # key block is 128)
    want = mixed_extra_us(h100, [1024], per_cta, per_tile)[0]
    assert sec["us"][sec["context"].index(1024)] == pytest.approx(want, rel=1e-3)
    assert sec["compose"] == "max"      # FA3: the larger of decode-only and the tiles' math
    new, past = np.array([128]), np.array([0])
    for rows in (1, 16):
        dec = mixed.attention_count * float(mixed.decode_grid(rows, 1024.0)) * 1e-6
        tiles = rows * mixed.attention_count * sec["us"][sec["context"].index(1024)] * 1e-6
        got = mixed.prefill_time(new, past, rows, rows * 1024) - \
            plain.prefill_time(new, past, rows, rows * 1024)
        assert got == pytest.approx(max(dec, tiles) - dec, rel=1e-9, abs=1e-15)
    assert np.array_equal(mixed.decode_times(5, 5 * 700, 4), plain.decode_times(5, 5 * 700, 4))
    custom = dataclasses.replace(get_gpu("H100-SXM"), name="my-gpu")
    other = import_aiconfigurator(write_aiconf(tmp_path / "c"), TINY, 1, custom)
    assert "mixed" not in other["attention"]


def test_builtin_aic_profiles_carry_the_term_of_their_gpu():
    index = builtin_index()
    for name, fa in (("rtxpro6000-llama-3.1-8b-tp1-aic", 2), ("h100-llama-3.1-8b-tp1-aic", 3),
                     ("a100-llama-3.1-8b-tp1-aic", 2)):
        if name not in index:
            pytest.skip(f"{name} not built in")
        sec = json.loads((BUILTIN_DIR / f"{name}.json").read_text())["attention"]["mixed"]
        assert sec["flash_attention"] == fa
        cost = load_cost_profile(name)
        # per decode row at context 1,024 (128 rows): FA2 adds about the row's whole
        # decode-only cost or more (3 of 4 query heads' tiles are new); on Hopper the packed
        # tiles' compute stays under the KV reads (memory-bound: the decode time stands)
        row = float(cost.mixed_row.seconds(1024.0))
        alone = float(cost.attention_count * cost.decode_grid(128.0, 1024.0)) * 1e-6 / 128
        assert sec["compose"] == ("add" if fa == 2 else "max")
        assert (row / alone > 0.8) if fa == 2 else (0 < row / alone < 1.0)
        new, past = np.array([1920]), np.array([0])
        with_rows = cost.prefill_time(new, past, 128, 128 * 1024)
        cost.mixed_row = None
        assert (with_rows > cost.prefill_time(new, past, 128, 128 * 1024)) == (fa == 2)


def test_roofline_charges_the_tiles_to_a_mixed_batch_only():
    from seqsched.backends.efficiency import roofline_measurements
    from seqsched.backends.roofline import RooflineCostModel
    from seqsched.backends.specs import get_model

    llama = get_model("llama-3.1-8b")
    for gpu, fa in (("RTX-PRO-6000", 2), ("H100-SXM", 3)):
        kw = roofline_measurements(gpu, 1)
        if kw["shape"] is None:
            pytest.skip(f"no kernel shape for {gpu}")
        roof = RooflineCostModel(get_gpu(gpu), llama, **kw)
        plain = RooflineCostModel(get_gpu(gpu), llama, **kw)
        plain._mixed_s = 0.0
        new, past = [1920], [0]
        got = roof.prefill_time(new, past, 128, 128 * 1024) - \
            plain.prefill_time(new, past, 128, 128 * 1024)
        eff = kw["shape"].prefill_attention_efficiency * get_gpu(gpu).peak_flops
        # FA2: (32 - 8) x 64 extra MMA rows a key position, 4 x head dim FLOPs each, 32 layers
        want = 128 * 1024 * 32 * 4 * (32 - 8) * 64 * 128 / eff if fa == 2 else 0.0
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)   # FA3: under the KV reads
        assert roof.decode_times(128, 128 * 1024, 3).tolist() == \
            plain.decode_times(128, 128 * 1024, 3).tolist()
        assert roof.prefill_time(new, past) == plain.prefill_time(new, past)
