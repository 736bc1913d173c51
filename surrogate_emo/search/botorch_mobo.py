"""The peer a user would otherwise pick: BoTorch's multi-objective Bayesian optimisation, qLogNEHVI maximised
over the unit cube with ``optimize_acqf``, no evolutionary loop, same GP and the same initial design as the
surrogate loop, so the two differ only in how candidates are found."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.multi_objective.utils import get_default_partitioning_alpha
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler

from surrogate_emo.infill import MC_SAMPLES, botorch_objective
from surrogate_emo.search.surrogate import SurrogateSearch
from surrogate_emo.surrogates import Surrogate


class BoTorchSearch(SurrogateSearch):
    """qLogNEHVI (BoTorch) over the continuous unit cube, ``q`` candidates by sequential greedy ``optimize_acqf``.

    Cheap objectives are computed exactly inside the acquisition, as in the surrogate loop; being piecewise
    constant in the genome they pass no gradient, so the optimizer follows the error model alone between jumps.

    Example:
        >>> search = BoTorchSearch(dim=2, n_obj=2, seed=0, n_init=4, q=1, n_expensive=2, ref_point=[1.1, 1.1])
        >>> search.ask(10).shape  # the initial design first
        (4, 2)
    """

    def __init__(self, dim: int, n_obj: int, seed: int = 0, q: int = 1, n_init: int = 20, n_expensive: int = 1,
                 cheap: Callable[[np.ndarray], np.ndarray] | None = None, ref_point=None, log_scale: bool = False,
                 num_restarts: int = 10, raw_samples: int = 512, lower_bounds=None, **_) -> None:
        # refitted cold, as BoTorch's own loops and the committed peer runs do: this is the reference, not ours to tune
        super().__init__(dim, n_obj, seed=seed, surrogate="gp", infill="ehvi", q=q, n_init=n_init,
                         n_expensive=n_expensive, cheap=cheap, ref_point=ref_point, log_scale=log_scale, refit="cold",
                         lower_bounds=lower_bounds)
        self.num_restarts, self.raw_samples = num_restarts, raw_samples

    def _choose(self, n_max: int, seed: int) -> tuple[list[tuple[str, Surrogate, np.ndarray, np.ndarray]], dict]:
        started = time.perf_counter()
        surrogate = self._fitted("gp", seed)
        fitted = time.perf_counter()
        context = self._context(surrogate, seed)
        acquisition = qLogNoisyExpectedHypervolumeImprovement(
            surrogate.model(), ref_point=-torch.as_tensor(self.ref_point), X_baseline=torch.as_tensor(self.X),
            sampler=SobolQMCNormalSampler(torch.Size([MC_SAMPLES]), seed=seed), prune_baseline=True,
            alpha=get_default_partitioning_alpha(len(self.ref_point)),  # approximate boxes from 5 objectives
            objective=GenericMCMultiOutputObjective(botorch_objective(context)))
        bounds = torch.stack([torch.zeros(self.dim), torch.ones(self.dim)]).double()
        torch.manual_seed(seed)  # the random restarts
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimizer restarts warn freely
            candidates, _ = optimize_acqf(acquisition, bounds=bounds, q=min(self.q, n_max), sequential=True,
                                          num_restarts=self.num_restarts, raw_samples=self.raw_samples)
        stats = {"fit_seconds": fitted - started, "pool_seconds": 0.0,
                 "infill_seconds": time.perf_counter() - fitted}
        return [("gp", surrogate, candidates.detach().numpy().clip(0.0, 1.0), self.ref_point)], stats
