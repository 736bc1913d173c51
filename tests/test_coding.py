"""Exact bits of a layer under dense, CSR (relative indices, fillers) and COO codings."""

from __future__ import annotations

import numpy as np
import pytest

from surrogate_emo.compress.coding import (
    LayerCoding,
    best_coding,
    coded_bits,
    csr_fillers,
    expected_csr_bits,
    layer_coding,
)
from surrogate_emo.errors import ConfigError

# 12 weights, kept at flat positions 1, 2, 8, 11.
MASK = np.zeros(12, dtype=bool)
MASK[[1, 2, 8, 11]] = True


def test_csr_counts_a_filler_when_a_gap_overflows_a_2_bit_index():
    # Gaps (zeros skipped before each kept weight): 1 (pos 0), 0, 5 (pos 3..7), 2 (pos 9, 10).
    # A 2-bit index writes gaps 0..3; the gap of 5 needs floor(5 / 4) = 1 filler (a stored zero at pos 7,
    # after 3, 4, 5, 6), then 8 follows with gap 0. Entries 4 + 1 = 5, each 4 value bits + 2 index bits: 30.
    assert csr_fillers(np.flatnonzero(MASK), index_bits=2) == 1
    assert coded_bits(12, MASK, 4, "csr", index_bits=2) == 30
    # With 3-bit indices (gaps 0..7) nothing overflows: 4 x (4 + 3) = 28.
    assert coded_bits(12, MASK, 4, "csr", index_bits=3) == 28


@pytest.mark.parametrize("gap, fillers", [(3, 0), (4, 1), (7, 1), (8, 2), (12, 3)])
def test_filler_count_at_the_edges_of_a_2_bit_index(gap, fillers):
    # One kept weight at 0, the next after `gap` zeros: floor(gap / 4) fillers.
    assert csr_fillers(np.array([0, gap + 1]), index_bits=2) == fillers


def test_leading_gap_counts_and_trailing_zeros_cost_nothing():
    # Kept only at position 9 of 16: leading gap 9 with 2-bit indices -> floor(9 / 4) = 2 fillers; positions 10..15
    # after it need no entry. (1 + 2) x (8 + 2) = 30.
    assert coded_bits(16, np.array([9]), 8, "csr", index_bits=2) == 30


def test_mask_flat_indices_and_any_shape_agree():
    indices = np.array([11, 1, 8, 2])  # unsorted is fine
    assert coded_bits(12, indices, 4, "csr", index_bits=2) == coded_bits(12, MASK.reshape(3, 4), 4, "csr",
                                                                         index_bits=2) == 30


def test_dense_and_coo_by_hand():
    # dense: 12 x 4 = 48 whatever is kept; coo: ceil(log2 12) = 4 index bits, 4 x (4 + 4) = 32.
    assert coded_bits(12, MASK, 4, "dense") == 48
    assert coded_bits(12, MASK, 4, "coo") == coded_bits(12, 4, 4, "coo") == 32
    # a power of two: ceil(log2 16) = 4; one weight: still 1 index bit.
    assert coded_bits(16, 2, 8, "coo") == 2 * (8 + 4)
    assert coded_bits(1, 1, 8, "coo") == 9


def test_per_channel_scales_only_below_32_bits():
    # 3 output channels x float32 = 96 bits on top: 48 + 96 = 144; at 32 bits no scales: 12 x 32 = 384.
    assert coded_bits(12, MASK, 4, "dense", scales=3) == 144
    assert coded_bits(12, MASK, 32, "dense", scales=3) == 384
    assert coded_bits(12, MASK, 4, "csr", index_bits=2, scales=3, scale_bits=16) == 30 + 48


def test_best_coding_picks_the_smallest():
    # Everything kept: dense 12 x 4 = 48 beats csr 12 x 7 = 84 and coo 12 x 8 = 96.
    assert best_coding(12, np.ones(12, dtype=bool), 4) == ("dense", 48)
    # MASK, 2-bit index: dense 48, csr 30, coo 32 -> csr.
    assert best_coding(12, MASK, 4, index_bits=2) == ("csr", 30)
    # 1024 weights, kept at 0 and 1000, 3-bit index: csr needs floor(999 / 8) = 124 fillers, 126 x 11 = 1386;
    # coo 2 x (8 + 10) = 36; dense 8192 -> coo.
    assert best_coding(1024, np.array([0, 1000]), 8) == ("coo", 36)
    # A tie goes to the earlier name: 4 weights, 2 kept, q = 2: dense 4 x 2 = 8, coo 2 x (2 + 2) = 8.
    assert best_coding(4, 2, 2, codings=("coo", "dense")) == ("coo", 8)
    assert best_coding(4, 2, 2, codings=("dense", "coo")) == ("dense", 8)


def test_layer_coding_reports_the_name_and_whole_bytes():
    chosen = layer_coding(12, MASK, 4, index_bits=2)
    assert chosen == LayerCoding("csr", 30) and chosen.bytes == 4  # ceil(30 / 8)
    configured = layer_coding(12, MASK, 4, "coo")
    assert (configured.coding, configured.bits, configured.bytes) == ("coo", 32, 4)


def test_expected_csr_bits_matches_a_random_mask_and_exceeds_emomc_closed_form():
    n, p, q = 200_000, 0.2, 4
    mask = np.random.default_rng(0).random(n) < p
    exact = coded_bits(n, mask, q, "csr")
    assert exact == pytest.approx(expected_csr_bits(n, p, q), rel=0.01)
    # EMOMC's N p (q + 3) leaves out the fillers, about 0.8^8 / (1 - 0.8^8) = 0.2 per kept weight here.
    assert exact > 1.15 * n * p * (q + 3)


def test_errors_say_expected_and_got():
    with pytest.raises(ConfigError, match=r"unknown coding 'huffman'; known: dense, csr, coo"):
        coded_bits(12, MASK, 4, "huffman")
    with pytest.raises(ConfigError, match="csr needs the positions of the kept weights"):
        coded_bits(12, 4, 4, "csr")
    with pytest.raises(ConfigError, match="bits must be an integer >= 1, got 0"):
        coded_bits(12, MASK, 0, "dense")
    with pytest.raises(ConfigError, match="mask must have 12 entries .one per weight., got 10"):
        coded_bits(12, np.ones(10, dtype=bool), 4, "dense")
    with pytest.raises(ConfigError, match="kept flat indices must be distinct"):
        coded_bits(12, np.array([1, 1]), 4, "coo")
    with pytest.raises(ConfigError, match=r"kept flat indices must lie in \[0, 12\)"):
        coded_bits(12, np.array([3, 12]), 4, "coo")
    with pytest.raises(ConfigError, match=r"kept count must be in \[0, 12\], got 13"):
        coded_bits(12, 13, 4, "dense")
    with pytest.raises(ConfigError, match="index_bits must be an integer >= 1, got 0"):
        coded_bits(12, MASK, 4, "csr", index_bits=0)
