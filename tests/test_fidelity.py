"""Fidelity 0: the compressed model's validation error with no fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surrogate_emo.data import load_dataset
from surrogate_emo.errors import ConfigError
from surrogate_emo.evaluate import Evaluator
from surrogate_emo.fidelity import ERROR_FLOOR, ShortFineTune, ZeroShot
from surrogate_emo.models import mlp
from surrogate_emo.schemes import scheme_class
from surrogate_emo.train import error_rate, fit


@pytest.fixture(scope="module")
def screen():
    data = load_dataset("digits")
    torch.manual_seed(0)  # the initial weights: the same base on every run
    base = mlp(data.input_shape, data.n_classes)
    fit(base, data.train, 150, lr=3e-3, batch_size=64, seed=0)
    return ZeroShot(scheme_class("lowrank-sparse")(base, data.input_shape), base, data.val, size=200), data


def test_an_uncompressed_genome_scores_as_the_base_and_an_empty_one_as_chance(screen):
    screen, data = screen
    full, empty = np.ones(screen.scheme.dim), np.zeros(screen.scheme.dim)
    errors = screen.errors(np.vstack([full, empty]))
    assert errors[0] == pytest.approx(error_rate(screen.base, screen.val), abs=0.02) and errors[0] < 0.3
    assert errors[1] > 0.6  # ten classes and only the biases left
    assert len(screen.val) == 200


def test_each_genome_is_scored_once_and_the_same_every_time(screen):
    screen, _ = screen
    X = np.random.default_rng(1).random((4, screen.scheme.dim))
    first, scored = screen.errors(X), screen.n_scored
    again = screen.errors(X[::-1])
    assert np.array_equal(first, again[::-1]) and screen.n_scored == scored and screen.seconds > 0
    features = screen.features(X)
    assert features.shape == (4, 1) and np.allclose(features[:, 0], np.log(np.maximum(first, ERROR_FLOOR)))


def test_bad_input(screen):
    screen, data = screen
    with pytest.raises(ConfigError, match="at least 1 validation sample, got size=0"):
        ZeroShot(screen.scheme, screen.base, data.val, size=0)
    with pytest.raises(ValueError, match="genome"):
        screen.errors(np.full((1, screen.scheme.dim), 2.0))


def test_a_short_fine_tune_lowers_the_error_and_repeats_exactly_in_another_process(screen):
    screen, data = screen
    evaluator = Evaluator(screen.base, data, screen.scheme, steps=60, lr=3e-3, batch_size=64)
    # Compressed well past the cliff (70 to 90% error unfine-tuned): on the base models of four seeds, 30 steps won
    # back 14 to 25 points on average.
    X = 0.4 + 0.2 * np.random.default_rng(2).random((3, screen.scheme.dim))
    short = ShortFineTune(evaluator, steps=30, size=200, seed=5)
    errors = short.errors(X)
    assert short.n_scored == 3 and short.steps_spent == 90 and short.seconds > 0
    assert np.mean(errors) < np.mean(screen.errors(X)) - 0.07
    again = ShortFineTune(evaluator, steps=30, size=200, seed=5)  # a resumed run scores them afresh
    assert np.array_equal(again.errors(X[::-1]), errors[::-1])
    assert short.errors(X).tolist() == errors.tolist() and short.n_scored == 3  # remembered, not repeated
    assert short.features(X[:1]).tolist() == [[np.log(max(errors[0], ERROR_FLOOR))]]
    assert short.genome_seed(X[0]) != ShortFineTune(evaluator, steps=30, seed=6).genome_seed(X[0])


def test_bad_short_fine_tunes(screen):
    screen, data = screen
    evaluator = Evaluator(screen.base, data, screen.scheme, steps=60)
    with pytest.raises(ConfigError, match="at least 1 step, got steps=0"):
        ShortFineTune(evaluator, steps=0)
    with pytest.raises(ConfigError, match="at least 1 validation sample, got size=0"):
        ShortFineTune(evaluator, steps=3, size=0)
