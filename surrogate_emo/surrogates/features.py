"""Surrogates that read cheap features of a genome beside the genome: the fidelity-0 error above all.

The expensive error after fine-tuning is modelled as a function of ``[genome, features(genome)]``, where
``features`` is exact and cheap for any candidate (`surrogate_emo.fidelity.ZeroShot.features`: the log of the
compressed model's error before fine-tuning). Any surrogate can be the inner model; ``gp-f0`` and ``rf-f0`` are
the GP and the forest. Without features (a problem that has none) they are the inner surrogate on the genome.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from botorch.models.model import Model

from surrogate_emo.surrogates.base import MappedInputModel, Surrogate
from surrogate_emo.surrogates.forest import RandomForestSurrogate
from surrogate_emo.surrogates.gp import GPSurrogate

Features = Callable[[np.ndarray], np.ndarray]  # genomes `n x d` -> features `n x f`, float64


class FeatureSurrogate(Surrogate):
    """``inner`` fitted on the genome with ``features(genome)`` appended as extra inputs.

    Example:
        >>> X = np.random.default_rng(0).random((30, 2))
        >>> hidden = lambda X: np.sin(9 * X[:, :1])  # the feature reveals what the genome hides from a smooth model
        >>> s = GPWithFeatures(seed=0, features=hidden).fit(X, hidden(X))
        >>> bool(abs(s.predict(np.array([[0.3, 0.5]]))[0][0, 0] - np.sin(2.7)) < 0.05)
        True
    """

    inner: type[Surrogate]
    uses_features = True

    def __init__(self, seed: int = 0, features: Features | None = None) -> None:
        super().__init__(seed)
        self.features = features

    def augment(self, X: np.ndarray) -> np.ndarray:
        """``[X, features(X)]``, or ``X`` when there are no features."""
        return X if self.features is None else np.hstack([X, np.asarray(self.features(X), dtype=np.float64)])

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self._X, self._Y, self._genome = X, Y, None
        self._inner = self.inner(seed=self.seed).fit(self.augment(X), Y, start=self._part("inner"))

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._inner.predict(self.augment(X))

    def _augmented(self, X: torch.Tensor) -> torch.Tensor:
        """`augment` of a tensor of genomes of any batch shape. The features are computed in numpy (no gradient):
        the acquisitions here pick from a pool and never differentiate through them."""
        flat = X.detach().reshape(-1, X.shape[-1]).cpu().numpy()
        return torch.as_tensor(self.augment(flat), dtype=X.dtype).reshape(*X.shape[:-1], -1)

    def model(self) -> Model:
        return self._inner.model() if self.features is None else MappedInputModel(self._inner.model(), self._augmented)

    def genome_only(self) -> Surrogate:
        """The inner surrogate fitted on the genomes alone, for predictions at many points where features would
        cost too much (a pool's evolution)."""
        if self.features is None:
            return self._inner
        if self._genome is None:
            self._genome = self.inner(seed=self.seed).fit(self._X, self._Y, start=self._part("genome"))
        return self._genome

    def _part(self, name: str) -> dict | None:
        return (self._start or {}).get(name)

    def state(self) -> dict | None:
        """The inner surrogate's state, and that of the genome-only one where it was fitted."""
        parts = {"inner": self._inner.state(), "genome": None if self._genome is None else self._genome.state()}
        parts = {name: part for name, part in parts.items() if part is not None}
        return parts or None


class GPWithFeatures(FeatureSurrogate):
    """`GPSurrogate` on ``[genome, features]``: ``gp-f0``."""

    inner = GPSurrogate


class ForestWithFeatures(FeatureSurrogate):
    """`RandomForestSurrogate` on ``[genome, features]``: ``rf-f0``."""

    inner = RandomForestSurrogate
