from __future__ import annotations

import numpy as np
import pytest
import torch

from surrogate_emo.cache import ModelCache, genome_key
from surrogate_emo.errors import SurrogateEMOWarning
from surrogate_emo.evaluate import Evaluator
from surrogate_emo.pipeline import prepare
from tiny import tiny_config


def test_round_trip_is_exact(tmp_path):
    cache = ModelCache(tmp_path)
    state = {"w": torch.randn(4, 3), "i": torch.arange(5, dtype=torch.int32)}
    cache.put(np.array([0.1, 0.2]), state)
    loaded = cache.load(np.array([0.1, 0.2]))
    assert all(torch.equal(loaded[k], state[k]) and loaded[k].dtype == state[k].dtype for k in state)
    assert cache.load(np.array([0.1, 0.3])) is None


def test_corrupt_or_missing_entries_are_skipped_and_dropped(tmp_path):
    cache = ModelCache(tmp_path)
    cache.put(np.array([0.1]), {"w": torch.ones(10)})
    cache.put(np.array([0.2]), {"w": torch.ones(10)})
    path = tmp_path / f"{genome_key(np.array([0.1]))}.pt"
    path.write_bytes(path.read_bytes()[:-7] + b"garbage")
    with pytest.warns(SurrogateEMOWarning, match="checksum mismatch"):
        assert cache.load(np.array([0.1])) is None
    (tmp_path / f"{genome_key(np.array([0.2]))}.pt").unlink()
    with pytest.warns(SurrogateEMOWarning, match="skipping cache entry"):
        assert cache.load(np.array([0.2])) is None
    assert cache.entries() == []


def test_least_recently_used_entries_go_first(tmp_path):
    cache = ModelCache(tmp_path, max_bytes=10**9)
    cache.put(np.array([0.0]), {"w": torch.ones(1000)}, label="a")
    size = sum(p.stat().st_size for p in tmp_path.glob("*.pt"))
    cache.max_bytes = 2 * size + 10  # room for two entries, not three
    cache.put(np.array([1.0]), {"w": torch.ones(1000)}, label="b")
    cache.load(np.array([1.0]))  # loading is not a use: only `touch` says what was used
    cache.touch(["a"])  # now b is the least recently used
    cache.put(np.array([2.0]), {"w": torch.ones(1000)}, label="c")
    kept = sorted(float(g[0]) for g, _ in cache.entries())
    assert kept == [0.0, 2.0]
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_eviction_spares_protected_genomes_and_can_wait(tmp_path):
    cache = ModelCache(tmp_path, max_bytes=10**9, evict_on_put=False)
    for i in range(3):
        cache.put(np.array([float(i)]), {"w": torch.ones(1000)}, label=str(i))
    size = max(p.stat().st_size for p in tmp_path.glob("*.pt"))
    cache.max_bytes = size + 10  # room for one
    cache.keep([np.array([2.0])], evict=False)
    assert len(cache.entries()) == 3  # marking the front does not evict by itself
    cache.evict(protect=[np.array([0.0])])
    assert sorted(float(g[0]) for g, _ in cache.entries()) == [0.0, 2.0]  # kept and protected both stay


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return prepare(tiny_config(tmp_path_factory.mktemp("cache")))


def test_warm_start_from_a_cached_model_that_contains_the_structure(setup, tmp_path):
    cache = ModelCache(tmp_path)
    evaluator = Evaluator(setup.base, setup.data, setup.scheme, steps=8, cache=cache, warm_steps=4)
    big = np.full(setup.scheme.dim, 0.8)
    first = evaluator(big, seed=0)
    assert first.source == "base" and first.steps == 8 and len(cache.entries()) == 1
    smaller = np.full(setup.scheme.dim, 0.6)
    second = evaluator(smaller, seed=1)
    assert second.source.startswith("cache:") and second.steps == 4
    larger = np.full(setup.scheme.dim, 0.9)  # no cached model holds this structure: cold start
    assert evaluator(larger, seed=2).source == "base"


def test_warm_start_reuses_the_fine_tuned_weights(setup, tmp_path):
    cache = ModelCache(tmp_path)
    evaluator = Evaluator(setup.base, setup.data, setup.scheme, steps=20, cache=cache)
    genome = np.full(setup.scheme.dim, 0.7)
    evaluator(genome, seed=0)
    source, _ = evaluator.warm_source(genome)
    expected = evaluator.structure(genome)
    expected.load_state_dict(cache.load(genome))
    # same genome: re-compressing the cached model reproduces its weights, not the base model's
    for (name, a), b in zip(source.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(a, b), name


def test_kept_entries_are_not_evicted(tmp_path):
    state = {"w": torch.ones(1000)}
    cache = ModelCache(tmp_path / "probe")
    cache.put(np.array([0.0]), state)
    size = (tmp_path / "probe" / f"{genome_key(np.array([0.0]))}.pt").stat().st_size
    cache = ModelCache(tmp_path / "cache", max_bytes=int(2.5 * size))  # room for two
    first, second, third = np.array([0.1]), np.array([0.2]), np.array([0.3])
    cache.put(first, state)
    cache.put(second, state)
    cache.keep([first])
    cache.put(third, state)  # over the bound: the least recently used entry not kept goes
    assert cache.load(first) is not None and cache.load(second) is None and cache.load(third) is not None


def test_a_run_keeps_its_front_in_a_cache_too_small_for_the_archive(tmp_path):
    from surrogate_emo.pipeline import run
    from surrogate_emo.front import pareto_indices

    result = run(tiny_config(tmp_path, search="random", budget=24, pop_size=12, warm_start=True, model_cache_mb=1))
    cache = ModelCache(tmp_path / "results" / "tiny" / "model_cache")
    assert len(cache.entries()) < 24  # the bound evicted models
    front = pareto_indices(np.array([[e.error, e.ratios["params"]] for e in result.evaluations]))
    assert all(cache.load(result.evaluations[i].genome) is not None for i in front)
    assert result.summary["front_val_errors_reproduced"]


def test_warm_started_front_models_are_rebuilt_exactly_without_the_cache(tmp_path):
    import shutil

    from surrogate_emo.pipeline import run

    config = tiny_config(tmp_path, budget=24, pop_size=6, warm_start=True)
    first = run(config)
    assert any(row["evaluation"].source.startswith("cache:") for row in first.front)  # warm starts to rebuild
    shutil.rmtree(tmp_path / "results" / "tiny" / "model_cache")  # as in a fresh clone of a committed study
    again = run(config)
    assert again.summary["evaluated_now"] == 0
    assert again.summary["front_val_errors_reproduced"]


def test_the_nearest_cached_model_that_holds_the_structure_is_the_warm_source(setup, tmp_path):
    cache = ModelCache(tmp_path)
    evaluator = Evaluator(setup.base, setup.data, setup.scheme, steps=2, cache=cache)
    candidate = np.full(setup.scheme.dim, 0.5)
    # every one of these keeps more in every layer than the candidate; distances 0.3, 0.1 and 0.2 per gene
    holders = {"seed 10": candidate + 0.3, "seed 11": candidate + 0.1, "seed 12": candidate + 0.2}
    # nearer still (0.05 off in one gene) but keeping fewer first-layer entries: it cannot hold the candidate
    lacking = candidate.copy()
    lacking[1] -= 0.05
    assert setup.scheme.decode(lacking)[0].nnz < setup.scheme.decode(candidate)[0].nnz
    for label, genome in [*holders.items(), ("seed 13", lacking)]:
        cache.put(genome, evaluator.structure(genome).state_dict(), label=label)
    _, label = evaluator.warm_source(candidate)
    assert label == "seed 11"
    _, label = evaluator.warm_source(candidate, [(g, l) for l, g in holders.items() if l != "seed 11"])
    assert label == "seed 12"
    assert evaluator(candidate, seed=5).source == "cache:seed 11"


def test_protected_models_do_not_count_against_the_bound(tmp_path):
    """On resume the models an interrupted batch finished are spared, and the bound is applied to the rest as
    it was before they were put: nothing the uninterrupted run still had is evicted in their place."""
    cache = ModelCache(tmp_path, max_bytes=10**9, evict_on_put=False)
    cache.put(np.array([0.0]), {"w": torch.ones(1000)}, label="a")
    size = max(p.stat().st_size for p in tmp_path.glob("*.pt"))
    cache.max_bytes = 2 * size + 10  # room for two
    cache.put(np.array([1.0]), {"w": torch.ones(1000)}, label="b")
    cache.evict()
    cache.put(np.array([2.0]), {"w": torch.ones(1000)}, label="c")  # a batch's model, then the run was killed
    cache.evict(protect=[np.array([2.0])])
    assert sorted(float(g[0]) for g, _ in cache.entries()) == [0.0, 1.0, 2.0]
