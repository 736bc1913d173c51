"""Low-rank plus sparse compression: exact hand-counted costs, reconstruction, storage, training, no mutation."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from surrogate_emo.compress import (CostModel, Costs, LowRankSparse, LowRankSparseConv2d, LowRankSparseLinear,
                                    compress_layer, compress_model, decompose, measure)
from surrogate_emo.data import Split
from surrogate_emo.models import lenet_5, mlp
from surrogate_emo.space import CompressionSpace, LayerSetting
from surrogate_emo.train import fit


def gene_for(count: int, total: int, decades: float = 3.0) -> float:
    """A gene whose decoding keeps exactly ``count`` of ``total`` (aims at the middle of the floor's step)."""
    fraction = min((count + 0.5) / total, 1.0)
    return math.log10(1.0 + fraction * (10.0 ** decades - 1.0)) / decades


def saved_size(module: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- exact costs, by hand


def test_linear_costs_by_hand():
    base = nn.Sequential(nn.Linear(784, 300))
    space = CompressionSpace.from_model(base, (784,))
    genome = [gene_for(10, 300), gene_for(1000, 784 * 300)]
    assert space.decode(genome) == [LayerSetting(rank=10, nnz=1000)]

    params = 10 * (300 + 784) + 1000 + 300  # U 300x10, V 10x784, 1000 values, bias
    expected = Costs(params=params, bytes=4 * params + 4 * 1000, macs=10 * (784 + 300) + 1000)
    assert params == 12_140

    layer = compress_layer(base[0], LayerSetting(rank=10, nnz=1000))
    assert measure(nn.Sequential(layer), (784,)) == expected
    assert measure(compress_model(base, space, genome), (784,)) == expected
    assert CostModel(space, measure(base, (784,))).of(genome) == expected


@pytest.mark.parametrize("rank, nnz", [(0, 0), (7, 333), (50, 0), (0, 25_000), (50, 25_000)])
def test_conv_costs_by_hand(rank, nnz):
    # Conv2d(20, 50, 5) on a 12x12 input: an 8x8 output, weight read as 50 x (20*5*5) = 50 x 500
    base = nn.Sequential(nn.Conv2d(20, 50, 5))
    space = CompressionSpace.from_model(base, (20, 12, 12))
    assert space.layers[0].out_positions == 64
    genome = [gene_for(rank, 50), gene_for(nnz, 25_000)]
    assert space.decode(genome) == [LayerSetting(rank=rank, nnz=nnz)]

    params = rank * (50 + 500) + nnz + 50
    expected = Costs(params=params, bytes=4 * params + 4 * nnz, macs=(rank * (50 + 500) + nnz) * 64)

    layer = compress_layer(base[0], LayerSetting(rank, nnz))
    assert measure(nn.Sequential(layer), (20, 12, 12)) == expected
    assert measure(compress_model(base, space, genome), (20, 12, 12)) == expected
    assert CostModel(space, measure(base, (20, 12, 12))).of(genome) == expected


def test_dense_costs_by_hand():
    conv = measure(nn.Sequential(nn.Conv2d(20, 50, 5)), (20, 12, 12))
    assert conv == Costs(params=25_050, bytes=4 * 25_050, macs=25_000 * 64)
    linear = measure(nn.Sequential(nn.Linear(784, 300, bias=False)), (784,))
    assert linear == Costs(params=235_200, bytes=4 * 235_200, macs=235_200)


def test_layer_without_bias_counts_no_bias():
    base = nn.Sequential(nn.Linear(30, 20, bias=False))
    space = CompressionSpace.from_model(base, (30,))
    genome = [gene_for(3, 20), gene_for(40, 600)]
    expected = Costs(params=3 * 50 + 40, bytes=4 * (3 * 50 + 40) + 4 * 40, macs=3 * 50 + 40)
    assert CostModel(space, measure(base, (30,))).of(genome) == expected
    assert measure(compress_model(base, space, genome), (30,)) == expected


# ---------------------------------------------------------------- reconstruction


@pytest.mark.parametrize("layer, x_shape", [
    (nn.Linear(64, 32), (5, 64)),
    (nn.Linear(20, 48), (5, 20)),
    (nn.Conv2d(3, 8, 3, stride=2, padding=1), (2, 3, 11, 11)),
    (nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 0), dilation=(1, 2)), (2, 4, 9, 10)),
])
def test_full_rank_without_residual_reproduces_layer(layer, x_shape):
    rows, cols = layer.weight.shape[0], layer.weight[0].numel()
    compressed = compress_layer(layer, LayerSetting(rank=min(rows, cols), nnz=0))
    x = torch.randn(x_shape)
    with torch.no_grad():
        expected, got = layer(x), compressed(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(compressed.dense_weight(), layer.weight.detach(), atol=1e-5, rtol=1e-5)


def test_conv_kinds_and_forward_match_dense_weight():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    compressed = compress_layer(conv, LayerSetting(rank=2, nnz=10))
    assert isinstance(compressed, LowRankSparseConv2d)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        expected = nn.functional.conv2d(x, compressed.dense_weight(), conv.bias, stride=2, padding=1)
        torch.testing.assert_close(compressed(x), expected, atol=1e-5, rtol=1e-5)


def test_linear_forward_matches_dense_weight():
    linear = nn.Linear(12, 9)
    compressed = compress_layer(linear, LayerSetting(rank=3, nnz=17))
    assert isinstance(compressed, LowRankSparseLinear)
    x = torch.randn(4, 12)
    with torch.no_grad():
        torch.testing.assert_close(compressed(x), x @ compressed.dense_weight().t() + linear.bias, atol=1e-6, rtol=1e-5)


def test_nothing_kept_leaves_only_the_bias():
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    compressed = compress_layer(conv, LayerSetting(rank=0, nnz=0))
    with torch.no_grad():
        out = compressed(torch.randn(2, 3, 9, 9))
    assert out.shape == (2, 4, 5, 5)
    torch.testing.assert_close(out, conv.bias.detach().view(1, -1, 1, 1).expand_as(out))


def test_rank_zero_is_magnitude_pruning():
    linear = nn.Linear(40, 30)
    w = linear.weight.detach()
    compressed = compress_layer(linear, LayerSetting(rank=0, nnz=100))
    assert compressed.rank == 0 and compressed.nnz == 100
    largest = torch.topk(w.flatten().abs(), 100).indices
    assert set(compressed.indices.tolist()) == set(largest.tolist())
    # the kept values are the original weights at their positions, bit for bit
    assert torch.equal(compressed.values.detach(), w.flatten()[compressed.indices.long()])
    pruned = torch.zeros(w.numel())
    pruned[largest] = w.flatten()[largest]
    assert torch.equal(compressed.dense_weight().detach(), pruned.view_as(w))


@pytest.mark.parametrize("rank", [1, 5, 17])
def test_nnz_zero_is_truncated_svd(rank):
    w = torch.randn(25, 40)
    u, v, values, indices = decompose(w, rank, 0)
    assert u.shape == (25, rank) and v.shape == (rank, 40)
    assert values.numel() == 0 and indices.numel() == 0
    singular = torch.linalg.svdvals(w.double())
    error = torch.linalg.matrix_norm(w.double() - (u @ v).double())
    expected = singular[rank:].square().sum().sqrt()
    assert error.item() == pytest.approx(expected.item(), rel=1e-5)


def test_rank_plus_nnz_keeps_largest_entries_of_residual():
    w = torch.randn(20, 30)
    rank, nnz = 4, 50
    u, v, values, indices = decompose(w, rank, nnz)
    left, singular, right = torch.linalg.svd(w.double(), full_matrices=False)
    residual = (w.double() - left[:, :rank] @ torch.diag(singular[:rank]) @ right[:rank]).flatten()
    largest = torch.topk(residual.abs(), nnz).indices
    assert set(indices.tolist()) == set(largest.tolist())
    assert torch.all(indices[1:] > indices[:-1])  # stored sorted
    torch.testing.assert_close(values.double(), residual[indices], atol=1e-6, rtol=1e-5)
    # and the sparse part adds exactly those entries on top of the low-rank part
    approx = (u @ v).flatten()
    approx[indices] += values
    kept = torch.zeros_like(residual)
    kept[largest] = residual[largest]
    torch.testing.assert_close(approx.double(), (w.double().flatten() - residual + kept), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- storage


def test_saved_size_covers_stored_bytes_and_beats_dense():
    linear = nn.Linear(784, 300)
    compressed = compress_layer(linear, LayerSetting(rank=10, nnz=1000))
    stored = measure(nn.Sequential(compressed), (784,)).bytes
    assert saved_size(compressed) >= stored
    assert saved_size(compressed) < saved_size(linear) / 10


def test_indices_are_an_int32_buffer_not_a_parameter():
    compressed = compress_layer(nn.Linear(10, 8), LayerSetting(rank=2, nnz=5))
    assert compressed.indices.dtype == torch.int32
    assert "indices" in dict(compressed.named_buffers())
    assert "indices" not in dict(compressed.named_parameters())
    assert set(dict(compressed.named_parameters())) == {"u", "v", "values", "bias"}
    assert compressed.state_dict()["indices"].element_size() == 4


# ---------------------------------------------------------------- training


def test_fit_trains_factors_values_and_bias_but_not_indices():
    base = mlp((1, 4, 4), 3, hidden=(12,))
    space = CompressionSpace.from_model(base, (1, 4, 4))
    model = compress_model(base, space, [0.8, 0.6, 0.9, 0.7])
    layers = [m for m in model.modules() if isinstance(m, LowRankSparse)]
    assert len(layers) == 2 and all(layer.rank > 0 and layer.nnz > 0 for layer in layers)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}

    generator = torch.Generator().manual_seed(1)
    data = Split(x=torch.randn(64, 1, 4, 4, generator=generator), y=torch.randint(0, 3, (64,), generator=generator))
    assert fit(model, data, steps=5, lr=1e-2, batch_size=16) == 5

    after = model.state_dict()
    for prefix in ("1.", "3."):
        for name in ("u", "v", "values", "bias"):
            assert not torch.equal(before[prefix + name], after[prefix + name]), prefix + name
        assert torch.equal(before[prefix + "indices"], after[prefix + "indices"])
        assert after[prefix + "indices"].dtype == torch.int32


# ---------------------------------------------------------------- no mutation, warm start


def test_compress_model_does_not_mutate_its_input():
    base = lenet_5((1, 16, 16), 10)
    space = CompressionSpace.from_model(base, (1, 16, 16))
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    modules_before = [type(m) for m in base.modules()]
    small = compress_model(base, space, [0.3] * space.dim)
    after = base.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert [type(m) for m in base.modules()] == modules_before
    assert isinstance(small[0], LowRankSparseConv2d) and isinstance(base[0], nn.Conv2d)
    # the copy shares no storage with the original
    small[-1].bias.data.add_(1.0)
    assert torch.equal(base[-1].bias, before["7.bias"])


def test_warm_start_recompresses_from_effective_weight():
    base = mlp((1, 8, 8), 10, hidden=(32,))
    space = CompressionSpace.from_model(base, (1, 8, 8))
    source = compress_model(base, space, [0.8, 0.7, 0.9, 0.6])
    source_state = {name: tensor.clone() for name, tensor in source.state_dict().items()}

    full = compress_model(source, space, np.ones(space.dim))
    for name in ("1", "3"):
        torch.testing.assert_close(full.get_submodule(name).dense_weight(),
                                   source.get_submodule(name).dense_weight(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(full.get_submodule(name).bias, source.get_submodule(name).bias)

    smaller_genome = [0.5, 0.4, 0.6, 0.3]
    smaller = compress_model(source, space, smaller_genome)
    expected = CostModel(space, measure(base, (1, 8, 8))).of(smaller_genome)
    assert measure(smaller, (1, 8, 8)) == expected
    assert expected.params < measure(source, (1, 8, 8)).params
    assert [layer.nnz for layer in (smaller[1], smaller[3])] < [layer.nnz for layer in (source[1], source[3])]
    # the source, itself a compressed model, is not touched either
    assert all(torch.equal(tensor, source_state[name]) for name, tensor in source.state_dict().items())
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(full(x), source(x), atol=1e-4, rtol=1e-4)


def test_warm_start_of_conv_keeps_geometry():
    base = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.Flatten())
    space = CompressionSpace.from_model(base, (3, 9, 9))
    source = compress_model(base, space, [0.9, 0.8])
    again = compress_model(source, space, [1.0, 1.0])
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(again(x), source(x), atol=1e-5, rtol=1e-5)
    assert again[0].dense_weight().shape == (6, 3, 3, 3)
