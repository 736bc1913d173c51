"""Infill criteria: which ``q`` candidates of a pool are worth a true evaluation.

All objectives are minimized here, as everywhere in the package; the negation to BoTorch's maximization happens
in `botorch_objective` and `_maximize` alone. Expensive objectives come from the surrogate; cheap ones
(compression, MACs) are computed exactly from the genome inside the acquisition, never modelled.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from linear_operator.utils.warnings import NumericalWarning
from scipy.stats import norm
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.acquisition.multi_objective import logei as botorch_logei
from botorch.acquisition.multi_objective.logei import qLogExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.generation.gen import gen_candidates_scipy
from botorch.optim.optimize import optimize_acqf_discrete
from botorch.sampling.get_sampler import get_sampler
from botorch.acquisition.multi_objective.utils import get_default_partitioning_alpha
from botorch.utils.multi_objective.box_decompositions import FastNondominatedPartitioning, NondominatedPartitioning
from botorch.utils.multi_objective.scalarization import get_chebyshev_scalarization
from botorch.utils.sampling import sample_simplex

from surrogate_emo.errors import ConfigError
from surrogate_emo.front import hypervolume
from surrogate_emo.registry import resolve
from surrogate_emo.surrogates.base import Surrogate

MC_SAMPLES = 128

# BoTorch 0.18.1 and later JIT-compile a fused C++ kernel for qLogEHVI at the first acquisition (torch's
# cpp_extension, under ~/.cache/torch_extensions). Here that took 31 to 47 s inside the first iteration, built
# with -march=native, and torch waits without end on the lock file a process killed mid-compile leaves behind: after
# one killed run, every later run and test hangs at its first acquisition. Marking the load as already tried (a
# private flag, so only where it exists) keeps BoTorch's pure-PyTorch path, one path on every machine.
if hasattr(botorch_logei, "_load_attempted"):
    botorch_logei._load_attempted = True


@dataclass
class InfillContext:
    """What a criterion may look at: the fitted surrogate, the archive, and the exact cheap objectives.

    ``F`` (`n x m`) holds every objective of the archive; its first ``n_expensive`` columns are the modelled
    ones, the rest are ``cheap(X)``.
    """

    surrogate: Surrogate
    X: np.ndarray
    F: np.ndarray
    n_expensive: int
    cheap: Callable[[np.ndarray], np.ndarray] | None
    ref_point: np.ndarray
    seed: int
    log_scale: bool = False  # the surrogate models log(expensive objectives); predictions are exp()-ed back
    # known lower bounds of the expensive objectives (an error is never negative): a posterior sample below one is
    # raised to it, so the acquisition sees no improvement the problem cannot have
    lower_bounds: np.ndarray | None = None
    # (useful error u, weight w): the hypervolume acquisitions count the region below error u (1 + w) times
    error_weight: tuple[float, float] | None = None

    def sampled(self, samples: torch.Tensor) -> torch.Tensor:
        """The expensive objectives posterior samples stand for: exp()-ed back on a log scale, raised to the lower
        bounds, the first on the weighted axis (`weighted`)."""
        if self.log_scale:
            samples = samples.exp()
        if self.lower_bounds is not None:
            samples = torch.maximum(samples, torch.as_tensor(self.lower_bounds, dtype=samples.dtype))
        if self.error_weight is not None:
            samples = torch.cat([self.weighted(samples[..., :1]), samples[..., 1:]], dim=-1)
        return samples

    def weighted(self, errors):
        """Errors (an array or a tensor) on the acquisition's axis: ``e + w min(e, u)`` with ``error_weight = (u,
        w)``, unchanged without. The map is increasing, so it keeps every dominance, and stretches the axis (1 + w)
        times below u: a hypervolume on it is the hypervolume at the reference plus w times the hypervolume up to
        error u, one criterion for both references."""
        if self.error_weight is None:
            return errors
        useful, weight = self.error_weight
        return errors + weight * errors.clip(max=useful)

    @property
    def hv_F(self) -> np.ndarray:
        """The archive's objectives with the error on the acquisition's axis (`weighted`)."""
        return self.F if self.error_weight is None else np.hstack([self.weighted(self.F[:, :1]), self.F[:, 1:]])

    @property
    def hv_ref(self) -> np.ndarray:
        """The reference point with the error on the acquisition's axis (`weighted`)."""
        return self.ref_point if self.error_weight is None else np.concatenate(
            [self.weighted(np.asarray(self.ref_point[:1], dtype=np.float64)), self.ref_point[1:]])

    def cheap_values(self, X: np.ndarray) -> np.ndarray:
        return self.cheap(X) if self.cheap is not None else np.zeros((len(X), 0))

    def predicted(self, X: np.ndarray) -> np.ndarray:
        """Objectives `n x m` with the surrogate's mean (the median, on a log scale) for the expensive ones."""
        mean = self.surrogate.predict(X)[0]
        return np.hstack([np.exp(mean) if self.log_scale else mean, self.cheap_values(X)])


class Infill(ABC):
    """Chooses ``q`` distinct rows of ``pool`` (`p x d`); returns their indices.

    A criterion that reads the archive and reference point through ``hv_F``, ``hv_ref`` and ``sampled`` honours
    a context's ``error_weight`` and says so with ``weighs_errors``; the loop refuses the weight to the others.
    """

    weighs_errors = False

    def select(self, context: InfillContext, pool: np.ndarray, q: int) -> np.ndarray:
        q = min(q, len(pool))
        chosen = np.asarray(self._select(context, pool, q), dtype=int)
        if len(chosen) != q or len(set(chosen.tolist())) != q:
            raise RuntimeError(f"{type(self).__name__} must choose {q} distinct pool rows, chose {chosen.tolist()}")
        return chosen

    @abstractmethod
    def _select(self, context: InfillContext, pool: np.ndarray, q: int) -> np.ndarray: ...

    def shortlist(self, context: InfillContext, pool: np.ndarray, k: int, q: int) -> np.ndarray:
        """``k`` distinct rows of ``pool`` worth a cheaper look (a short fine-tune) before ``q`` of them are chosen;
        returns their indices. By default the criterion's own choice of ``k``."""
        k = min(k, len(pool))
        listed = np.asarray(self._shortlist(context, pool, k, min(q, k)), dtype=int)
        if len(listed) != k or len(set(listed.tolist())) != k:
            raise RuntimeError(f"{type(self).__name__} must shortlist {k} distinct pool rows, chose {listed.tolist()}")
        return listed

    def _shortlist(self, context: InfillContext, pool: np.ndarray, k: int, q: int) -> np.ndarray:
        return self._select(context, pool, k)


def _maximize(F: np.ndarray) -> torch.Tensor:
    return -torch.as_tensor(F, dtype=torch.float64)


def botorch_objective(context: InfillContext):
    """Samples of the expensive objectives, joined with the exact cheap ones of ``X``, negated for BoTorch."""

    def objective(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        samples = context.sampled(samples)
        if context.cheap is None:
            return -samples
        flat = X.detach().reshape(-1, X.shape[-1]).numpy()
        cheap = torch.as_tensor(context.cheap(flat), dtype=samples.dtype).reshape(*X.shape[:-1], -1)
        return -torch.cat([samples, cheap.expand(*samples.shape[:-1], cheap.shape[-1])], dim=-1)

    return objective


def _pick_from_pool(acquisition, pool: np.ndarray, q: int) -> np.ndarray:
    """Sequentially conditioned choice of ``q`` pool rows (BoTorch's ``optimize_acqf_discrete``)."""
    choices = torch.as_tensor(pool, dtype=torch.float64)
    with torch.no_grad():
        candidates, _ = optimize_acqf_discrete(acquisition, q=q, choices=choices, unique=True)
    # map back to pool rows: the candidates are exact copies of rows of choices
    distances = torch.cdist(candidates, choices)
    return distances.argmin(dim=1).numpy()


def _sampler(context: InfillContext, pool: np.ndarray):
    model = context.surrogate.model()
    with torch.no_grad():
        posterior = model.posterior(torch.as_tensor(pool[:1], dtype=torch.float64))
    return model, get_sampler(posterior, sample_shape=torch.Size([MC_SAMPLES]), seed=context.seed)


def box_decomposition(ref: torch.Tensor, Y: torch.Tensor):
    """The non-dominated boxes EHVI integrates over: exact up to 4 objectives, approximate from 5 on.

    BoTorch's default (``get_default_partitioning_alpha``): alpha 0 up to 4 objectives, 1e-3 for 5, 1e-2 above.
    Measured (`experiments/bench_box_decomposition.py`, ``results/box_decomposition.md``): the exact boxes of a
    100-point front take 0.35 s for 3 objectives, 1.5 s for 4 and 4.4 s for 5 at 50 points; the
    approximate ones take 0.2 to 0.3 s but rank candidates' hypervolume improvements only at Spearman 0.5 to 0.7
    against the exact ones, so they are used only where the exact ones are out of reach.
    """
    alpha = get_default_partitioning_alpha(Y.shape[-1])
    if alpha == 0.0:
        return FastNondominatedPartitioning(ref_point=ref, Y=Y)
    return NondominatedPartitioning(ref_point=ref, Y=Y, alpha=alpha)


def _ehvi(context: InfillContext, pool: np.ndarray) -> qLogExpectedHypervolumeImprovement:
    model, sampler = _sampler(context, pool)
    ref = _maximize(context.hv_ref)
    partitioning = box_decomposition(ref, _maximize(context.hv_F))
    return qLogExpectedHypervolumeImprovement(model, ref_point=ref, partitioning=partitioning, sampler=sampler,
                                              objective=GenericMCMultiOutputObjective(botorch_objective(context)))


def _pick_lazily(acquisition, pool: np.ndarray, q: int, chunk: int = 8) -> np.ndarray:
    """The sequentially conditioned choice of `_pick_from_pool`, with the conditioned batches evaluated lazily.

    Hypervolume improvement is submodular: a candidate adds at most as much to a batch as it adds alone, so
    ``EHVI(P + x) <= EHVI(P) + EHVI(x)``. Each conditioned step therefore scores candidates in order of that
    bound, ``chunk`` at a time, and stops once the best score found reaches the next bound (Minoux's lazy
    greedy). The conditioned steps, which cost ``2^k - 1`` box sums per candidate, then touch a few rows instead
    of the whole pool. For the exact EHVI the choice is the one BoTorch's ``optimize_acqf_discrete`` makes; the
    log-EHVI scores are smoothed Monte-Carlo estimates for which the bound holds only nearly, so now and then a
    later pick differs (how often: ``experiments/lazy_ehvi_replay.py``). Written here because BoTorch has no
    lazy discrete optimizer.
    """
    choices = torch.as_tensor(pool, dtype=torch.float64)[:, None, :]
    with torch.no_grad():
        alone = acquisition(choices)  # log EHVI of each row on its own
        chosen = [int(alone.argmax())]
        batch_value = alone[chosen[0]]
        for _ in range(1, q):
            acquisition.set_X_pending(choices[chosen, 0])
            bound = torch.logaddexp(batch_value, alone)  # log(EHVI(P) + EHVI(x))
            order = [i for i in bound.argsort(descending=True).tolist() if i not in chosen]
            best, best_value = order[0], torch.tensor(-torch.inf, dtype=torch.float64)
            for start in range(0, len(order), chunk):
                rows = order[start: start + chunk]
                if best_value >= bound[rows[0]]:
                    break
                values = acquisition(choices[rows])
                if values.max() > best_value:
                    best, best_value = rows[int(values.argmax())], values.max()
            chosen.append(best)
            batch_value = best_value
        acquisition.set_X_pending(None)
    return np.array(chosen)


def polish(context: InfillContext, batch: np.ndarray, steps: int) -> np.ndarray:
    """The batch after at most ``steps`` L-BFGS-B iterations up its joint qLogEHVI inside the unit cube (BoTorch's
    ``gen_candidates_scipy``), or the batch unchanged where the climb does not raise the EHVI.

    A pool evolved by NSGA-II holds points near the optimum, rarely on it, and never exactly on a bound, where many
    problems' optima lie; a short gradient climb from the pool's choice reaches them at a small part of the cost of
    BoTorch's own multi-start ``optimize_acqf``. It needs gradients through every objective: a differentiable
    surrogate and no exact cheap objectives (these are step functions of the genome in a compression problem). A
    polished row that repeats an archived genome or another row keeps its unpolished value.
    """
    acquisition = _ehvi(context, batch)
    start = torch.as_tensor(batch, dtype=torch.float64)[None]
    with torch.no_grad():
        before = acquisition(start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's "ABNORMAL" line-search ends are a normal end of a short climb
        climbed, after = gen_candidates_scipy(start, acquisition, lower_bounds=0.0, upper_bounds=1.0,
                                              options={"maxiter": steps})
    if not after.item() > before.item():
        return batch
    polished = climbed[0].detach().numpy().copy()
    seen = {row.tobytes() for row in context.X}
    for i, row in enumerate(polished):
        if row.tobytes() in seen:
            polished[i] = batch[i]
        seen.add(polished[i].tobytes())
    return polished


class EHVI(Infill):
    """Batch expected hypervolume improvement: BoTorch's ``qLogExpectedHypervolumeImprovement`` over a box
    decomposition of the archive's front, ``q`` candidates chosen by sequential conditioning over the whole pool
    (BoTorch's ``optimize_acqf_discrete``)."""

    weighs_errors = True

    def _select(self, context, pool, q):
        return _pick_from_pool(_ehvi(context, pool), pool, q)

    def _shortlist(self, context, pool, k, q):
        """The batch this criterion would choose, then the rest of the ``k`` by their EHVI alone: conditioning a
        Monte-Carlo EHVI on ``k - 1`` pending points costs ``2^k`` box sums per candidate."""
        batch = [int(i) for i in self._select(context, pool, q)]
        with torch.no_grad():
            alone = _ehvi(context, pool)(torch.as_tensor(pool, dtype=torch.float64)[:, None, :])
        rest = [i for i in alone.argsort(descending=True).tolist() if i not in batch]
        return np.array(batch + rest[: k - q])


class LazyEHVI(EHVI):
    """`EHVI` with the conditioned picks made lazily (`_pick_lazily`): nearly always the same batch, in a
    fraction of the time (results/README.md). The default."""

    def _select(self, context, pool, q):
        return _pick_lazily(_ehvi(context, pool), pool, q)


def front_staircase(front: np.ndarray, ref_point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The staircase of a minimized two-objective ``front`` (error, exact cheap value) up to ``ref_point``: the
    cheap values where it steps, ascending, and its levels, one more than the steps: the reference error left of
    the first step, then the best error at or left of each."""
    inside = front[np.all(front < ref_point, axis=1)]
    order = np.argsort(inside[:, 1], kind="stable")
    return inside[order, 1], np.minimum.accumulate(np.concatenate([[ref_point[0]], inside[order, 0]]))


def expected_improvement_2d(front: np.ndarray, mean: np.ndarray, sd: np.ndarray, cheap: np.ndarray,
                            ref_point: np.ndarray, log_scale: bool, floor: float | None = None) -> np.ndarray:
    """Expected hypervolume improvement in closed form of candidates whose first objective is Gaussian (``mean``,
    ``sd``; of its logarithm with ``log_scale``, so log-normal) and whose second is known exactly (``cheap``), over
    the minimized two-objective ``front`` up to ``ref_point``.

    For a candidate at cheap value ``c``, the improvement is ``sum_k (b_k - a_k) E[max(0, G_k - e)]`` over the steps
    ``[a_k, b_k)`` of the front's staircase right of ``c``, where ``G_k`` is the best error at that step; the
    expectation is ``(G - m) Phi(z) + s phi(z)`` for a Gaussian, ``G Phi(z) - exp(m + s^2 / 2) Phi(z - s)`` with
    ``z = (log G - m) / s`` for a log-normal. With a ``floor`` ``L`` under the first objective (samples below it
    count as ``L``) a step's expectation is ``E[max(0, G - X)] - E[max(0, L - X)]`` where ``G > L``, else 0.
    Written here because BoTorch's analytic EHVI models every objective as Gaussian in objective space, and its
    Monte-Carlo one costs a second per iteration at an archive of 200.
    """
    steps, levels = front_staircase(front, ref_point)
    edges = np.concatenate([steps, [ref_point[1]]])  # level k holds on [starts[k], edges[k])
    starts = np.concatenate([[-np.inf], steps])
    widths = np.clip(np.minimum(edges[None, :], ref_point[1]) - np.maximum(starts[None, :], cheap[:, None]), 0.0, None)
    sd = np.maximum(sd, 1e-12)[:, None]
    mean = mean[:, None]

    def below(level: np.ndarray) -> np.ndarray:  # E[max(0, level - X)]
        if log_scale:
            z = (np.log(np.maximum(level, 1e-300)) - mean) / sd
            return level * norm.cdf(z) - np.exp(mean + sd**2 / 2) * norm.cdf(z - sd)
        z = (level - mean) / sd
        return (level - mean) * norm.cdf(z) + sd * norm.pdf(z)

    gain = below(levels[None, :])
    if floor is not None:
        gain = np.where(levels[None, :] > floor, gain - below(np.full_like(levels, floor)[None, :]), 0.0)
    return (widths * np.maximum(gain, 0.0)).sum(axis=1)


def _check_one_modelled_one_exact(context: InfillContext, name: str) -> None:
    if context.F.shape[1] != 2 or context.n_expensive != 1:
        raise ConfigError(f"infill {name!r} needs two objectives, the first modelled and the second exact; got "
                          f"{context.F.shape[1]} objectives, {context.n_expensive} modelled")


class ExactEHVI(Infill):
    """EHVI of two objectives, the first modelled and the second exact, in closed form
    (`expected_improvement_2d`): milliseconds instead of BoTorch's Monte-Carlo second. A batch is chosen greedily,
    each pick added to the front at its predicted median before the next (Ginsbourger's kriging believer)."""

    def _select(self, context, pool, q):
        _check_one_modelled_one_exact(context, "ehvi-exact")
        mean, var = context.surrogate.predict(pool)
        mean, sd, cheap = mean[:, 0], np.sqrt(var[:, 0]), context.cheap_values(pool)[:, 0]
        median = np.exp(mean) if context.log_scale else mean
        floor = None if context.lower_bounds is None else float(context.lower_bounds[0])
        if floor is not None:
            median = np.maximum(median, floor)
        front, chosen = context.F.copy(), []
        for _ in range(q):
            values = expected_improvement_2d(front, mean, sd, cheap, context.ref_point, context.log_scale, floor)
            values[chosen] = -np.inf
            best = int(np.argmax(values))
            chosen.append(best)
            front = np.vstack([front, [median[best], cheap[best]]])
        return np.array(chosen)


class Staircase:
    """Joint posterior samples of a pool's modelled error on the staircase of a two-objective front whose second
    objective is exact, for Monte-Carlo hypervolume improvements without box decompositions.

    The exact objective fixes every candidate's place on the x axis before any sampling, so the steps of every
    sampled front lie on one grid: the archive's and the pool's cheap values. On that grid a front is a level per
    step (the best error at or left of it), a candidate at cheap value ``c`` with sampled error ``e`` adds
    ``sum over steps right of c of width * max(0, level - e)``, and adding it to a sample's front lowers that
    sample's levels right of ``c`` to ``e``. One sample is one draw of all pool errors together, so a batch's
    improvement is the Monte-Carlo estimator of BoTorch's ``qExpectedHypervolumeImprovement`` chosen by sequential
    greedy (its joint batch value is the sum of these conditioned gains), on draws over the whole pool instead of
    over each batch; what is left is a binary search per sample and candidate. Written here because BoTorch's
    Monte-Carlo EHVI partitions the front into boxes and evaluates them per candidate and per conditioning step,
    which costs a second per iteration at an archive of 200.
    """

    def __init__(self, front: np.ndarray, cheap: np.ndarray, errors: np.ndarray, ref_point: np.ndarray):
        ref_cheap = float(ref_point[1])
        steps, front_levels = front_staircase(front, ref_point)
        grid = np.unique(np.concatenate([steps, cheap[cheap < ref_cheap]]))
        self.widths = np.diff(np.concatenate([grid, [ref_cheap]]))
        levels = front_levels[np.searchsorted(steps, grid, side="right")]  # the front's level at each grid step
        self.levels = np.broadcast_to(levels, (len(errors), len(grid))).copy()  # samples x steps
        self.first_step = np.searchsorted(grid, cheap)  # past the last step where a candidate is beyond the reference
        self.errors = errors  # samples x pool

    def gains(self) -> np.ndarray:
        """Each candidate's improvement on each sample's front, samples x pool.

        A front's levels only fall to the right, so the steps a candidate lowers are those from its own up to the
        first whose level is at or below its error: a sum of ``width * (level - error)`` over a run of steps, read
        off cumulative sums."""
        n_steps = len(self.widths)
        width_sums = np.concatenate([[0.0], np.cumsum(self.widths)])
        area_sums = np.zeros((len(self.levels), n_steps + 1))
        np.cumsum(self.widths * self.levels, axis=1, out=area_sums[:, 1:])
        above = np.stack([n_steps - np.searchsorted(levels[::-1], errors, side="right")  # steps above the error
                          for levels, errors in zip(self.levels, self.errors)])
        start = np.broadcast_to(self.first_step, above.shape)
        end = np.maximum(above, start)
        rows = np.arange(len(self.levels))[:, None]
        gains = (area_sums[rows, end] - area_sums[rows, start]) - self.errors * (width_sums[end] - width_sums[start])
        return np.where(end > start, gains, 0.0)  # no steps lowered: nothing, even for an overflowed sample

    def misses(self) -> np.ndarray:
        """How far each candidate's sampled error lies above the front's level at its own cheap value, where it
        would start to improve (samples x pool; infinite beyond the reference): ranks candidates that improve on no
        sample by how nearly they do."""
        last = len(self.widths) - 1
        own = self.levels[:, np.minimum(self.first_step, last)] if len(self.widths) else self.errors * 0.0
        return np.where(self.first_step[None, :] <= last, self.errors - own, np.inf)

    def add(self, candidate: int) -> None:
        """Put ``candidate`` on every sample's front, at its sampled error."""
        right = slice(self.first_step[candidate], None)
        self.levels[:, right] = np.minimum(self.levels[:, right], self.errors[:, candidate, None])


class JointEHVI(Infill):
    """Monte-Carlo batch EHVI of two objectives, the first modelled and the second exact, on joint posterior samples
    of the whole pool (`Staircase`): the conditioned choice of the Monte-Carlo EHVI (``MC_SAMPLES`` quasi-random
    draws, as BoTorch's) in milliseconds. Each pick enters every sample's front at that sample's error, so a
    candidate correlated with an earlier pick adds little, unlike the believer batches of ``ehvi-exact``."""

    weighs_errors = True

    def __init__(self, samples: int = MC_SAMPLES):
        self.samples = samples

    def _staircase(self, context: InfillContext, pool: np.ndarray) -> Staircase:
        _check_one_modelled_one_exact(context, "ehvi-joint")
        model = context.surrogate.model()
        with torch.no_grad(), warnings.catch_warnings():
            # an evolved pool holds near-twins, whose joint covariance needs the jitter gpytorch adds and warns of
            warnings.simplefilter("ignore", NumericalWarning)
            posterior = model.posterior(torch.as_tensor(pool, dtype=torch.float64))
            sampler = get_sampler(posterior, sample_shape=torch.Size([self.samples]), seed=context.seed)
            errors = context.sampled(sampler(posterior))[..., 0].numpy()  # samples x pool, drawn jointly
        return Staircase(context.hv_F, context.cheap_values(pool)[:, 0], errors, context.hv_ref)

    def _pick(self, staircase: Staircase, q: int) -> tuple[list[int], np.ndarray]:
        chosen, alone = [], None
        for _ in range(q):
            values = staircase.gains().mean(axis=0)
            alone = values.copy() if alone is None else alone
            values[chosen] = -np.inf
            if values.max() > 0.0:
                best = int(np.argmax(values))
            else:  # no candidate left improves on any sample: the one nearest to improving
                misses = staircase.misses().mean(axis=0)
                misses[chosen] = np.inf
                best = int(np.argmin(misses)) if np.isfinite(misses).any() else next(
                    i for i in range(len(values)) if i not in chosen)
            chosen.append(best)
            staircase.add(best)
        return chosen, alone

    def _select(self, context, pool, q):
        return np.array(self._pick(self._staircase(context, pool), q)[0])

    def _shortlist(self, context, pool, k, q):
        """The batch this criterion would choose, then the rest of the ``k`` by their EHVI alone."""
        batch, alone = self._pick(self._staircase(context, pool), q)
        rest = [i for i in np.argsort(-alone, kind="stable").tolist() if i not in batch]
        return np.array(batch + rest[: k - q])


class EHVIBands(Infill):
    """EHVI with one pick in each of ``q`` bands of the first cheap objective (quantiles over the pool), each
    conditioned on the picks before it: spreads a batch along the front instead of piling it where the front
    is flat. Needs a cheap objective; without one it is plain EHVI."""

    weighs_errors = True

    def _select(self, context, pool, q):
        acquisition = _ehvi(context, pool)
        if context.cheap is None:
            return _pick_from_pool(acquisition, pool, q)
        cheap = context.cheap_values(pool)[:, 0]
        edges = np.quantile(cheap, np.linspace(0.0, 1.0, q + 1))
        chosen: list[int] = []
        for k in range(q):
            band = [i for i in np.flatnonzero((cheap >= edges[k]) & (cheap <= edges[k + 1])) if i not in chosen]
            band = band or [i for i in range(len(pool)) if i not in chosen]  # a band emptied by ties
            with torch.no_grad():
                values = acquisition(torch.as_tensor(pool[band], dtype=torch.float64)[:, None, :])
            chosen.append(band[int(values.argmax())])
            acquisition.set_X_pending(torch.as_tensor(pool[chosen], dtype=torch.float64))
        return np.array(chosen)


class ParEGO(Infill):
    """ParEGO-style: expected improvement of a random augmented Chebyshev scalarisation (new weights each call)."""

    def _select(self, context, pool, q):
        model, sampler = _sampler(context, pool)
        weights = sample_simplex(context.F.shape[1], n=1, dtype=torch.float64, seed=context.seed)[0]
        scalarize = get_chebyshev_scalarization(weights, _maximize(context.F))
        to_max = botorch_objective(context)
        acquisition = qLogExpectedImprovement(
            model, best_f=scalarize(_maximize(context.F)).max(), sampler=sampler,
            objective=GenericMCObjective(lambda samples, X=None: scalarize(to_max(samples, X))))
        return _pick_from_pool(acquisition, pool, q)


class PredictedMean(Infill):
    """Pure exploitation: greedily the candidates whose predicted objectives add most hypervolume."""

    def _select(self, context, pool, q):
        predicted = context.predicted(pool)
        front = context.F.copy()
        chosen: list[int] = []
        rng = np.random.default_rng(context.seed)
        for _ in range(q):
            base = hypervolume(front, context.ref_point)
            gains = np.array([-np.inf if i in chosen else hypervolume(np.vstack([front, p]), context.ref_point) - base
                              for i, p in enumerate(predicted)])
            if gains.max() <= 0:  # nothing is predicted to improve: the least dominated-looking, at random among ties
                free = [i for i in range(len(pool)) if i not in chosen]
                best = free[int(rng.integers(len(free)))]
            else:
                best = int(gains.argmax())
            chosen.append(best)
            front = np.vstack([front, predicted[best]])
        return np.array(chosen)


class RandomFromPool(Infill):
    """``q`` pool rows uniformly at random: the control that shows what the criterion adds."""

    def _select(self, context, pool, q):
        return np.random.default_rng(context.seed).choice(len(pool), size=q, replace=False)


INFILLS: dict[str, type[Infill]] = {"ehvi": EHVI, "ehvi-lazy": LazyEHVI, "ehvi-exact": ExactEHVI,
                                   "ehvi-joint": JointEHVI, "ehvi-bands": EHVIBands, "parego": ParEGO, "mean": PredictedMean,
                                   "random": RandomFromPool}


def infill_class(name: str) -> type[Infill]:
    """The class a registered name or ``package.module:ClassName`` stands for, without instantiating it."""
    found = resolve(name, INFILLS, kind="infill criterion")
    if not (isinstance(found, type) and issubclass(found, Infill)):
        raise ConfigError(f"infill {name!r} must name a subclass of surrogate_emo.infill.Infill, got {found!r}")
    return found


def make_infill(name: str) -> Infill:
    """A registered criterion or a user class given as ``package.module:ClassName``."""
    return infill_class(name)()
