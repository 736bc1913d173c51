"""The contract every compression scheme keeps: exact costs, inputs never modified, determinism, warm starts,
genomes checked gene by gene. A new scheme is added to `SCHEMES_UNDER_TEST` and gets these tests for free."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from surrogate_emo.compress import measure
from surrogate_emo.config import RunConfig
from surrogate_emo.errors import ConfigError, SearchSpaceError
from surrogate_emo.models import mlp
from surrogate_emo.pipeline import check_names
from surrogate_emo.schemes import (SCHEMES, FiltersScheme, LowRankSparseScheme, PruneQuantScheme, PruneScheme, QuantScheme, Scheme,
                                   scheme_class)

SCHEMES_UNDER_TEST = [LowRankSparseScheme, PruneScheme, FiltersScheme, QuantScheme, PruneQuantScheme]


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Linear(16, 10))


MODELS = {"mlp": (lambda: mlp((1, 8, 8), 10), (1, 8, 8)), "cnn": (small_cnn, (1, 8, 8))}


@pytest.fixture(params=[(cls, model) for cls in SCHEMES_UNDER_TEST for model in MODELS],
                ids=lambda p: f"{p[0].__name__}-{p[1]}")
def case(request) -> tuple[Scheme, nn.Module, tuple[int, ...]]:
    cls, model_name = request.param
    factory, shape = MODELS[model_name]
    torch.manual_seed(0)
    base = factory()
    return cls(base, shape), base, shape


def genomes(scheme: Scheme, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.vstack([np.zeros(scheme.dim), np.ones(scheme.dim), rng.random((n, scheme.dim))])


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_registered_scheme_is_under_test():
    assert set(SCHEMES.values()) <= set(SCHEMES_UNDER_TEST)
    assert all(SCHEMES[name].name == name for name in SCHEMES)


def test_costs_from_the_genome_are_what_the_built_model_stores_and_computes(case):
    scheme, base, shape = case
    assert scheme.dense == measure(base, shape, scheme.pricing)
    X = genomes(scheme)
    for genome in X:
        assert scheme.costs(genome) == measure(scheme.compress(base, genome), shape, scheme.pricing), genome
    names = scheme.cost_names
    ratios = scheme.ratio_matrix(X, names)
    expected = np.array([[scheme.ratios(g)[name] for name in names] for g in X])
    np.testing.assert_array_equal(ratios[:, :3], expected[:, :3])  # integer counts: exact
    np.testing.assert_allclose(ratios, expected, rtol=1e-12)  # energy: floats summed in another order


def test_compressing_never_modifies_the_input_model(case):
    scheme, base, shape = case
    before = {k: v.clone() for k, v in base.state_dict().items()}
    modules = [type(m) for m in base.modules()]
    compressed = scheme.compress(base, np.full(scheme.dim, 0.7))
    assert compressed is not base and [type(m) for m in base.modules()] == modules
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    # a compressed input (warm start) is left as it came too
    kept = {k: v.clone() for k, v in compressed.state_dict().items()}
    scheme.compress(compressed, np.full(scheme.dim, 0.5))
    assert all(torch.equal(kept[k], v) for k, v in compressed.state_dict().items())


def test_compression_is_deterministic(case):
    scheme, base, _ = case
    genome = genomes(scheme)[3]
    assert states_equal(scheme.compress(base, genome), scheme.compress(base, genome))


def test_a_compressed_model_is_recompressed_to_a_smaller_genome_it_holds(case):
    scheme, base, shape = case
    big, small = np.full(scheme.dim, 0.85), np.full(scheme.dim, 0.6)
    assert scheme.holds(np.vstack([big, small]), small).tolist() == [True, True]
    if scheme.costs(small).params < scheme.costs(big).params:  # fewer kept values cannot hold more
        assert not scheme.holds(small[None, :], big)[0]
    source = scheme.compress(base, big)
    again = scheme.compress(source, small)
    assert measure(again, shape, scheme.pricing) == scheme.costs(small)
    with torch.no_grad():
        out = again(torch.randn(4, *shape))
    assert out.shape == (4, 10) and torch.isfinite(out).all()


def test_bad_genomes_are_rejected_naming_the_gene(case):
    scheme, base, _ = case
    genome = np.full(scheme.dim, 0.5)
    genome[1] = np.nan
    name = scheme.gene_names[1]
    for call in (scheme.validate, scheme.decode, scheme.costs, scheme.ratios, scheme.layer_columns,
                 lambda g: scheme.compress(base, g)):
        with pytest.raises(SearchSpaceError, match=f"{name}=nan"):
            call(genome)
    with pytest.raises(SearchSpaceError, match=f"genome 1: .*{name}=1.5"):
        scheme.ratio_matrix(np.vstack([np.zeros(scheme.dim), np.where(np.arange(scheme.dim) == 1, 1.5, 0.0)]),
                            ("params",))
    with pytest.raises(SearchSpaceError, match=rf"shape \({scheme.dim},\).*got shape \({scheme.dim + 1},\)"):
        scheme.validate(np.zeros(scheme.dim + 1))


def test_genes_decoding_columns_and_description(case):
    scheme, _, _ = case
    genome = genomes(scheme)[4]
    assert len(scheme.gene_names) == scheme.dim == len(set(scheme.gene_names))
    assert len(scheme.decode(genome)) == len(scheme.layers) == len(scheme.layer_names)
    columns = scheme.layer_columns(genome)
    assert [columns[f"gene:{name}"] for name in scheme.gene_names] == [round(float(g), 6) for g in genome]
    json.dumps(scheme.describe())


def test_from_config_reads_layers_and_decades():
    base = mlp((1, 8, 8), 10)
    for cls in SCHEMES_UNDER_TEST:
        scheme = cls.from_config(RunConfig(layers=["3"], decades=2.0), base, (1, 8, 8))
        assert scheme.layer_names == ["3"] and scheme.decades == 2.0
        with pytest.raises(ConfigError, match="decades must be a positive number, got 0"):
            cls(base, (1, 8, 8), decades=0)


def test_the_lowrank_sparse_scheme_is_the_space_operator_and_cost_model():
    from surrogate_emo.compress import CostModel, compress_model
    from surrogate_emo.space import CompressionSpace

    base, shape = mlp((1, 8, 8), 10), (1, 8, 8)
    scheme, space = LowRankSparseScheme(base, shape), CompressionSpace.from_model(base, shape)
    cost_model = CostModel(space, measure(base, shape))
    for genome in genomes(scheme):
        assert scheme.decode(genome) == space.decode(genome) and scheme.costs(genome) == cost_model.of(genome)
        assert states_equal(scheme.compress(base, genome), compress_model(base, space, genome))
    X = genomes(scheme)
    np.testing.assert_array_equal(scheme.ratio_matrix(X, ("macs", "params")),
                                  cost_model.ratio_matrix(X, ("macs", "params")))
    assert scheme.describe() == space.describe()


def test_an_unknown_scheme_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown scheme 'low-rank'; known: filters, lowrank-sparse, prune.*package.module:Name"):
        scheme_class("low-rank")
    with pytest.raises(ConfigError, match="unknown scheme 'low-rank'; known: filters, lowrank-sparse"):
        check_names(RunConfig(scheme="low-rank"))  # before any data is loaded or model trained


def test_a_user_scheme_is_accepted_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_schemes.py").write_text(textwrap.dedent('''
        from surrogate_emo.schemes import LowRankSparseScheme

        class Mine(LowRankSparseScheme):
            name = "mine"

        NOT_A_SCHEME = object()
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        mine = scheme_class("my_schemes:Mine")
        assert issubclass(mine, Scheme) and mine.__name__ == "Mine"
        assert mine(mlp((1, 8, 8), 10), (1, 8, 8)).dim == 6
        with pytest.raises(ConfigError, match="must name a subclass of surrogate_emo.schemes.Scheme, got <object"):
            scheme_class("my_schemes:NOT_A_SCHEME")
    finally:
        sys.modules.pop("my_schemes", None)


def test_a_lowrank_sparse_warm_start_is_the_compression_of_its_dense_equivalent():
    """Re-compressing a compressed model works from its effective weights ``U V + S``: the same as compressing the
    dense model that holds those weights."""
    import copy

    from surrogate_emo.compress.operator import dense_weight

    torch.manual_seed(0)
    base, shape = small_cnn(), (1, 8, 8)
    scheme = LowRankSparseScheme(base, shape)
    source = scheme.compress(base, np.full(scheme.dim, 0.85))
    equivalent = copy.deepcopy(base)
    with torch.no_grad():
        for name in scheme.layer_names:
            equivalent.get_submodule(name).weight.copy_(dense_weight(source.get_submodule(name)))
    small = np.full(scheme.dim, 0.6)
    warm, cold = scheme.compress(source, small), scheme.compress(equivalent, small)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        torch.testing.assert_close(warm(x), cold(x), rtol=1e-5, atol=1e-6)


def test_prune_with_recovery_lets_pruned_weights_return_and_ends_with_the_genomes_count():
    from surrogate_emo.compress.masks import masked_layers
    from surrogate_emo.data import load_dataset
    from surrogate_emo.evaluate import Evaluator

    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    base = mlp(data.input_shape, data.n_classes)
    fixed = PruneScheme(base, data.input_shape)
    moving = PruneScheme(base, data.input_shape, recovery=True, recovery_every=5)
    genome = np.full(fixed.dim, 0.6)
    kept = [s.kept for s in fixed.decode(genome)]
    start = {name: layer.mask.clone() for name, layer in masked_layers(fixed.compress(base, genome)).items()}

    def masks(scheme):
        model, _ = Evaluator(base, data, scheme, steps=60, lr=1e-2).finetune(genome, seed=0)
        return {name: (layer.mask.clone(), layer.recovery) for name, layer in masked_layers(model).items()}

    for name, (mask, recovery) in masks(fixed).items():  # fixed masks never move
        assert torch.equal(mask, start[name]) and not recovery
    moved = masks(moving)
    assert [int(mask.sum()) for mask, _ in moved.values()] == kept  # the genome's count, exactly
    assert not any(recovery for _, recovery in moved.values())  # fixed from then on
    assert any(not torch.equal(mask, start[name]) for name, (mask, _) in moved.items())  # weights came back
    with pytest.raises(ConfigError, match="recovery_every must be an integer >= 1, got 0"):
        PruneScheme(base, data.input_shape, recovery=True, recovery_every=0)


def test_a_gradual_schedule_goes_from_everything_kept_to_the_genome_through_nested_structures(case):
    scheme, base, _ = case
    genome = genomes(scheme)[5]
    steps = [scheme.toward(genome, done) for done in np.linspace(0.0, 1.0, 9)]
    assert scheme.costs(steps[0]) == scheme.costs(np.ones(scheme.dim))  # nothing removed yet
    np.testing.assert_array_equal(steps[-1], genome)
    stored = [scheme.costs(g).bytes for g in steps]
    assert stored == sorted(stored, reverse=True) and stored[0] > stored[-1]
    for earlier, later in zip(steps, steps[1:]):  # each tightening re-compresses a model that holds the next
        assert scheme.holds(earlier[None, :], later)[0]


def test_gradual_finetune_ends_at_the_genomes_structure():
    from surrogate_emo.data import load_dataset
    from surrogate_emo.schedule import gradual_finetune

    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    base = mlp(data.input_shape, data.n_classes)
    for cls in SCHEMES_UNDER_TEST:
        scheme = cls(base, data.input_shape)
        genome = np.full(scheme.dim, 0.5)
        model = gradual_finetune(scheme, base, genome, data.train, steps=40, lr=1e-3, batch_size=64, seed=0,
                                 updates=4)
        assert measure(model, data.input_shape, scheme.pricing) == scheme.costs(genome), cls.__name__
