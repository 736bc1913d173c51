"""The EMOMC-form energy model against values worked out by hand for one conv and one linear layer."""

from __future__ import annotations

import pytest

from surrogate_emo.compress.energy import (
    DATAFLOWS,
    EnergyConstants,
    LayerGeometry,
    Reuse,
    layer_energy,
    model_energy,
)
from surrogate_emo.errors import ConfigError

RAW = EnergyConstants(scale=1.0)  # raw access energies: the numbers below are in EMOMC's units before its 1e-6

# Conv: C_in 2, C_out 4, 3x3 kernel, 4x4 output. N = 3*3*2*4 = 72 weights, MACs = 72 * 16 = 1152.
CONV = LayerGeometry.conv(2, 4, (3, 3), (4, 4))
# Linear 8 -> 3: N = MACs = 24.
LINEAR = LayerGeometry.linear(8, 3)

# Components in order: mac, weight_reads, activation_reads, psum_writes, psum_reads.
#
# p = 1, q = 8: every skip factor 1 - 0^n = 1; (q + 1) = 9.
#   mac = 0.102 * 1152 * 1 * 9 = 1057.536 (every dataflow)
#   X:Y   r_w = H W = 16 -> 72 weight reads: 0.728 * 72 * 9/16 = 29.484
#         r_a = 1 -> 1152 reads: 0.728 * 1152 = 838.656
#         r_o = kh kw C_in = 18 -> 64 writes: 0.447 * 64 = 28.608; no psum reads
#   IC:OC r_w = 1 -> 1152: 0.728 * 1152 * 9/16 = 471.744
#         r_a = C_out = 4 -> 288: 0.728 * 288 = 209.664
#         r_o = C_in = 2 -> 576: writes 0.447 * 576 = 257.472, reads 0.728 * 576 = 419.328
#   Fx:Fy r_w = 16 -> 29.484; r_a = 1 -> 838.656
#         r_o = kh kw = 9 -> 128: writes 0.447 * 128 = 57.216, reads 0.728 * 128 = 93.184
#   X:Fx  r_w = W = 4 -> 288: 0.728 * 288 * 9/16 = 117.936
#         r_a = kw = 3 -> 384: 0.728 * 384 = 279.552
#         r_o = kw = 3 -> 384: writes 0.447 * 384 = 171.648, reads 279.552
#
# p = 0.5, q = 4: (q + 1) = 5; s(n) = 1 - 0.5^n: s(1) = 0.5, s(2) = 0.75, s(3) = 0.875, s(4) = 0.9375,
# s(9) = 511/512.
#   mac = 0.102 * 1152 * 0.5 * 5 = 293.76
#   X:Y   weights 0.728 * 72 * 5/16 = 16.38; activations 0.728 * 1152 * 0.5 = 419.328; writes 0.447 * 64 = 28.608
#   IC:OC weights 0.728 * 1152 * 5/16 = 262.08; activations 0.728 * 288 * 0.9375 = 0.728 * 270 = 196.56
#         psums 576 * 0.75 = 432: writes 0.447 * 432 = 193.104, reads 0.728 * 432 = 314.496
#   Fx:Fy weights 16.38; activations 419.328
#         psums 128 * 511/512 = 127.75: writes 0.447 * 127.75 = 57.10425, reads 0.728 * 127.75 = 93.002
#   X:Fx  weights 0.728 * 288 * 5/16 = 65.52; activations 0.728 * 384 * 0.875 = 0.728 * 336 = 244.608
#         psums 336: writes 0.447 * 336 = 150.192, reads 244.608
CONV_BY_HAND = {
    (1.0, 8): {
        "X:Y": (1057.536, 29.484, 838.656, 28.608, 0.0),
        "IC:OC": (1057.536, 471.744, 209.664, 257.472, 419.328),
        "Fx:Fy": (1057.536, 29.484, 838.656, 57.216, 93.184),
        "X:Fx": (1057.536, 117.936, 279.552, 171.648, 279.552),
    },
    (0.5, 4): {
        "X:Y": (293.76, 16.38, 419.328, 28.608, 0.0),
        "IC:OC": (293.76, 262.08, 196.56, 193.104, 314.496),
        "Fx:Fy": (293.76, 16.38, 419.328, 57.10425, 93.002),
        "X:Fx": (293.76, 65.52, 244.608, 150.192, 244.608),
    },
}
# Linear, output-stationary whatever the dataflow: r_w = 1, r_a = 1 (n = 1), r_o = C_in = 8 (3 writes, no skip).
#   p = 1, q = 8:   mac 0.102 * 24 * 9 = 22.032; weights 0.728 * 24 * 9/16 = 9.828; activations 0.728 * 24 = 17.472;
#                   writes 0.447 * 3 = 1.341
#   p = 0.5, q = 4: mac 0.102 * 24 * 0.5 * 5 = 6.12; weights 0.728 * 24 * 5/16 = 5.46;
#                   activations 0.728 * 24 * 0.5 = 8.736; writes 1.341
LINEAR_BY_HAND = {(1.0, 8): (22.032, 9.828, 17.472, 1.341, 0.0), (0.5, 4): (6.12, 5.46, 8.736, 1.341, 0.0)}
NAMES = ("mac", "weight_reads", "activation_reads", "psum_writes", "psum_reads")


@pytest.mark.parametrize("setting", [(1.0, 8), (0.5, 4)])
@pytest.mark.parametrize("dataflow", ["X:Y", "IC:OC", "Fx:Fy", "X:Fx"])
def test_conv_layer_matches_hand_values(dataflow, setting):
    energy = layer_energy(CONV, *setting, dataflow, RAW)
    expected = dict(zip(NAMES, CONV_BY_HAND[setting][dataflow]))
    assert {name: energy[name] for name in NAMES} == pytest.approx(expected)
    assert energy["total"] == pytest.approx(sum(expected.values()))


@pytest.mark.parametrize("setting", [(1.0, 8), (0.5, 4)])
@pytest.mark.parametrize("dataflow", ["X:Y", "IC:OC", "Fx:Fy", "X:Fx"])
def test_linear_layer_is_output_stationary_under_every_dataflow(dataflow, setting):
    energy = layer_energy(LINEAR, *setting, dataflow, RAW)
    assert {name: energy[name] for name in NAMES} == pytest.approx(dict(zip(NAMES, LINEAR_BY_HAND[setting])))


def test_totals_by_hand():
    # 1057.536 + 29.484 + 838.656 + 28.608 = 1954.284; 293.76 + 262.08 + 196.56 + 193.104 + 314.496 = 1260
    assert layer_energy(CONV, 1.0, 8, "X:Y", RAW)["total"] == pytest.approx(1954.284)
    assert layer_energy(CONV, 0.5, 4, "IC:OC", RAW)["total"] == pytest.approx(1260.0)
    # 6.12 + 5.46 + 8.736 + 1.341 = 21.657
    assert layer_energy(LINEAR, 0.5, 4, "X:Fx", RAW)["total"] == pytest.approx(21.657)


def test_default_scale_is_emomc_1e_minus_6():
    assert layer_energy(CONV, 0.5, 4, "IC:OC")["total"] == pytest.approx(1260.0e-6)


def test_array_cuts_unrolled_channels():
    # 2 x 2 array, IC:OC, p = 0.5, q = 4: C_out cut to 2 -> 1152 / 2 = 576 activation reads * s(2) = 0.75 -> 432,
    # 0.728 * 432 = 314.496; C_in = 2 fits, psums as without the array (193.104, 314.496); weights unchanged.
    energy = layer_energy(CONV, 0.5, 4, "IC:OC", EnergyConstants(scale=1.0, array=(2, 2)))
    assert energy["activation_reads"] == pytest.approx(314.496)
    assert energy["psum_writes"] == pytest.approx(193.104)
    assert energy["weight_reads"] == pytest.approx(262.08)


def test_groups_wider_than_skip_limit_are_never_skipped():
    # skip_limit 3: IC:OC's activation group C_out = 4 is too wide -> 288 reads, 0.728 * 288 = 209.664;
    # the psum group C_in = 2 still skips: 193.104.
    energy = layer_energy(CONV, 0.5, 4, "IC:OC", EnergyConstants(scale=1.0, skip_limit=3))
    assert energy["activation_reads"] == pytest.approx(209.664)
    assert energy["psum_writes"] == pytest.approx(193.104)


def test_depthwise_conv_counts_per_group():
    # 4 -> 4 channels, 4 groups, 3x3, 2x2 output: N = 9 * 1 * 4 = 36, MACs = 36 * 4 = 144.
    # X:Y at p = 1, q = 8: r_o = kh kw (C_in / groups) = 9 -> 16 writes, 0.447 * 16 = 7.152.
    depthwise = LayerGeometry.conv(4, 4, (3, 3), (2, 2), groups=4)
    assert (depthwise.weights, depthwise.macs) == (36, 144)
    assert layer_energy(depthwise, 1.0, 8, "X:Y", RAW)["psum_writes"] == pytest.approx(7.152)


def test_model_energy_sums_layers_with_one_or_many_kept_fractions():
    layers = [CONV, LINEAR]
    same = model_energy(layers, 0.5, [4, 4], "IC:OC", RAW)
    assert same["total"] == pytest.approx(1260.0 + 21.657)
    mixed = model_energy(layers, [1.0, 0.5], [8, 4], "X:Y", RAW)
    assert mixed["mac"] == pytest.approx(1057.536 + 6.12)


def test_a_dataflow_of_your_own_is_a_function():
    def everything_once(geometry, array):
        return Reuse(weight=1, activation=1, psum=1, activation_group=None, psum_group=None, psum_read=False)

    # p = 1, q = 8: psums = 1152 writes, 0.447 * 1152 = 514.944
    assert layer_energy(CONV, 1.0, 8, everything_once, RAW)["psum_writes"] == pytest.approx(514.944)
    assert set(DATAFLOWS) == {"X:Y", "IC:OC", "Fx:Fy", "X:Fx"}


@pytest.mark.parametrize("kept, bits, message", [
    (1.5, 4, "kept fraction must be a number in [0, 1], got 1.5"),
    (-0.1, 4, "kept fraction must be a number in [0, 1]"),
    (0.5, 0, "bit width must be an integer >= 1, got 0"),
    (0.5, 4.0, "bit width must be an integer >= 1, got 4.0"),
])
def test_bad_kept_fraction_or_bits(kept, bits, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        layer_energy(CONV, kept, bits, "X:Y")


def test_unknown_dataflow_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown dataflow 'Y:X'; known: X:Y, IC:OC, Fx:Fy, X:Fx"):
        layer_energy(CONV, 0.5, 4, "Y:X")


def test_bad_geometry_and_constants():
    with pytest.raises(ConfigError, match="layer kind must be 'conv' or 'linear', got 'pool'"):
        LayerGeometry("pool", 2, 4)
    with pytest.raises(ConfigError, match="groups must divide both channel counts"):
        LayerGeometry.conv(3, 4, (3, 3), (4, 4), groups=2)
    with pytest.raises(ConfigError, match="output width must be an integer >= 1, got 0"):
        LayerGeometry.conv(2, 4, (3, 3), (4, 0))
    with pytest.raises(ConfigError, match="array must be"):
        EnergyConstants(array=(16,))
    with pytest.raises(ConfigError, match="energy constant read must be a finite number >= 0"):
        EnergyConstants(read=-1.0)
    with pytest.raises(ConfigError, match="expected one kept fraction .or 2. and 2 bit widths"):
        model_energy([CONV, LINEAR], 0.5, [4])


def test_numpy_scalars_are_accepted():
    import numpy as np

    assert layer_energy(CONV, np.float64(0.5), np.int64(4), "IC:OC", RAW)["total"] == pytest.approx(1260.0)
