"""The genome: keep fraction, decoding to ranks and kept entries, validation, and layer discovery."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from surrogate_emo.errors import ConfigError, SearchSpaceError, SurrogateEMOError
from surrogate_emo.models import lenet_5, mlp
from surrogate_emo.space import CompressionSpace, LayerSetting, LayerSpec


@pytest.fixture
def space() -> CompressionSpace:
    """The digits MLP: 64 -> 256 -> 128 -> 10, three layers, six genes."""
    return CompressionSpace.from_model(mlp((1, 8, 8), 10), (1, 8, 8))


def test_keep_fraction_end_points_are_exact(space):
    f = space.keep_fraction(np.array([0.0, 1.0]))
    assert f[0] == 0.0
    assert f[1] == 1.0


def test_keep_fraction_is_logarithmic_over_three_decades(space):
    f = space.keep_fraction(np.array([1 / 3, 2 / 3]))
    # (10**1 - 1) / 999 and (10**2 - 1) / 999: about 1% and 10%
    np.testing.assert_allclose(f, [9 / 999, 99 / 999], rtol=1e-12)
    assert f[0] == pytest.approx(0.01, abs=1e-3)
    assert f[1] == pytest.approx(0.1, abs=1e-3)


def test_keep_fraction_follows_decades():
    layer = LayerSpec("fc", "linear", 10, 10, True)
    f = CompressionSpace([layer], decades=2.0).keep_fraction(np.array([0.5]))
    np.testing.assert_allclose(f, [9 / 99], rtol=1e-12)


def test_keep_fraction_is_strictly_increasing(space):
    f = space.keep_fraction(np.linspace(0.0, 1.0, 1001))
    assert np.all(np.diff(f) > 0)
    assert f.min() >= 0.0 and f.max() <= 1.0


def test_decode_zero_genome_keeps_nothing(space):
    settings = space.decode(np.zeros(space.dim))
    assert settings == [LayerSetting(rank=0, nnz=0)] * 3


def test_decode_full_genome_keeps_full_rank_and_every_entry(space):
    settings = space.decode(np.ones(space.dim))
    # weight matrices 256x64, 128x256, 10x128
    assert settings == [LayerSetting(64, 256 * 64), LayerSetting(128, 128 * 256), LayerSetting(10, 10 * 128)]


def test_decode_mixes_genes_per_layer(space):
    genome = [1.0, 0.0, 0.0, 1.0, 2 / 3, 2 / 3]
    settings = space.decode(genome)
    assert settings[0] == LayerSetting(rank=64, nnz=0)
    assert settings[1] == LayerSetting(rank=0, nnz=128 * 256)
    # f(2/3) = 99/999: floor(0.0991 * 10) = 0 and floor(0.0991 * 1280) = 126
    assert settings[2] == LayerSetting(rank=0, nnz=126)


def test_gene_names_follow_layers(space):
    assert space.dim == 6
    assert space.gene_names == ["1.rank", "1.density", "3.rank", "3.density", "5.rank", "5.density"]


def test_validate_returns_float64_vector(space):
    vector = space.validate([0, 1, 0.5, 0.25, 1, 0])
    assert vector.dtype == np.float64
    assert vector.shape == (6,)


@pytest.mark.parametrize("genome, expected, got", [
    ([0.5] * 5, "(6,)", "(5,)"),
    ([0.5] * 7, "(6,)", "(7,)"),
    ([[0.5] * 6], "(6,)", "(1, 6)"),
])
def test_validate_wrong_length_names_expected_and_got(space, genome, expected, got):
    with pytest.raises(SearchSpaceError) as info:
        space.validate(genome)
    assert expected in str(info.value)
    assert got in str(info.value)


@pytest.mark.parametrize("position, value", [(0, 1.5), (3, -0.1), (5, float("nan")), (2, float("inf"))])
def test_validate_rejects_genes_outside_unit_cube(space, position, value):
    genome = [0.5] * 6
    genome[position] = value
    with pytest.raises(SearchSpaceError) as info:
        space.validate(genome)
    message = str(info.value)
    assert "[0, 1]" in message
    assert space.gene_names[position] in message
    assert repr(value) in message


@pytest.mark.parametrize("genome", ["abc", {"a": 1}, [1j] * 6, object()])
def test_validate_rejects_non_numeric_input(space, genome):
    with pytest.raises(SearchSpaceError, match="vector of 6 numbers"):
        space.validate(genome)


def test_search_space_error_is_a_value_error(space):
    with pytest.raises(ValueError):
        space.decode([2.0] * space.dim)
    assert issubclass(SearchSpaceError, SurrogateEMOError)
    assert issubclass(SearchSpaceError, ValueError)


def test_from_model_unknown_layer_names_list_compressible_layers():
    model = mlp((1, 8, 8), 10)
    with pytest.raises(ConfigError) as info:
        CompressionSpace.from_model(model, (1, 8, 8), layer_names=["1", "fc9", "2"])
    message = str(info.value)
    assert "fc9" in message and "'2'" in message  # "2" is the ReLU: not compressible
    assert "['1', '3', '5']" in message
    assert isinstance(info.value, ValueError)


def test_from_model_keeps_only_named_layers_in_given_order():
    space = CompressionSpace.from_model(mlp((1, 8, 8), 10), (1, 8, 8), layer_names=["5", "1"])
    assert [layer.name for layer in space.layers] == ["5", "1"]
    assert space.dim == 4


def test_from_model_on_lenet5_reads_shapes_and_output_positions():
    space = CompressionSpace.from_model(lenet_5((1, 28, 28), 10), (1, 28, 28))
    conv1, conv2, fc1, fc2 = space.layers
    assert (conv1.kind, conv1.rows, conv1.cols, conv1.out_positions) == ("conv2d", 20, 25, 24 * 24)
    assert (conv2.kind, conv2.rows, conv2.cols, conv2.out_positions) == ("conv2d", 50, 500, 8 * 8)
    assert (fc1.kind, fc1.rows, fc1.cols, fc1.out_positions) == ("linear", 500, 800, 1)
    assert (fc2.kind, fc2.rows, fc2.cols, fc2.out_positions) == ("linear", 10, 500, 1)
    assert all(layer.has_bias for layer in space.layers)
    assert conv2.max_rank == 50 and conv2.numel == 25000


def test_from_model_rejects_wrong_input_shape():
    with pytest.raises(ConfigError, match=r"\(1, 8, 8\)"):
        CompressionSpace.from_model(lenet_5((1, 28, 28), 10), (1, 8, 8))


def test_from_model_rejects_grouped_convolution():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten())
    with pytest.raises(ConfigError, match="groups=2"):
        CompressionSpace.from_model(model, (4, 6, 6))


def test_empty_space_and_bad_decades_are_config_errors():
    with pytest.raises(ConfigError, match="got none"):
        CompressionSpace([])
    with pytest.raises(ConfigError, match="decades"):
        CompressionSpace([LayerSpec("fc", "linear", 2, 2, False)], decades=0)


def _exact_gene(kept: int, of: int, decades: float = 3.0) -> float:
    """The gene whose documented keep fraction ``(10**(D g) - 1) / (10**D - 1)`` is exactly ``kept / of``."""
    return float(np.log10(1.0 + kept / of * (10.0**decades - 1.0)) / decades)


def test_every_exact_rank_and_entry_count_of_a_100x100_layer_decodes_to_itself():
    space = CompressionSpace.from_model(nn.Linear(100, 100), (100,))
    ranks = list(range(101))
    entries = [0, 1, 7, 10, 99, 100, 250, 1000, 1234, 4700, 5000, 9000, 9999, 10_000]
    X = np.array([[_exact_gene(r, 100), _exact_gene(entries[r % len(entries)], 10_000)] for r in ranks])
    decoded_ranks, decoded_nnz = space.decode_matrix(X)
    assert decoded_ranks[:, 0].tolist() == ranks
    assert decoded_nnz[:, 0].tolist() == [entries[r % len(entries)] for r in ranks]
    # the one-genome path agrees
    assert space.decode([_exact_gene(47, 100), _exact_gene(4700, 10_000)]) == [LayerSetting(rank=47, nnz=4700)]
