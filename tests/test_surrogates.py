"""Contract tests every surrogate passes, built-in or user-defined (add yours to SURROGATE_CLASSES)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from surrogate_emo.errors import ConfigError
from surrogate_emo.surrogates import SURROGATES, Cheaper, Surrogate, SurrogateError, make_surrogate


class NearestNeighbour(Surrogate):
    """The README's example of a user surrogate: the nearest archive point's value, variance from distance."""

    def _fit(self, X, Y):
        self.X, self.Y = X, Y

    def _predict(self, X):
        distances = ((X[:, None, :] - self.X[None]) ** 2).sum(-1)
        nearest = distances.argmin(axis=1)
        return self.Y[nearest], np.repeat(distances.min(axis=1)[:, None], self.Y.shape[1], axis=1)


SURROGATE_CLASSES = [*SURROGATES.values(), NearestNeighbour]


def smooth(X):
    return np.sin(3 * X[:, :1]) + X[:, 1:2] ** 2


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((100, 3)), rng.random((200, 3))


@pytest.mark.parametrize("surrogate_class", SURROGATE_CLASSES, ids=lambda c: c.__name__)
def test_predicts_a_smooth_function_better_than_its_mean(surrogate_class, data):
    X, X_test = data
    surrogate = surrogate_class(seed=0).fit(X, smooth(X))
    mean, var = surrogate.predict(X_test)
    assert mean.shape == var.shape == (200, 1) and (var >= 0).all()
    error = np.abs(mean - smooth(X_test)).mean()
    assert error < 0.5 * np.abs(smooth(X_test) - smooth(X).mean()).mean()


@pytest.mark.parametrize("surrogate_class", SURROGATE_CLASSES, ids=lambda c: c.__name__)
def test_same_seed_same_prediction(surrogate_class, data):
    X, X_test = data
    first = surrogate_class(seed=3).fit(X, smooth(X)).predict(X_test)
    second = surrogate_class(seed=3).fit(X, smooth(X)).predict(X_test)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


@pytest.mark.parametrize("surrogate_class", SURROGATE_CLASSES, ids=lambda c: c.__name__)
def test_two_outputs_and_a_botorch_posterior(surrogate_class, data):
    X, X_test = data
    Y = np.hstack([smooth(X), X[:, 2:3]])
    surrogate = surrogate_class(seed=0).fit(X, Y)
    assert surrogate.predict(X_test)[0].shape == (200, 2)
    posterior = surrogate.model().posterior(torch.as_tensor(X_test[:10].reshape(5, 2, 3)))
    assert posterior.mean.shape == (5, 2, 2)
    samples = posterior.rsample(torch.Size([4]))
    assert samples.shape[-3:] == (5, 2, 2) and torch.isfinite(samples).all()


@pytest.mark.parametrize("surrogate_class", SURROGATE_CLASSES, ids=lambda c: c.__name__)
def test_bad_input_is_rejected_with_shapes(surrogate_class):
    surrogate = surrogate_class(seed=0)
    with pytest.raises(SurrogateError, match="before fit"):
        surrogate.predict(np.zeros((1, 3)))
    with pytest.raises(SurrogateError, match=r"got X \(5, 3\) and Y \(4, 1\)"):
        surrogate.fit(np.zeros((5, 3)), np.zeros((4, 1)))
    with pytest.raises(SurrogateError, match="finite"):
        surrogate.fit(np.full((5, 3), np.nan), np.zeros((5, 1)))
    surrogate.fit(np.random.default_rng(0).random((6, 3)), np.arange(6.0))
    with pytest.raises(SurrogateError, match=r"n x 3, got \(2, 4\)"):
        surrogate.predict(np.zeros((2, 4)))


def test_forest_uncertainty_is_the_spread_of_its_trees(data):
    X, X_test = data
    forest = make_surrogate("rf", seed=0).fit(X, smooth(X))
    trees = forest.tree_predictions(X_test)
    mean, var = forest.predict(X_test)
    assert trees.shape == (100, 200, 1)
    assert np.allclose(var, trees.var(axis=0)) and np.allclose(mean, trees.mean(axis=0))


def test_registry_by_name_and_import_path():
    assert type(make_surrogate("gp")).__name__ == "GPSurrogate"
    assert isinstance(make_surrogate("test_surrogates:NearestNeighbour"), NearestNeighbour)
    with pytest.raises(ConfigError, match="unknown surrogate .svm.; known: gp, gp-f0, gp-mf, rf, rf-f0"):
        make_surrogate("svm")
    with pytest.raises(ConfigError, match="must name a subclass"):
        make_surrogate("numpy:zeros")


def hidden(X):
    """A function of the genome too wiggly for 40 points; given to the feature surrogates as their feature."""
    return np.sin(25 * X[:, :1])


@pytest.mark.parametrize("name", ["gp-f0", "rf-f0"])
def test_a_feature_surrogate_reads_its_features_and_beats_the_genome_alone(name, data):
    X, X_test = data
    X = X[:40]
    with_features = make_surrogate(name, seed=0, features=hidden).fit(X, hidden(X))
    alone = make_surrogate(name.removesuffix("-f0"), seed=0).fit(X, hidden(X))
    error = np.abs(with_features.predict(X_test)[0] - hidden(X_test)).mean()
    assert error < 0.5 * np.abs(alone.predict(X_test)[0] - hidden(X_test)).mean()
    # the acquisition's view: genomes in, the inner model's joint posterior over a q-batch out
    batch = torch.as_tensor(X_test[:6].reshape(2, 3, 3))
    posterior = with_features.model().posterior(batch)
    assert posterior.mean.shape == (2, 3, 1)
    assert np.allclose(posterior.mean.detach().numpy().reshape(6, 1), with_features.predict(X_test[:6])[0],
                       atol=1e-6)
    # the pool evolves on the genome alone
    assert with_features.genome_only().n_inputs == 3


def test_features_go_only_to_surrogates_that_read_them():
    assert make_surrogate("gp-f0", features=hidden).features is hidden
    assert not hasattr(make_surrogate("gp", features=hidden), "features")


@pytest.mark.parametrize("surrogate_class", SURROGATE_CLASSES, ids=lambda c: c.__name__)
def test_a_fit_started_from_an_earlier_state_reaches_the_cold_fit(surrogate_class, data):
    X, X_test = data
    earlier = surrogate_class(seed=0).fit(X[:90], smooth(X[:90]))
    state = earlier.state()
    if state is not None:  # stored with the trials: it must come back from JSON exactly
        assert json.loads(json.dumps(state)) == state
    cold = surrogate_class(seed=0).fit(X, smooth(X)).predict(X_test)[0]
    warm = surrogate_class(seed=0).fit(X, smooth(X), start=state).predict(X_test)[0]
    assert np.abs(warm - cold).max() < 0.02 * np.ptp(smooth(X_test))


def test_a_multi_fidelity_fit_started_from_an_earlier_state_reaches_the_cold_fit(data):
    X, X_test = data
    few, others = X[:20], X[20:]
    short = Cheaper(others, smooth(others) + 0.5, fidelity=0.25)
    earlier = make_surrogate("gp-mf", seed=0, cheaper=Cheaper(others[:-10], short.Y[:-10], 0.25)).fit(
        few[:-4], smooth(few[:-4]))  # the iteration before: four full and ten short observations fewer
    state = earlier.state()
    assert json.loads(json.dumps(state)) == state and any("fidelity" in name or "power" in name for name in state)
    cold = make_surrogate("gp-mf", seed=0, cheaper=short).fit(few, smooth(few)).predict(X_test)[0]
    warm = make_surrogate("gp-mf", seed=0, cheaper=short).fit(few, smooth(few), start=state).predict(X_test)[0]
    assert np.abs(warm - cold).max() < 0.02 * np.ptp(smooth(X_test))


def test_a_gp_start_of_another_shape_is_ignored(data):
    X, X_test = data
    other = make_surrogate("gp", seed=0).fit(X[:, :2], smooth(X)).state()  # two inputs, not three
    cold = make_surrogate("gp", seed=0).fit(X, smooth(X)).predict(X_test)
    started = make_surrogate("gp", seed=0).fit(X, smooth(X), start=other).predict(X_test)
    assert np.array_equal(cold[0], started[0]) and np.array_equal(cold[1], started[1])


def test_an_input_an_earlier_fit_switched_off_can_come_back(data, monkeypatch):
    from surrogate_emo.surrogates import gp

    X, X_test = data
    state = make_surrogate("gp", seed=0).fit(X, smooth(X)).state()
    name = next(key for key in state if key.endswith("raw_lengthscale"))
    state[name] = [[3000.0] + state[name][0][1:]]  # the first input switched off, as chains of warm fits left it
    cold = make_surrogate("gp", seed=0).fit(X, smooth(X)).predict(X_test)[0]
    warm = make_surrogate("gp", seed=0).fit(X, smooth(X), start=state).predict(X_test)[0]
    assert np.abs(warm - cold).max() < 0.02 * np.ptp(smooth(X_test))
    monkeypatch.setattr(gp, "WARM_LENGTHSCALE_CAP", float("inf"))  # uncapped, the optimizer never brings it back
    stuck = make_surrogate("gp", seed=0).fit(X, smooth(X), start=state).predict(X_test)[0]
    assert np.abs(stuck - cold).max() > 0.1 * np.ptp(smooth(X_test))


def test_the_multi_fidelity_gp_learns_from_short_runs_of_other_genomes(data):
    X, X_test = data
    few, others = X[:10], X[10:]
    alone = make_surrogate("gp-mf", seed=0).fit(few, smooth(few))
    shifted = Cheaper(others, smooth(others) + 0.5, fidelity=0.25)  # a short run: the same shape, ending higher
    helped = make_surrogate("gp-mf", seed=0, cheaper=shifted).fit(few, smooth(few))
    miss = {name: np.abs(s.predict(X_test)[0] - smooth(X_test)).mean() for name, s in (("alone", alone),
                                                                                       ("helped", helped))}
    assert miss["helped"] < 0.3 * miss["alone"]
    assert abs(np.mean(helped.predict(X_test)[0] - smooth(X_test))) < 0.1  # at fidelity 1: the shift is learnt
    assert make_surrogate("gp", cheaper=shifted).__class__.__name__ == "GPSurrogate"  # only gp-mf takes them


@pytest.mark.parametrize("cheaper, message", [
    (Cheaper(np.zeros((4, 2)), np.zeros((4, 1)), 0.25), r"X of shape n x 3, Y of shape n x 1 .*got X \(4, 2\)"),
    (Cheaper(np.zeros((4, 3)), np.zeros((4, 1)), 1.0), r"fidelity in \[0, 1\); .*fidelity 1.0"),
    (Cheaper(np.full((4, 3), np.nan), np.zeros((4, 1)), 0.5), "must be finite"),
])
def test_bad_cheaper_observations_are_one_line(data, cheaper, message):
    X, _ = data
    with pytest.raises(SurrogateError, match=message):
        make_surrogate("gp-mf", cheaper=cheaper).fit(X[:10], smooth(X[:10]))
