"""The surrogate interface: fit on the archive, predict mean and variance of the expensive objectives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch
from botorch.models.model import Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal

from surrogate_emo.errors import SurrogateEMOError


class SurrogateError(SurrogateEMOError, ValueError):
    """A surrogate was given data of the wrong shape, or asked to predict before being fitted."""


class Surrogate(ABC):
    """Predicts the expensive objectives `n x k` of genomes `n x d` in the unit cube.

    Subclasses implement `_fit` and `_predict`; `fit` and `predict` here check shapes once for all of them.
    The acquisition sees a surrogate through `model()`, a BoTorch `Model`; by default an independent Gaussian
    per point built from `predict`, which is all a user surrogate needs to provide.

    Example:
        >>> class Nearest(Surrogate):
        ...     def _fit(self, X, Y):
        ...         self.X, self.Y = X, Y
        ...     def _predict(self, X):
        ...         d = ((X[:, None, :] - self.X[None]) ** 2).sum(-1)
        ...         return self.Y[d.argmin(1)], np.full((len(X), self.Y.shape[1]), 0.01)
        >>> s = Nearest().fit(np.eye(2), np.array([[0.1], [0.9]]))
        >>> s.predict(np.array([[0.9, 0.1]]))[0]
        array([[0.1]])
    """

    #: True for surrogates that take ``features`` (cheap features of a genome) in their constructor
    uses_features: bool = False
    #: True for surrogates that model observations at a lower fidelity (``cheaper`` in their constructor)
    uses_cheaper: bool = False
    #: True where ``model()`` passes gradients with respect to the genome (a GP; not a forest's trees)
    differentiable: bool = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.n_inputs: int | None = None
        self.n_outputs: int | None = None

    def fit(self, X: np.ndarray, Y: np.ndarray, start: dict | None = None) -> Surrogate:
        """Fit to genomes `X` (`n x d`) and observed expensive objectives `Y` (`n x k`); returns ``self``.

        ``start``: the `state` of an earlier fit of the same class to begin from (a GP's hyperparameters: the next
        iteration's archive differs by a batch, so its optimum is close); surrogates that keep none ignore it."""
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or len(X) < 2:
            raise SurrogateError(f"fit needs X of shape n x d and Y of shape n x k with the same n >= 2, "
                                 f"got X {X.shape} and Y {Y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(Y).all()):
            raise SurrogateError("fit needs finite X and Y; got NaN or infinite values")
        self.n_inputs, self.n_outputs = X.shape[1], Y.shape[1]
        self._start = start
        self._fit(X, Y)
        return self

    def state(self) -> dict | None:
        """What a later `fit` may start from (``fit(..., start=state)``), JSON-able so that it can be stored with
        the trials and a resumed run starts where the interrupted one would have; None (the default) where a fit
        from scratch is all there is (a forest)."""
        return None

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and variance, each `n x k`, for genomes `X` (`n x d`)."""
        if self.n_inputs is None:
            raise SurrogateError(f"{type(self).__name__}.predict called before fit")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise SurrogateError(f"predict needs X of shape n x {self.n_inputs}, got {X.shape}")
        mean, var = self._predict(X)
        mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
        expected = (len(X), self.n_outputs)
        if mean.shape != expected or var.shape != expected:
            raise SurrogateError(f"{type(self).__name__}._predict must return mean and variance of shape {expected}, "
                                 f"got {mean.shape} and {var.shape}")
        return mean, np.maximum(var, 0.0)

    def model(self) -> Model:
        """A BoTorch model of the fitted surrogate, for the hypervolume acquisitions."""
        return IndependentGaussianModel(self)

    @abstractmethod
    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Fit to float64 `X` (`n x d`) and `Y` (`n x k`)."""

    @abstractmethod
    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return mean and variance, each `n x k`."""


class MappedInputModel(Model):
    """``inner``, a BoTorch model, seen through a map of its inputs (``inputs``: a `... x d` tensor to the inputs
    ``inner`` reads), so that an acquisition sees genomes and the joint posterior of a q-batch is ``inner``'s."""

    def __init__(self, inner: Model, inputs: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner, self.inputs = inner, inputs

    @property
    def num_outputs(self) -> int:
        return self.inner.num_outputs

    def posterior(self, X: torch.Tensor, output_indices=None, observation_noise=False, posterior_transform=None,
                  **kwargs):
        return self.inner.posterior(self.inputs(X), output_indices=output_indices,
                                    observation_noise=observation_noise, posterior_transform=posterior_transform,
                                    **kwargs)


class IndependentGaussianModel(Model):
    """A BoTorch `Model` whose posterior is an independent Gaussian per point and output, from `predict`.

    Points of a q-batch are treated as independent: exact for nothing, fine for choosing among candidates.
    """

    def __init__(self, surrogate: Surrogate) -> None:
        super().__init__()
        self.surrogate = surrogate

    @property
    def num_outputs(self) -> int:
        return self.surrogate.n_outputs

    def posterior(self, X: torch.Tensor, output_indices=None, observation_noise=False, posterior_transform=None,
                  **kwargs) -> GPyTorchPosterior:
        flat = X.detach().reshape(-1, X.shape[-1]).cpu().numpy()
        mean, var = self.surrogate.predict(flat)
        shape = (*X.shape[:-1], self.num_outputs)
        mean = torch.as_tensor(mean, dtype=X.dtype).reshape(shape)
        var = torch.as_tensor(var, dtype=X.dtype).reshape(shape).clamp_min(1e-12)
        mvns = [MultivariateNormal(mean[..., i], torch.diag_embed(var[..., i])) for i in range(self.num_outputs)]
        distribution = mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns)
        posterior = GPyTorchPosterior(distribution)
        return posterior_transform(posterior) if posterior_transform is not None else posterior
