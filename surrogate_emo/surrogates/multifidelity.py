"""A GP over (genome, fidelity): full fine-tunes and short ones in one model, ``gp-mf``.

BoTorch's ``SingleTaskMultiFidelityGP`` with its linear truncated fidelity kernel: in effect the error at fidelity
``s`` is ``g(x) + (1 - s) h(x)``, a short fine-tune's error the full one's plus a discrepancy that is itself smooth
in the genome. So a short fine-tune informs the full-fidelity prediction at its genome and around it, and the
fidelity-1 observations a loop gathers (`surrogate_emo.search.SurrogateSearch`'s ``shortlist``) stay in the model
for every later iteration, the pool's evolution included. Predictions are at fidelity 1.

Measured (results/lenet300_shared_base/mf_probe_seed0.md): on LeNet-300-100 genomes between 30x and 300x, a GP on
a loop's 100 full evaluations ranks held-out 1-epoch errors within narrow bands of compression at Spearman 0.40 to
0.69; with quarter-epoch fine-tunes of other genomes of the band in the model, 0.85 to 0.95.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskMultiFidelityGP
from botorch.models.model import Model
from botorch.models.transforms import Normalize, Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

from surrogate_emo.surrogates.base import MappedInputModel, Surrogate, SurrogateError
from surrogate_emo.surrogates.gp import hyperparameters, start_from

TARGET = 1.0  # the fidelity predicted: the full fine-tune


@dataclass(frozen=True)
class Cheaper:
    """Observations below the target fidelity: genomes ``X`` (`n x d`), their expensive objectives ``Y`` (`n x k`,
    on the scale the surrogate models) at ``fidelity`` in [0, 1): a short fine-tune's share of the full steps."""

    X: np.ndarray
    Y: np.ndarray
    fidelity: float


class MultiFidelityGP(Surrogate):
    """BoTorch ``SingleTaskMultiFidelityGP`` (input normalisation of the genome, outcome standardisation, linear
    truncated fidelity kernel) fitted by maximum marginal likelihood on the archive at fidelity 1 and ``cheaper``
    observations at their fidelity; predicts at fidelity 1. Without ``cheaper`` it is a GP on the genome alone.
    Given the `state` of an earlier fit (``fit(..., start=)``), the optimizer starts from its hyperparameters, as
    `GPSurrogate`'s does: along a LeNet-300-100 loop's 40 fits on up to 96 full and 500 short fine-tunes, 57 s
    against 239 s from the defaults on one core, at the same likelihoods in the median
    (results/lenet300_shared_base/mf_warm_refits_seed0.md).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X, Xs = rng.random((8, 2)), rng.random((40, 2))
        >>> truth = lambda X: np.sin(6 * X[:, :1])
        >>> short = Cheaper(Xs, truth(Xs) + 0.5, fidelity=0.25)  # short runs: the same shape, shifted
        >>> gp = MultiFidelityGP(seed=0, cheaper=short).fit(X, truth(X))
        >>> X_test = rng.random((50, 2))
        >>> bool(np.abs(gp.predict(X_test)[0] - truth(X_test)).mean() < 0.1)
        True
    """

    uses_cheaper = True
    differentiable = True

    def __init__(self, seed: int = 0, cheaper: Cheaper | None = None) -> None:
        super().__init__(seed)
        self.cheaper = cheaper

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        rows, values, fidelities = [X], [Y], [np.full(len(X), TARGET)]
        cheaper = self.cheaper
        if cheaper is not None and len(cheaper.X):
            Xc, Yc = np.asarray(cheaper.X, dtype=np.float64), np.asarray(cheaper.Y, dtype=np.float64)
            if Xc.shape != (len(Xc), X.shape[1]) or Yc.shape != (len(Xc), Y.shape[1]) or not 0 <= cheaper.fidelity < 1:
                raise SurrogateError(f"cheaper observations need X of shape n x {X.shape[1]}, Y of shape n x "
                                     f"{Y.shape[1]} and a fidelity in [0, 1); got X {Xc.shape}, Y {Yc.shape}, "
                                     f"fidelity {cheaper.fidelity}")
            if not (np.isfinite(Xc).all() and np.isfinite(Yc).all()):
                raise SurrogateError("cheaper observations must be finite; got NaN or infinite values")
            rows, values = rows + [Xc], values + [Yc]
            fidelities.append(np.full(len(Xc), cheaper.fidelity))
        d = X.shape[1]
        train_x = torch.as_tensor(np.hstack([np.vstack(rows), np.concatenate(fidelities)[:, None]]))
        torch.manual_seed(self.seed)  # the optimizer's random restarts
        # the genome is normalised to the unit cube; the fidelity is already in [0, 1], as the kernel needs it
        self._gp = SingleTaskMultiFidelityGP(train_x, torch.as_tensor(np.vstack(values)), data_fidelities=[d],
                                             input_transform=Normalize(d=d + 1, indices=list(range(d))),
                                             outcome_transform=Standardize(m=Y.shape[1]))
        start_from(self._gp, self._start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BoTorch warns on every optimizer restart
            fit_gpytorch_mll(ExactMarginalLogLikelihood(self._gp.likelihood, self._gp))
        self._gp.eval()
        self._model = MappedInputModel(self._gp, _at_target)

    def state(self) -> dict:
        """The fitted hyperparameters, raw, as lists of floats (exact through JSON)."""
        return hyperparameters(self._gp)

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            posterior = self._model.posterior(torch.as_tensor(X))
        return posterior.mean.numpy(), posterior.variance.numpy()

    def model(self) -> Model:
        return self._model


def _at_target(X: torch.Tensor) -> torch.Tensor:
    """Genomes with the target fidelity appended, in torch: gradients with respect to the genome pass."""
    return torch.cat([X, X.new_full((*X.shape[:-1], 1), TARGET)], dim=-1)
