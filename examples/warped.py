"""A GP with learned input warping (BoTorch's Kumaraswamy ``Warp``), as a user surrogate.

The error of a compressed model is flat over most of the genome and steep near gene 0 (little kept); a
stationary kernel handles that poorly, a warped input lets the GP stretch the steep end. Tried on the LeNet-300-100
comparison (results/lenet300_warped_gp/): better predictions near the front, no better hypervolume.

    PYTHONPATH=examples surrogate-emo run --config experiments/lenet300_fashion_surrogate_gp.toml \\
        --surrogate warped:WarpedGP --seed 0 --name wgp_seed0 --output-dir results/lenet300_warped_gp
"""

import warnings

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from botorch.models.transforms.input import Warp
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

from surrogate_emo.surrogates.gp import GPSurrogate


class WarpedGP(GPSurrogate):
    """`GPSurrogate` with a Kumaraswamy warp of every (unit-cube) input; fitting capped at 200 L-BFGS
    iterations, past which it took 10 s at 100 points for no measurable gain."""

    def _fit(self, X, Y):
        torch.manual_seed(self.seed)
        d = X.shape[1]
        warp = Warp(d=d, indices=list(range(d)), bounds=torch.stack([torch.zeros(d), torch.ones(d)]).double(),
                    concentration1_prior=LogNormalPrior(0.0, 0.75**0.5),
                    concentration0_prior=LogNormalPrior(0.0, 0.75**0.5))
        self._gp = SingleTaskGP(torch.as_tensor(X), torch.as_tensor(Y),
                                covar_module=ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d)),
                                input_transform=warp, outcome_transform=Standardize(m=Y.shape[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(self._gp.likelihood, self._gp),
                             optimizer_kwargs={"options": {"maxiter": 200}})
        self._gp.eval()
