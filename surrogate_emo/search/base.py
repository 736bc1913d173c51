"""The search interface: propose genomes, learn from their objectives. Nothing here evaluates."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from surrogate_emo.config import RunConfig


class Search(ABC):
    """Proposes genomes in the unit cube `[0, 1]^d` and is told their minimized objectives `n x m`.

    A search must be deterministic given ``seed`` and the values it is told: resuming a run replays the stored
    evaluations through ``ask``/``tell`` and relies on the same genomes coming back.
    """

    #: True when ``ask`` depends only on the seed, what was told and what `restore` hands back: a resumed run then
    #: restores the stored notes and tells the stored archive at once instead of replaying every ask and tell.
    stateless: bool = False

    def __init__(self, dim: int, n_obj: int, seed: int = 0) -> None:
        self.dim, self.n_obj, self.seed = dim, n_obj, seed

    @classmethod
    def from_config(cls, config: RunConfig, dim: int, n_obj: int, **problem) -> Search:
        """Build from a run configuration. ``problem`` may hold ``cheap`` (exact objectives of genomes),
        ``n_expensive``, ``ref_point`` and ``lower_bounds``, for searches that use them; this default ignores them
        and passes only what ``Search.__init__`` takes, so a search of your own needs no ``from_config`` of its own
        unless it reads more of the configuration."""
        return cls(dim, n_obj, seed=config.seed)

    @abstractmethod
    def ask(self, n_max: int) -> np.ndarray:
        """Next genomes to evaluate, `k x d` with `1 <= k <= n_max`."""

    @abstractmethod
    def tell(self, X: np.ndarray, F: np.ndarray) -> None:
        """Objectives `k x m` of the genomes `k x d` last asked."""

    def restore(self, notes: list[dict]) -> None:
        """A ``stateless`` search being resumed: the notes stored with every trial it is about to be told (in trial
        order, as `annotations` gave them), for whatever one iteration hands the next (a GP's fitted
        hyperparameters, say). Nothing by default."""

    def annotations(self, X: np.ndarray) -> list[dict]:
        """JSON-able notes stored with each genome just asked (a surrogate's prediction, say); none by default."""
        return [{} for _ in range(len(X))]
