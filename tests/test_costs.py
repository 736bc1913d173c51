"""The cheap objectives: costs counted from the genome equal costs measured on the built model, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from surrogate_emo.compress import CostModel, Costs, compress_model, measure
from surrogate_emo.models import build_model
from surrogate_emo.space import CompressionSpace

SHAPES = {"mlp": (1, 8, 8), "lenet-300-100": (1, 28, 28), "lenet-5": (1, 28, 28)}


def base_and_space(name: str) -> tuple[nn.Module, CompressionSpace, tuple[int, ...]]:
    torch.manual_seed(0)
    shape = SHAPES[name]
    base = build_model(name, shape, 10)
    return base, CompressionSpace.from_model(base, shape), shape


def genomes(dim: int, seed: int) -> np.ndarray:
    """Random genomes, plus the corners (nothing kept, everything kept) and a few exact gene end points."""
    rng = np.random.default_rng(seed)
    random = rng.random((10, dim))
    random[rng.random((10, dim)) < 0.15] = 0.0
    random[rng.random((10, dim)) < 0.15] = 1.0
    return np.vstack([random, np.zeros(dim), np.ones(dim)])


@pytest.mark.parametrize("name", list(SHAPES))
def test_cost_model_equals_measured_costs(name):
    base, space, shape = base_and_space(name)
    costs = CostModel(space, measure(base, shape))
    for genome in genomes(space.dim, seed=len(name)):
        assert costs.of(genome) == measure(compress_model(base, space, genome), shape), genome


@pytest.mark.parametrize("name", list(SHAPES))
def test_cost_model_equals_measured_costs_on_a_subset_of_layers(name):
    # uncompressed layers are carried over as dense: counted by CostModel as "the rest" of the model
    base, _, shape = base_and_space(name)
    names = [n for n, m in base.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    space = CompressionSpace.from_model(base, shape, layer_names=names[1::2])
    costs = CostModel(space, measure(base, shape))
    for genome in genomes(space.dim, seed=7)[:4]:
        assert costs.of(genome) == measure(compress_model(base, space, genome), shape)


def test_dense_lenet_300_100_by_hand():
    base, space, shape = base_and_space("lenet-300-100")
    # 784*300 + 300 = 235,500;  300*100 + 100 = 30,100;  100*10 + 10 = 1,010;  total 266,610
    params = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert params == 266_610
    # one MAC per weight for a Linear: 235,200 + 30,000 + 1,000 = 266,200
    assert measure(base, shape) == Costs(params=266_610, bytes=4 * 266_610, macs=266_200)
    assert CostModel(space, measure(base, shape)).of(np.ones(space.dim)).params > 266_610  # full rank + all entries


def test_dense_lenet_5_by_hand():
    base, space, shape = base_and_space("lenet-5")
    # conv1 20 x 1 x 5 x 5 + 20 = 520;  conv2 50 x 20 x 5 x 5 + 50 = 25,050;
    # 28 -> conv 24 -> pool 12 -> conv 8 -> pool 4, so fc1 sees 50*4*4 = 800: 800*500 + 500 = 400,500;
    # fc2 500*10 + 10 = 5,010;  total 520 + 25,050 + 400,500 + 5,010 = 431,080
    params = (20 * 25 + 20) + (50 * 20 * 25 + 50) + (800 * 500 + 500) + (500 * 10 + 10)
    assert params == 431_080
    # MACs: conv1 500 * 24*24 = 288,000; conv2 25,000 * 8*8 = 1,600,000; fc 400,000 + 5,000; total 2,293,000
    assert measure(base, shape) == Costs(params=431_080, bytes=4 * 431_080, macs=2_293_000)
    assert [layer.out_positions for layer in space.layers] == [576, 64, 1, 1]


def test_dense_digits_mlp_by_hand():
    base, space, shape = base_and_space("mlp")
    # 64*256 + 256 = 16,640;  256*128 + 128 = 32,896;  128*10 + 10 = 1,290;  total 50,826
    assert measure(base, shape).params == 50_826
    # an all-zero genome keeps only the biases: 256 + 128 + 10
    assert CostModel(space, measure(base, shape)).of(np.zeros(space.dim)) == Costs(394, 4 * 394, 0)


def test_ratios_are_compressed_over_dense():
    base, space, shape = base_and_space("lenet-5")
    costs = CostModel(space, measure(base, shape))
    genome = np.full(space.dim, 0.5)
    small = costs.of(genome)
    ratios = costs.ratios(genome)
    assert ratios == {"params": small.params / 431_080, "bytes": small.bytes / (4 * 431_080),
                      "macs": small.macs / 2_293_000}
    assert all(0.0 < value < 1.0 for value in ratios.values())


def test_costs_grow_with_each_gene():
    base, space, shape = base_and_space("lenet-300-100")
    costs = CostModel(space, measure(base, shape))
    genome = np.full(space.dim, 0.4)
    reference = costs.of(genome)
    for gene in range(space.dim):
        bigger = genome.copy()
        bigger[gene] = 0.9
        grown = costs.of(bigger)
        assert grown.params > reference.params and grown.bytes > reference.bytes and grown.macs > reference.macs


def _gene(kept: float, of: int, decades: float = 3.0) -> float:
    """A gene whose keep fraction lands half a unit above ``kept`` of ``of`` (so the floor gives ``kept``):
    the inverse of ``f(g) = (10**(D g) - 1) / (10**D - 1)``."""
    fraction = (kept + 0.5) / of if kept < of else 1.0
    return float(np.log10(1.0 + fraction * (10.0**decades - 1.0)) / decades)


def test_ratio_matrix_and_ratios_equal_costs_counted_by_hand_with_biases():
    # conv 2@3x3 on 1x5x5 (3x3 = 9 output positions), then 18 -> 4 -> 3; every layer has a bias
    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4), nn.ReLU(), nn.Linear(4, 3))
    shape = (1, 5, 5)
    space = CompressionSpace.from_model(base, shape)
    # dense: conv 18 weights + 2 biases, 18 * 9 MACs; 72 + 4, 72 MACs; 12 + 3, 12 MACs
    dense = Costs(params=20 + 76 + 15, bytes=4 * 111, macs=162 + 72 + 12)
    assert measure(base, shape) == dense
    costs = CostModel(space, dense)
    # conv rank 1 of 2, 5 of 18 entries; fc1 rank 2 of 4, 10 of 72; fc2 rank 0 of 3, 3 of 12
    genome = np.array([_gene(1, 2), _gene(5, 18), _gene(2, 4), _gene(10, 72), 0.0, _gene(3, 12)])
    assert [(s.rank, s.nnz) for s in space.decode(genome)] == [(1, 5), (2, 10), (0, 3)]
    # params: U, V, kept values, biases.  conv 1*(2+9) + 5 + 2 = 18;  fc1 2*(4+18) + 10 + 4 = 58;  fc2 3 + 3 = 6
    # bytes: 4 per param plus 4 per kept entry's int32 index: 4*18 + 4*5 = 92;  4*58 + 4*10 = 272;  4*6 + 4*3 = 36
    # MACs: (U, V, kept entries) per output position: (11 + 5) * 9 = 144;  44 + 10 = 54;  3
    small = Costs(params=18 + 58 + 6, bytes=92 + 272 + 36, macs=144 + 54 + 3)
    assert measure(compress_model(base, space, genome), shape) == small  # the hand count, built and measured
    # an all-zero genome keeps the biases alone: 2 + 4 + 3 values, no MACs
    expected = np.array([[82 / 111, 400 / 444, 201 / 246], [9 / 111, 36 / 444, 0.0]])
    names = ("params", "bytes", "macs")
    matrix = costs.ratio_matrix(np.vstack([genome, np.zeros(space.dim)]), names)
    np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=0)
    for row, g in zip(expected, (genome, np.zeros(space.dim))):
        ratios = costs.ratios(g)
        np.testing.assert_allclose([ratios[n] for n in names], row, rtol=1e-12, atol=0)
    # any subset and order of the names gives those columns
    np.testing.assert_allclose(costs.ratio_matrix(genome[None, :], ("macs", "params")), expected[:1, [2, 0]],
                               rtol=1e-12, atol=0)
