"""Random-forest surrogate: scikit-learn ``RandomForestRegressor``, uncertainty from the spread of its trees."""

from __future__ import annotations

import numpy as np
import torch
from botorch.models.ensemble import EnsembleModel
from botorch.models.model import Model
from sklearn.ensemble import RandomForestRegressor

from surrogate_emo.surrogates.base import Surrogate


class RandomForestSurrogate(Surrogate):
    """A random forest whose trees are the members of a BoTorch ensemble model: the acquisition integrates over
    the trees, and the predictive variance is the variance across them.

    Example:
        >>> X = np.random.default_rng(0).random((40, 2))
        >>> rf = RandomForestSurrogate(seed=0).fit(X, X[:, :1] > 0.5)
        >>> mean, var = rf.predict(np.array([[0.9, 0.5], [0.1, 0.5]]))
        >>> bool(mean[0, 0] > 0.8 and mean[1, 0] < 0.2)
        True
    """

    def __init__(self, seed: int = 0, n_estimators: int = 100, min_samples_leaf: int = 2) -> None:
        super().__init__(seed)
        self.n_estimators, self.min_samples_leaf = n_estimators, min_samples_leaf

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self._forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                             random_state=self.seed, n_jobs=1).fit(X, Y[:, 0] if Y.shape[1] == 1 else Y)

    def tree_predictions(self, X: np.ndarray) -> np.ndarray:
        """Predictions of every tree, `s x n x k`."""
        # validated once here, not once per tree: the same float32 input scikit-learn's own check makes, at a tenth
        # of the time (the pool's NSGA-II asks for thousands of predictions per iteration)
        X = np.ascontiguousarray(X, dtype=np.float32)
        return np.stack([tree.predict(X, check_input=False).reshape(len(X), -1) for tree in self._forest.estimators_])

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        trees = self.tree_predictions(X)
        return trees.mean(axis=0), trees.var(axis=0)

    def model(self) -> Model:
        return _ForestEnsemble(self)


class _ForestEnsemble(EnsembleModel):
    def __init__(self, forest: RandomForestSurrogate) -> None:
        super().__init__()
        self.forest = forest
        self._num_outputs = forest.n_outputs

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        flat = X.detach().reshape(-1, X.shape[-1]).cpu().numpy()
        trees = torch.as_tensor(self.forest.tree_predictions(flat), dtype=X.dtype)  # s x N x k
        s = trees.shape[0]
        # to batch x s x n x k, as BoTorch's ensemble posterior expects
        return trees.reshape(s, *X.shape[:-1], self._num_outputs).movedim(0, -3)
