"""A user surrogate, outside the package: k-nearest-neighbour regression from scikit-learn.

    PYTHONPATH=examples surrogate-emo run --search surrogate --surrogate my_surrogate:KNNSurrogate
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsRegressor

from surrogate_emo.surrogates import Surrogate


class KNNSurrogate(Surrogate):
    """Mean of the k nearest archive points; their spread as the variance."""

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.knn = KNeighborsRegressor(n_neighbors=min(5, len(X))).fit(X, Y)
        self.Y = Y

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        neighbours = self.knn.kneighbors(X, return_distance=False)  # n x k indices into the archive
        values = self.Y[neighbours]  # n x k x outputs
        return values.mean(axis=1), values.var(axis=1) + 1e-6
