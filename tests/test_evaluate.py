from __future__ import annotations

import numpy as np
import pytest

from surrogate_emo.errors import ConfigError, SearchSpaceError
from surrogate_emo.evaluate import FAILED_ERROR, Evaluation, Evaluator, spent_steps
from surrogate_emo.pipeline import prepare
from tiny import tiny_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return prepare(tiny_config(tmp_path_factory.mktemp("evaluate")))


def test_same_genome_and_seed_give_the_same_error(setup):
    genome = np.full(setup.scheme.dim, 0.6)
    first, second = setup.evaluator(genome, seed=3), setup.evaluator(genome, seed=3)
    assert first.ok and first.error == second.error
    assert first.steps == setup.evaluator.steps == 4


def test_evaluator_counts_evaluations_steps_and_seconds(setup):
    before = (setup.evaluator.n_evaluations, setup.evaluator.total_steps, setup.evaluator.total_seconds)
    setup.evaluator(np.full(setup.scheme.dim, 0.5), seed=0)
    assert setup.evaluator.n_evaluations == before[0] + 1
    assert setup.evaluator.total_steps == before[1] + 4
    assert setup.evaluator.total_seconds > before[2]


def test_objectives_are_error_then_exact_ratios_on_a_log_scale(setup):
    genome = np.full(setup.scheme.dim, 0.7)
    evaluation = setup.evaluator(genome, seed=0)
    objectives = setup.evaluator.objectives(evaluation)
    costs = setup.scheme.costs(genome)
    ratio = costs.params / setup.scheme.dense.params
    assert setup.evaluator.objective_scale == "log" and evaluation.ratios["params"] == ratio
    assert objectives.dtype == np.float64
    assert objectives[0] == evaluation.error
    assert objectives[1] == pytest.approx(1 + np.log10(ratio) / 3, rel=1e-15)
    np.testing.assert_allclose(setup.evaluator.cheap_objectives(genome[None, :]), [[objectives[1]]], rtol=1e-15)
    linear = Evaluator(setup.base, setup.data, setup.scheme, steps=1, objective_scale="linear")
    assert linear.objectives(evaluation)[1] == ratio


def test_a_diverging_fine_tune_is_a_failed_evaluation_with_its_reason(setup):
    exploding = Evaluator(setup.base, setup.data, setup.scheme, steps=30, lr=1e12)
    evaluation = exploding(np.full(setup.scheme.dim, 1.0), seed=0)
    assert evaluation.status == "failed"
    assert "FineTuneDiverged" in evaluation.reason
    assert np.isnan(evaluation.error)
    assert exploding.objectives(evaluation)[0] == FAILED_ERROR


def test_bad_genomes_and_objectives_are_rejected(setup):
    with pytest.raises(SearchSpaceError, match=r"shape \(6,\).*got shape \(3,\)"):
        setup.evaluator(np.zeros(3), seed=0)
    with pytest.raises(SearchSpaceError, match=r"in \[0, 1\], got 1.rank=nan"):
        setup.evaluator(np.full(6, np.nan), seed=0)
    with pytest.raises(ConfigError, match=r"objectives must be a non-empty list from \['params', 'bytes', 'macs', 'energy'\], got \['flops'\]"):
        Evaluator(setup.base, setup.data, setup.scheme, steps=1, objectives=("flops",))


def test_a_pickled_evaluator_reloads_its_data_and_gives_the_same_result(setup):
    import pickle

    setup.evaluator.data_source = {"name": "digits", "data_dir": None, "seed": 0}
    payload = pickle.dumps(setup.evaluator)
    assert len(payload) < 2_000_000  # the data set is not shipped with every task
    clone = pickle.loads(payload)
    genome = np.full(setup.scheme.dim, 0.55)
    assert clone(genome, seed=5).error == setup.evaluator(genome, seed=5).error


def test_a_worker_on_another_machine_never_opens_the_model_cache(setup, tmp_path):
    """Workers only fine-tune: a pickled evaluator whose cache folder does not exist where it runs (another
    machine of a cluster) evaluates, hands back the weights for the search's process to keep, and creates
    nothing."""
    import pickle
    import shutil

    from surrogate_emo.cache import ModelCache

    evaluator = Evaluator(setup.base, setup.data, setup.scheme, steps=3,
                          cache=ModelCache(tmp_path / "cache"))
    evaluator.data_source = {"name": "digits", "data_dir": None, "seed": 0}
    payload = pickle.dumps(evaluator)
    shutil.rmtree(tmp_path / "cache")
    worker = pickle.loads(payload)
    evaluation = worker.evaluate(np.full(setup.scheme.dim, 0.6), seed=1)
    assert evaluation.ok and evaluation.model_state and not (tmp_path / "cache").exists()


def test_parallel_evaluation_matches_sequential(tmp_path):
    from surrogate_emo.pipeline import run

    sequential = run(tiny_config(tmp_path, name="one", budget=8, pop_size=4, final_test=False))
    parallel = run(tiny_config(tmp_path, name="two", budget=8, pop_size=4, final_test=False, n_jobs=2))
    assert [e.error for e in parallel.evaluations] == [e.error for e in sequential.evaluations]


def test_warm_started_runs_give_the_same_archive_whatever_n_jobs(tmp_path):
    from surrogate_emo.pipeline import run

    options = dict(search="random", budget=24, pop_size=12, final_test=False, warm_start=True)
    sequential = run(tiny_config(tmp_path, name="one", **options))
    parallel = run(tiny_config(tmp_path, name="two", n_jobs=2, **options))
    sources = [e.source for e in sequential.evaluations]
    assert any(source.startswith("cache:") for source in sources)  # the cache was used, so the check means something
    assert [e.source for e in parallel.evaluations] == sources
    assert [e.error for e in parallel.evaluations] == [e.error for e in sequential.evaluations]
    assert set(sources[:12]) == {"base"}  # nothing warm-starts from a batch-mate (here two would, if allowed)


@pytest.mark.parametrize("fraction, warm_steps", [(0.25, 2), (0.5, 4)])
def test_warm_fraction_sets_the_steps_of_a_warm_started_evaluation(tmp_path, fraction, warm_steps):
    setup = prepare(tiny_config(tmp_path, warm_start=True, warm_fraction=fraction, finetune_steps=8))
    cold = setup.evaluator(np.full(setup.scheme.dim, 0.8), seed=0)  # cached; holds the structure below
    assert cold.source == "base" and cold.steps == 8
    warm = setup.evaluator(np.full(setup.scheme.dim, 0.6), seed=1)
    assert warm.source.startswith("cache:") and warm.steps == warm_steps


def test_spent_steps_charge_a_batch_s_short_fine_tunes_once():
    def trial(t, first, **notes):
        return Evaluation(np.zeros(2), 0.1, {"params": 1.0}, steps=10, trial=t, extra={"batch_first": first, **notes})

    design = [trial(0, 0), trial(1, 0)]
    batch = [trial(2, 2, short_steps=15), trial(3, 2, short_steps=15)]  # every trial of a batch carries the charge
    assert spent_steps(design) == 20 and spent_steps(design + batch) == 40 + 15
