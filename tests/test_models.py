"""Reference networks: vgg-small's layout, parameter count, input checks, and its compression."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from surrogate_emo.compress import CostModel, compress_model, measure
from surrogate_emo.config import RunConfig
from surrogate_emo.errors import ConfigError
from surrogate_emo.models import MODELS, build_model, vgg_small
from surrogate_emo.space import CompressionSpace


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_vgg_small_is_a_built_in_name():
    assert MODELS["vgg-small"] is vgg_small
    names = {f.name: f for f in dataclasses.fields(RunConfig)}["model"].metadata["names"]
    assert set(names) == set(MODELS)


def test_vgg_small_parameter_count_by_hand():
    # six 3x3 convolutions without bias (each followed by a batch norm: weight and bias per channel)
    convs = 9 * (1 * 32 + 32 * 32 + 32 * 64 + 64 * 64 + 64 * 128 + 128 * 128)
    norms = 2 * (32 + 32 + 64 + 64 + 128 + 128)
    # 28 -> 14 -> 7 -> 3 after three 2x2 pools: 128 x 3 x 3 = 1152 features, then 256 hidden, then 10 classes
    classifier = 1152 * 256 + 256 + 256 * 10 + 10
    assert (convs, norms, classifier) == (285_984, 896, 297_738)
    assert n_params(vgg_small((1, 28, 28), 10)) == convs + norms + classifier == 584_618
    # three input channels and 32x32: the first convolution grows by 2 x 288, the flat features to 128 x 4 x 4
    assert n_params(vgg_small((3, 32, 32), 10)) == 584_618 + 2 * 288 + (2048 - 1152) * 256 == 814_570


def test_vgg_small_layout():
    model = vgg_small((1, 28, 28), 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == (["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d"]) * 3 + ["Flatten", "Linear", "ReLU",
                                                                                     "Linear"]
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8), (2, 9, 13)])
def test_vgg_small_output_shape(shape):
    model = vgg_small(shape, 10)
    assert model(torch.randn(4, *shape)).shape == (4, 10)  # training mode: batch statistics
    assert model.eval()(torch.randn(1, *shape)).shape == (1, 10)
    assert build_model("vgg-small", shape, 7)(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("shape, got", [((1, 7, 28), "7x28"), ((3, 32, 4), "32x4")])
def test_vgg_small_rejects_inputs_too_small_for_its_pools(shape, got):
    with pytest.raises(ConfigError) as info:
        build_model("vgg-small", shape, 10)
    assert str(info.value) == f"vgg-small needs inputs of at least 8x8 pixels (28x28 or 32x32 intended), got {got}"


def test_vgg_small_rejects_inputs_without_channels():
    with pytest.raises(ConfigError, match=r"C x H x W, got shape \(64,\)"):
        build_model("vgg-small", (64,), 10)


def test_vgg_small_compresses_convolutions_and_linears_leaving_batch_norms():
    torch.manual_seed(0)
    shape = (1, 28, 28)
    base = vgg_small(shape, 10)
    base(torch.randn(8, *shape))  # running statistics away from their initial values
    space = CompressionSpace.from_model(base, shape)
    assert [layer.name for layer in space.layers] == ["0", "3", "7", "10", "14", "17", "22", "24"]
    assert [layer.kind for layer in space.layers] == ["conv2d"] * 6 + ["linear"] * 2
    assert [layer.out_positions for layer in space.layers[:6]] == [784, 784, 196, 196, 49, 49]
    genome = np.full(space.dim, 0.5)
    small = compress_model(base, space, genome)
    assert small.eval()(torch.randn(2, *shape)).shape == (2, 10)
    assert n_params(small) < n_params(base)
    norms = [(a, b) for a, b in zip(base, small) if isinstance(a, nn.BatchNorm2d)]
    assert len(norms) == 6
    for before, after in norms:
        assert isinstance(after, nn.BatchNorm2d)
        for key, value in before.state_dict().items():
            assert torch.equal(after.state_dict()[key], value)
    costs = CostModel(space, measure(base, shape))
    for genes in (genome, np.random.default_rng(0).random(space.dim), np.zeros(space.dim)):
        assert costs.of(genes) == measure(compress_model(base, space, genes), shape)
