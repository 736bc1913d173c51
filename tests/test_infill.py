"""Contract tests for the infill criteria, on a surrogate whose predictions are known."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from surrogate_emo.errors import ConfigError
from surrogate_emo.infill import INFILLS, InfillContext, make_infill
from surrogate_emo.surrogates import Surrogate


class Oracle(Surrogate):
    """Predicts the first gene as the error, with a small fixed variance."""

    def _fit(self, X, Y):
        pass

    def _predict(self, X):
        return X[:, :1].copy(), np.full((len(X), 1), 1e-4)


def context(seed=0):
    X = np.array([[0.5, 0.5], [0.3, 0.8], [0.8, 0.3]])
    return InfillContext(surrogate=Oracle().fit(X, X[:, :1]), X=X, F=X.copy(), n_expensive=1,
                         cheap=lambda X: X[:, 1:2], ref_point=np.ones(2), seed=seed)


POOL = np.array([[0.9, 0.9], [0.1, 0.1], [0.6, 0.6], [0.45, 0.45], [0.2, 0.95]])


@pytest.mark.parametrize("name", sorted(INFILLS))
def test_chooses_q_distinct_pool_rows_deterministically(name):
    first = make_infill(name).select(context(), POOL, 3)
    assert len(set(first.tolist())) == 3 and all(0 <= i < len(POOL) for i in first)
    assert np.array_equal(first, make_infill(name).select(context(), POOL, 3))


@pytest.mark.parametrize("name", ["ehvi", "ehvi-lazy", "ehvi-exact", "ehvi-joint", "mean"])
def test_hypervolume_criteria_pick_the_dominating_candidate_first(name):
    chosen = make_infill(name).select(context(), POOL, 2)
    assert chosen[0] == 1  # (0.1, 0.1) dominates the whole archive
    assert 0 not in chosen and 2 not in chosen  # dominated candidates add nothing


def test_ehvi_uses_the_exact_cheap_objective():
    # same predicted error, different exact compression: only the cheap objective separates them
    pool = np.array([[0.2, 0.7], [0.2, 0.2]])
    assert make_infill("ehvi").select(context(), pool, 1)[0] == 1


def test_ehvi_bands_spread_a_batch_over_the_cheap_objective():
    pool = np.array([[0.10, 0.10], [0.11, 0.12], [0.12, 0.11], [0.40, 0.90], [0.45, 0.95], [0.35, 0.85]])
    plain = make_infill("ehvi").select(context(), pool, 2)
    banded = make_infill("ehvi-bands").select(context(), pool, 2)
    assert set(plain.tolist()) <= {0, 1, 2}  # all from the most improving corner
    assert banded[0] in (0, 1, 2) and banded[1] in (3, 4, 5)  # one from each half of the compression range


def test_q_larger_than_the_pool_is_cut_to_the_pool():
    assert len(make_infill("random").select(context(), POOL[:2], 5)) == 2


def test_unknown_infill_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown infill criterion 'ei'; known: ehvi, ehvi-bands, ehvi-exact, "
                                         "ehvi-joint, ehvi-lazy, mean, parego, random"):
        make_infill("ei")


class CountingAcquisition:
    """Wraps an acquisition function and counts the candidate rows it scores with pending points set."""

    def __init__(self, acquisition):
        self.acquisition, self.conditioned_rows = acquisition, 0

    def __call__(self, X):
        if self.acquisition.X_pending is not None:
            self.conditioned_rows += X.shape[0]
        return self.acquisition(X)

    def set_X_pending(self, X_pending):
        self.acquisition.set_X_pending(X_pending)

    @property
    def X_pending(self):
        return self.acquisition.X_pending


def test_lazy_ehvi_makes_the_exhaustive_choice_scoring_few_conditioned_rows():
    from pymoo.problems import get_problem

    from surrogate_emo.infill import _ehvi, _pick_from_pool, _pick_lazily
    from surrogate_emo.surrogates import make_surrogate

    rng = np.random.default_rng(0)
    X = rng.random((30, 3))
    F = get_problem("zdt1", n_var=3).evaluate(X)
    gp = make_surrogate("gp", seed=0).fit(X, F)
    ctx = InfillContext(gp, X, F, n_expensive=2, cheap=None, ref_point=np.full(2, 1.1), seed=0)
    pool = rng.random((60, 3)) * [1.0, 0.2, 0.2]  # near the true front: improvements worth choosing among
    exhaustive = _pick_from_pool(_ehvi(ctx, pool), pool, 4)
    counting = CountingAcquisition(_ehvi(ctx, pool))
    lazy = _pick_lazily(counting, pool, 4)
    assert np.array_equal(lazy, exhaustive)
    assert counting.conditioned_rows < 3 * 60 / 2  # the exhaustive choice scores 59 + 58 + 57 conditioned rows
    assert counting.X_pending is None  # left as found


def test_the_botorch_objective_turns_log_scale_samples_back_and_keeps_the_cheap_ones_exact():
    import torch

    from surrogate_emo.infill import botorch_objective

    def cheap(X):  # two exact objectives of the genome, known by hand
        return np.column_stack([X[:, 0] * 0.5, 1.0 - X[:, 1]])

    X = torch.tensor([[[0.2, 0.4]], [[0.6, 0.1]], [[1.0, 0.0]]], dtype=torch.float64)  # batch 3 x q 1 x d 2
    samples = torch.log(torch.tensor([0.05, 0.2, 0.9], dtype=torch.float64)).reshape(1, 3, 1, 1).expand(4, 3, 1, 1)
    log_context = InfillContext(surrogate=Oracle(), X=np.zeros((0, 2)), F=np.zeros((0, 3)), n_expensive=1,
                                cheap=cheap, ref_point=np.ones(3), seed=0, log_scale=True)
    out = botorch_objective(log_context)(samples, X)
    assert out.shape == (4, 3, 1, 3)
    # expensive column: the error rates the samples stand for, negated (BoTorch maximises)
    expected_error = -torch.tensor([0.05, 0.2, 0.9], dtype=torch.float64).reshape(1, 3, 1).expand(4, 3, 1)
    torch.testing.assert_close(out[..., 0], expected_error, rtol=1e-12, atol=0)
    # cheap columns: exactly the cheap objectives of X, negated, for every sample
    expected_cheap = -torch.tensor([[0.1, 0.6], [0.3, 0.9], [0.5, 1.0]], dtype=torch.float64)
    for sample in out:
        assert torch.equal(sample[:, 0, 1:], expected_cheap)
    # on the linear scale the samples are the objectives themselves
    linear_context = InfillContext(surrogate=Oracle(), X=np.zeros((0, 2)), F=np.zeros((0, 3)), n_expensive=1,
                                   cheap=cheap, ref_point=np.ones(3), seed=0, log_scale=False)
    assert torch.equal(botorch_objective(linear_context)(samples, X)[..., 0], -samples[..., 0])
    # every objective expensive (no cheap ones): all columns turned back
    both = torch.log(torch.tensor([[0.3, 0.7]], dtype=torch.float64)).reshape(1, 1, 1, 2)
    all_expensive = InfillContext(surrogate=Oracle(), X=np.zeros((0, 2)), F=np.zeros((0, 2)), n_expensive=2,
                                  cheap=None, ref_point=np.ones(2), seed=0, log_scale=True)
    torch.testing.assert_close(botorch_objective(all_expensive)(both, X[:1]),
                               -torch.tensor([0.3, 0.7], dtype=torch.float64).reshape(1, 1, 1, 2), rtol=1e-12, atol=0)


@pytest.mark.parametrize("log_scale,floor", [(False, None), (True, None), (False, 0.12), (True, 0.12)])
def test_the_closed_form_ehvi_is_the_monte_carlo_expectation(log_scale, floor):
    from surrogate_emo.front import hypervolume
    from surrogate_emo.infill import expected_improvement_2d

    rng = np.random.default_rng(0)
    front = np.array([[0.1, 0.8], [0.2, 0.5], [0.4, 0.2], [0.7, 0.05], [0.3, 0.6]])  # one point dominated
    ref = np.array([1.0, 1.0])
    mean = np.array([0.15, 0.35, 0.05, 0.6])
    mean = np.log(mean) if log_scale else mean
    sd, cheap = np.array([0.1, 0.3, 0.05, 0.2]), np.array([0.3, 0.1, 0.7, 0.01])
    exact = expected_improvement_2d(front, mean, sd, cheap, ref, log_scale, floor)
    base = hypervolume(front, ref)
    for i in range(4):
        draws = rng.normal(mean[i], sd[i], 4000)
        draws = np.exp(draws) if log_scale else draws
        draws = draws if floor is None else np.maximum(draws, floor)  # what the problem can have
        gains = [hypervolume(np.vstack([front, [e, cheap[i]]]), ref) - base for e in draws]
        assert exact[i] == pytest.approx(np.mean(gains), rel=0.05, abs=2e-4)


@pytest.mark.parametrize("name", ["ehvi-exact", "ehvi-joint"])
def test_the_two_objective_ehvis_need_one_modelled_and_one_exact_objective(name):
    three = InfillContext(surrogate=Oracle().fit(POOL, POOL[:, :1]), X=POOL, F=np.hstack([POOL, POOL[:, :1]]),
                          n_expensive=1, cheap=lambda X: X, ref_point=np.ones(3), seed=0)
    with pytest.raises(ConfigError, match=f"infill '{name}' needs two objectives, the first modelled and the second "
                                          "exact; got 3"):
        make_infill(name).select(three, POOL, 1)


def test_on_an_empty_front_each_staircase_gain_is_the_box_of_the_point_alone():
    from surrogate_emo.infill import Staircase

    ref = np.array([0.25, 1.0])
    front = np.array([[0.3, 0.2], [0.5, 0.1], [0.2, 1.5]])  # every archive point beyond the reference
    cheap = np.array([0.1, 0.6, 1.0, 0.6])
    errors = np.array([[0.1, 0.2, 0.05, 0.3]])
    gains = Staircase(front, cheap, errors, ref).gains()
    np.testing.assert_allclose(gains[0], [(0.25 - 0.1) * 0.9, (0.25 - 0.2) * 0.4, 0.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(Staircase(np.zeros((0, 2)), cheap, errors, ref).gains(), gains, rtol=1e-12)


def test_the_joint_ehvi_takes_the_candidate_nearest_to_improving_when_none_does():
    ctx = context()  # Oracle: the first gene is the error, with a small spread
    dominating = np.vstack([ctx.X, [0.05, 0.05]])
    ctx = InfillContext(surrogate=ctx.surrogate, X=dominating, F=dominating.copy(), n_expensive=1,
                        cheap=lambda X: X[:, 1:2], ref_point=np.ones(2), seed=0)
    pool = np.array([[0.9, 0.9], [0.3, 0.2], [0.6, 1.2], [0.12, 0.5]])  # none can beat (0.05, 0.05); one is past 1
    assert make_infill("ehvi-joint").select(ctx, pool, 4).tolist() == [3, 1, 0, 2]  # by how far above 0.05


def test_the_staircase_gains_are_the_hypervolume_each_sample_adds():
    from surrogate_emo.front import hypervolume
    from surrogate_emo.infill import Staircase

    rng = np.random.default_rng(3)
    ref = np.array([1.0, 0.9])
    # an archive with dominated points, points beyond the reference on either axis, and a tie on the cheap axis
    front = np.array([[0.1, 0.8], [0.2, 0.5], [0.4, 0.2], [0.7, 0.05], [0.3, 0.6], [1.2, 0.01], [0.05, 0.95],
                      [0.35, 0.2]])
    cheap = np.concatenate([rng.random(12), [0.5, 0.9, 0.95, 0.0]])  # on a front step, at and beyond the reference
    errors = rng.random((5, len(cheap))) * 1.1  # 5 samples, some beyond the reference error
    staircase = Staircase(front, cheap, errors, ref)
    sampled_fronts = [front.copy() for _ in range(5)]
    for pick in [None, 3, 12, 7]:  # the gains before any pick, then after each
        if pick is not None:
            staircase.add(pick)
            sampled_fronts = [np.vstack([f, [errors[s, pick], cheap[pick]]]) for s, f in enumerate(sampled_fronts)]
        gains = staircase.gains()
        for s, f in enumerate(sampled_fronts):
            base = hypervolume(f, ref)
            by_hand = [hypervolume(np.vstack([f, [errors[s, j], cheap[j]]]), ref) - base for j in range(len(cheap))]
            np.testing.assert_allclose(gains[s], by_hand, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("log_scale,floor", [(False, None), (True, None), (False, 0.1), (True, 0.1)])
def test_the_joint_ehvi_of_one_candidate_is_the_closed_form_one(log_scale, floor):
    from surrogate_emo.infill import JointEHVI, expected_improvement_2d

    class Spread(Surrogate):  # independent Gaussians of known mean and spread
        def _fit(self, X, Y):
            pass

        def _predict(self, X):
            mean = np.log(X[:, :1]) if log_scale else X[:, :1]
            return mean, (X[:, 2:3] ** 2)

    archive = np.array([[0.1, 0.8, 0.1], [0.2, 0.5, 0.1], [0.4, 0.2, 0.1], [0.7, 0.05, 0.1]])
    pool = np.array([[0.15, 0.3, 0.1], [0.35, 0.1, 0.3], [0.05, 0.7, 0.05], [0.6, 0.01, 0.2]])
    ctx = InfillContext(surrogate=Spread().fit(archive, archive[:, :1]), X=archive, F=archive[:, :2], n_expensive=1,
                        cheap=lambda X: X[:, 1:2], ref_point=np.ones(2), seed=0, log_scale=log_scale,
                        lower_bounds=None if floor is None else np.array([floor]))
    criterion = JointEHVI(samples=4096)
    staircase = criterion._staircase(ctx, pool)
    mean = np.log(pool[:, 0]) if log_scale else pool[:, 0]
    exact = expected_improvement_2d(archive[:, :2], mean, pool[:, 2], pool[:, 1], np.ones(2), log_scale, floor)
    np.testing.assert_allclose(staircase.gains().mean(axis=0), exact, rtol=0.03, atol=2e-4)


def test_the_joint_ehvi_does_not_pick_a_twin_of_its_first_pick():
    # a genome a hair from a pick is the same draw on every sample of a GP's joint posterior: once the pick is on
    # the front the twin adds nothing, though alone it is worth as much as the pick
    from surrogate_emo.surrogates import make_surrogate

    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    y = np.sin(6 * X[:, :1]) * 0.3 + 0.5
    ctx = InfillContext(surrogate=make_surrogate("gp", seed=0).fit(X, y), X=X, F=np.hstack([y, X[:, 1:2]]),
                        n_expensive=1, cheap=lambda G: G[:, 1:2], ref_point=np.ones(2), seed=0)
    pool = rng.random((40, 2))
    criterion = make_infill("ehvi-joint")
    alone = criterion._staircase(ctx, pool).gains().mean(axis=0)
    best = int(np.argmax(alone))
    second = np.sort(alone)[-2]
    with_twin = np.vstack([pool, pool[best] + [1e-9, 0.0]])
    twin_alone = criterion._staircase(ctx, with_twin).gains().mean(axis=0)[-1]
    assert twin_alone > second  # alone, the twin is worth more than any other candidate
    chosen = criterion.select(ctx, with_twin, 2).tolist()
    assert not {best, len(pool)} <= set(chosen)  # but never both it and its twin


def test_lower_bounds_raise_the_samples_the_acquisitions_see():
    import torch

    from surrogate_emo.infill import botorch_objective

    samples = torch.tensor([-0.3, 0.05, 0.4], dtype=torch.float64).reshape(1, 3, 1, 1)
    X = torch.zeros((3, 1, 2), dtype=torch.float64)
    bounded = InfillContext(surrogate=Oracle(), X=np.zeros((0, 2)), F=np.zeros((0, 1)), n_expensive=1, cheap=None,
                            ref_point=np.ones(1), seed=0, lower_bounds=np.array([0.1]))
    out = botorch_objective(bounded)(samples, X)
    torch.testing.assert_close(out[0, :, 0, 0], -torch.tensor([0.1, 0.1, 0.4], dtype=torch.float64))
    # on the log scale the bound applies to the error the sample stands for, after exp()
    bounded.log_scale = True
    out = botorch_objective(bounded)(torch.log(torch.tensor([0.05, 0.4], dtype=torch.float64)).reshape(1, 2, 1, 1), X)
    torch.testing.assert_close(out[0, :, 0, 0], -torch.tensor([0.1, 0.4], dtype=torch.float64))


def test_the_believer_batch_of_the_closed_form_puts_a_pick_no_lower_than_the_floor():
    # a pick predicted at 0.01 with the floor at 0.3 enters the front at 0.3, so a candidate at 0.2 still improves
    ctx = InfillContext(surrogate=Oracle().fit(POOL, POOL[:, :1]), X=np.array([[0.8, 0.9]]),
                        F=np.array([[0.8, 0.9]]), n_expensive=1, cheap=lambda X: X[:, 1:2], ref_point=np.ones(2),
                        seed=0, lower_bounds=np.array([0.3]))
    pool = np.array([[0.01, 0.1], [0.2, 0.5], [0.25, 0.1]])
    chosen = make_infill("ehvi-exact").select(ctx, pool, 2).tolist()
    assert chosen[0] in (0, 2) and chosen[1] == 1  # (0.01 and 0.25 at 0.1 are both 0.3 to the acquisition)


def test_a_search_takes_one_lower_bound_per_modelled_objective():
    from surrogate_emo.search import SurrogateSearch

    for bad in ([0.0], [0.0, 1.2], [np.nan, 0.0]):
        with pytest.raises(ConfigError, match=r"lower_bounds needs one finite number per modelled objective \(2\), "
                                              r"each below the reference point's \[1.1, 1.1\]; got \["):
            SurrogateSearch(3, 2, n_expensive=2, ref_point=[1.1, 1.1], lower_bounds=bad)
    assert SurrogateSearch(3, 2, n_expensive=2, lower_bounds=[0, 0]).lower_bounds.tolist() == [0.0, 0.0]


def test_the_joint_ehvi_shortlist_is_its_batch_then_the_best_alone():
    from surrogate_emo.surrogates import make_surrogate

    rng = np.random.default_rng(1)
    X = rng.random((25, 3))
    y = 0.2 + 0.5 * X[:, :1] * X[:, 2:3]
    ctx = InfillContext(surrogate=make_surrogate("gp", seed=0).fit(X, y), X=X, F=np.hstack([y, X[:, 1:2]]),
                        n_expensive=1, cheap=lambda G: G[:, 1:2], ref_point=np.ones(2), seed=0)
    pool = rng.random((30, 3))
    criterion = make_infill("ehvi-joint")
    listed = criterion.shortlist(ctx, pool, 8, 3).tolist()
    batch = criterion.select(ctx, pool, 3).tolist()
    alone = criterion._staircase(ctx, pool).gains().mean(axis=0)
    rest = [i for i in np.argsort(-alone, kind="stable").tolist() if i not in batch][:5]
    assert listed == batch + rest


def _weighted(ctx, useful, weight):
    import dataclasses

    return dataclasses.replace(ctx, error_weight=(useful, weight))


def test_the_weighted_staircase_gain_is_the_gain_at_the_reference_plus_weight_times_the_gain_at_the_useful_error():
    from surrogate_emo.front import hypervolume
    from surrogate_emo.infill import JointEHVI

    class Spread(Surrogate):  # independent Gaussians of the first gene's mean and the third gene's spread
        def _fit(self, X, Y):
            pass

        def _predict(self, X):
            return X[:, :1].copy(), X[:, 2:3] ** 2

    archive = np.array([[0.1, 0.8, 0.1], [0.25, 0.5, 0.1], [0.4, 0.2, 0.1], [0.7, 0.05, 0.1], [1.3, 0.01, 0.1]])
    pool = np.array([[0.15, 0.3, 0.1], [0.35, 0.1, 0.2], [0.05, 0.7, 0.05], [0.6, 0.01, 0.2], [0.28, 0.45, 0.02]])
    plain = InfillContext(surrogate=Spread().fit(archive, archive[:, :1]), X=archive, F=archive[:, :2],
                          n_expensive=1, cheap=lambda X: X[:, 1:2], ref_point=np.ones(2), seed=0)
    useful, weight, criterion = 0.3, 4.0, JointEHVI(samples=16)
    errors = criterion._staircase(plain, pool).errors  # the same draws: the weight changes only the axis
    gains = criterion._staircase(_weighted(plain, useful, weight), pool).gains()
    F = archive[:, :2]
    for s in range(len(errors)):
        by_hand = []
        for j, row in enumerate(pool):
            grown = np.vstack([F, [errors[s, j], row[1]]])
            by_hand.append(sum(scale * (hypervolume(grown, ref) - hypervolume(F, ref))
                               for scale, ref in ((1.0, np.ones(2)), (weight, np.array([useful, 1.0])))))
        np.testing.assert_allclose(gains[s], by_hand, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["ehvi", "ehvi-lazy", "ehvi-joint"])
def test_an_error_weight_turns_the_choice_to_the_useful_region(name):
    # a far-end candidate gains more at reference 1; one below the useful error once that region counts 5 times
    ctx = InfillContext(surrogate=Oracle().fit(POOL, POOL[:, :1]), X=np.array([[0.1, 0.8], [0.5, 0.3]]),
                        F=np.array([[0.1, 0.8], [0.5, 0.3]]), n_expensive=1, cheap=lambda X: X[:, 1:2],
                        ref_point=np.ones(2), seed=0)
    pool = np.array([[0.7, 0.02], [0.18, 0.55]])  # gains 0.084 and 0.080 at reference 1; 0 and 0.005 up to 0.2
    assert make_infill(name).select(ctx, pool, 1).tolist() == [0]
    assert make_infill(name).select(_weighted(ctx, 0.2, 4.0), pool, 1).tolist() == [1]


def test_a_search_refuses_an_error_weight_its_criterion_would_ignore():
    from surrogate_emo.search import SurrogateSearch

    for kwargs in (dict(infill="parego"), dict(infill="ehvi-joint", ref_point=[0.2, 1.0]),
                   dict(infill="ehvi-joint", n_expensive=2, ref_point=[1.0, 1.0], cheap=None)):
        with pytest.raises(ConfigError, match=r"an error weight \(useful error, weight\) needs one expensive "
                                              r"objective, one reference point above the useful error"):
            SurrogateSearch(3, 2, **{"n_expensive": 1, "cheap": lambda X: X[:, :1], **kwargs},
                            error_weight=(0.3, 2.0))
    search = SurrogateSearch(3, 2, n_expensive=1, cheap=lambda X: X[:, :1], infill="ehvi-joint", error_weight=(0.3, 2))
    assert search.error_weight == (0.3, 2.0)


def test_ehvi_compiles_nothing_and_ignores_a_stale_compile_lock(tmp_path):
    # a torch extension build killed mid-compile leaves this lock file; BoTorch's JIT-compiled qLogEHVI kernel would
    # wait on it for ever at the first acquisition
    (tmp_path / "logei_fused_ext").mkdir()
    (tmp_path / "logei_fused_ext" / "lock").touch()
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from test_infill import POOL, context\n"
            "from surrogate_emo.infill import botorch_logei, make_infill\n"
            "print(make_infill('ehvi').select(context(), POOL, 2).tolist(), botorch_logei._C is None)\n")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    chosen, kernel_unloaded = done.stdout.rsplit(maxsplit=1)
    assert chosen == str(make_infill("ehvi").select(context(), POOL, 2).tolist()) and kernel_unloaded == "True"
    assert not (tmp_path / "logei_fused_ext" / "build.ninja").exists()
