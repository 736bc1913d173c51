"""Exact costs of every scheme worked out by hand on one convolution and one linear layer.

The model: ``Conv2d(1, 2, 3)`` on a 1 x 4 x 4 input (18 weights, 2 x 2 output positions), then ``Linear(8, 3)``
(24 weights). The weights are 1, 2, 3, ... in row-major order, so the largest magnitudes are the last positions:
keeping 9 of the conv keeps positions 9..17 (a leading gap of 9 zeros) and keeping 12 of the linear keeps
positions 12..23 (a leading gap of 12).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from surrogate_emo.compress import measure
from surrogate_emo.compress.energy import LayerGeometry, layer_energy
from surrogate_emo.compress.pricing import Pricing, filler_table
from surrogate_emo.compress.coding import csr_fillers
from surrogate_emo.schemes import FiltersScheme, PruneQuantScheme, PruneScheme, QuantScheme

SHAPE = (1, 4, 4)
CSR2 = Pricing(coding="csr", index_bits=2)


def model() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.arange(1, 19, dtype=torch.float32).view(2, 1, 3, 3) / 10)
        net[2].weight.copy_(torch.arange(1, 25, dtype=torch.float32).view(3, 8) / 10)
    return net


def keep_gene(kept: int, numel: int, decades: float = 3.0) -> float:
    """The smallest gene that keeps ``kept`` of ``numel`` weights (a hair above, against rounding)."""
    return math.log10(1 + kept / numel * (10**decades - 1)) / decades + 1e-7


def bits_gene(bits: int, low: int = 2, high: int = 8) -> float:
    return (bits - low + 0.5) / (high - low + 1)


def energies(pairs) -> float:
    total = 0.0
    for geometry, p, q in pairs:
        total += layer_energy(geometry, p, q, "X:Y")["total"]
    return total


CONV, LINEAR = LayerGeometry.conv(1, 2, (3, 3), (2, 2)), LayerGeometry.linear(8, 3)


def check(scheme, genome, params, stored_bytes, macs, energy):
    costs = scheme.costs(genome)
    assert (costs.params, costs.bytes, costs.macs) == (params, stored_bytes, macs)
    assert costs.energy == pytest.approx(energy, rel=1e-12)
    assert measure(scheme.compress(model(), genome), SHAPE, scheme.pricing) == costs


def test_prune_under_csr_with_fillers():
    scheme = PruneScheme(model(), SHAPE, pricing=CSR2)
    genome = [keep_gene(9, 18), keep_gene(12, 24)]
    assert [s.kept for s in scheme.decode(genome)] == [9, 12]
    # conv: 9 kept + 2 fillers (a leading gap of 9 with 2-bit gaps: 9 // 4), 34 bits each, + 2 biases x 32
    #   = 374 + 64 = 438 bits -> 55 bytes; linear: 12 + 3 fillers -> 15 x 34 + 3 x 32 = 606 bits -> 76 bytes
    check(scheme, genome, params=(9 + 2) + (12 + 3), stored_bytes=55 + 76, macs=9 * 4 + 12,
          energy=energies([(CONV, 9 / 18, 32), (LINEAR, 12 / 24, 32)]))
    assert scheme.layer_columns(genome)["0.coding"] == "csr"


def test_prune_picks_the_smallest_coding_per_layer():
    scheme = PruneScheme(model(), SHAPE, pricing=Pricing(index_bits=2))
    # all kept: dense (18 x 32) beats csr (18 x 34) and coo (18 x 37)
    columns = scheme.layer_columns([1.0, keep_gene(1, 24)])
    assert columns["0.coding"] == "dense"
    # 1 of 24 kept at position 23: csr 1 + 5 fillers = 6 x 34 = 204 bits, coo 1 x (32 + 5) = 37: coo
    assert columns["2.coding"] == "coo"
    assert scheme.costs([1.0, keep_gene(1, 24)]).bytes == (18 * 32 + 64) // 8 + math.ceil((37 + 96) / 8)


def test_quant_at_4_bits_is_dense_ints_plus_a_scale_per_channel():
    scheme = QuantScheme(model(), SHAPE)
    genome = [bits_gene(4), bits_gene(4)]
    assert [s.bits for s in scheme.decode(genome)] == [4, 4]
    # conv: 18 x 4 + 2 scales x 32 + 2 biases x 32 = 200 bits = 25 bytes; linear: 24 x 4 + 3 x 32 + 3 x 32 = 288 = 36
    check(scheme, genome, params=20 + 27, stored_bytes=25 + 36, macs=18 * 4 + 24,
          energy=energies([(CONV, 1.0, 4), (LINEAR, 1.0, 4)]))


def test_prune_quant_under_csr():
    scheme = PruneQuantScheme(model(), SHAPE, pricing=CSR2)
    genome = [keep_gene(9, 18), bits_gene(4), keep_gene(12, 24), bits_gene(4)]
    # conv: (9 + 2) x (4 + 2) + 2 scales x 32 + 2 biases x 32 = 194 bits -> 25 bytes
    # linear: (12 + 3) x 6 + 3 x 32 + 3 x 32 = 282 bits -> 36 bytes
    check(scheme, genome, params=11 + 15, stored_bytes=25 + 36, macs=36 + 12,
          energy=energies([(CONV, 9 / 18, 4), (LINEAR, 12 / 24, 4)]))


def test_filters_remove_a_channel_and_the_linear_inputs_it_fed():
    scheme = FiltersScheme(model(), SHAPE)
    assert scheme.gene_names == ["0.channels"]  # the linear layer is the classifier
    small = scheme.compress(model(), [0.0])  # one channel of two kept
    assert small[0].weight.shape == (1, 1, 3, 3) and small[2].weight.shape == (3, 4)
    # the channel with the larger L1 norm (the second: 10..18) is kept, and the linear inputs it feeds (4..7)
    assert torch.equal(small[0].weight.flatten(), torch.arange(10, 19, dtype=torch.float32) / 10)
    assert torch.equal(small[2].weight, model()[2].weight[:, 4:])
    # conv 9 + 1, linear 12 + 3, float32; MACs 9 x 4 + 12
    check(scheme, [0.0], params=25, stored_bytes=100, macs=48,
          energy=energies([(LayerGeometry.conv(1, 1, (3, 3), (2, 2)), 1.0, 32), (LayerGeometry.linear(4, 3), 1.0, 32)]))


def test_filters_follow_batchnorm_and_flatten_in_a_cnn():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5), nn.ReLU(),
                        nn.Linear(5, 3))
    scheme = FiltersScheme(net, (1, 8, 8))
    assert scheme.gene_names == ["0.channels", "4.channels", "7.channels"]
    genome = [0.5, 0.5, 0.5]  # floor(4^0.5) = 2, floor(6^0.5) = 2, floor(5^0.5) = 2
    assert scheme.decode(genome) == [2, 2, 2]
    small = scheme.compress(net, genome)
    assert small[1].running_mean.shape == (2,) and small[4].weight.shape == (2, 2, 3, 3)
    assert small[7].weight.shape == (2, 2 * 2 * 2) and small[9].weight.shape == (3, 2)
    assert measure(small, (1, 8, 8), scheme.pricing) == scheme.costs(genome)
    with torch.no_grad():
        assert small(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_the_filler_table_counts_what_csr_counts_for_every_kept_count():
    rng = np.random.default_rng(0)
    order = rng.permutation(300)
    table = filler_table(order, index_bits=3)
    for kept in range(0, 301, 7):
        assert table[kept] == csr_fillers(np.sort(order[:kept]), index_bits=3), kept


def test_the_run_options_set_the_coding_index_width_and_dataflow():
    from surrogate_emo.config import RunConfig

    genome = [keep_gene(9, 18), keep_gene(12, 24)]
    config = RunConfig(scheme="prune", coding="csr", index_bits=2, dataflow="IC:OC")
    scheme = PruneScheme.from_config(config, model(), SHAPE)
    assert scheme.pricing == Pricing(coding="csr", index_bits=2, dataflow="IC:OC")
    assert scheme.costs(genome).bytes == 55 + 76  # as worked out above for csr with 2-bit gaps
    conv_energy = layer_energy(CONV, 9 / 18, 32, "IC:OC")["total"]
    assert scheme.costs(genome).energy == pytest.approx(conv_energy + layer_energy(LINEAR, 0.5, 32)["total"])
    assert scheme.costs(genome).energy != PruneScheme(model(), SHAPE).costs(genome).energy  # X:Y prices it otherwise
    coo = PruneScheme.from_config(RunConfig(scheme="prune", coding="coo"), model(), SHAPE)
    assert set(coo.layer_columns(genome)[f"{name}.coding"] for name in ("0", "2")) == {"coo"}
