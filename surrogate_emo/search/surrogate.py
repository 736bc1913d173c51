"""The surrogate-assisted loop: fit surrogates on the archive, evolve a pool on their predictions with NSGA-II,
truly evaluate only the ``q`` infill candidates the criterion picks (EHVI by default).

Expensive multi-objective optimisation in the manner of the Neurocomputing 378 (2020) compression work: only the
error is modelled; compression and MACs are exact functions of the genome.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from scipy.stats import qmc

from surrogate_emo.errors import ConfigError
from surrogate_emo.evaluate import batch_of
from surrogate_emo.infill import EHVI, InfillContext, make_infill, polish
from surrogate_emo.search.base import Search
from surrogate_emo.surrogates import (Cheaper, Features, FeatureSurrogate, Surrogate, make_surrogate, portfolio,
                                      surrogate_class)


LOG_FLOOR = 1e-3  # error rates below this are modelled as this, on the log scale


class _PredictedProblem(Problem):
    """What NSGA-II sees inside the loop: surrogate means for the expensive objectives, exact cheap ones."""

    def __init__(self, context: InfillContext, dim: int) -> None:
        super().__init__(n_var=dim, n_obj=context.F.shape[1], xl=0.0, xu=1.0)
        self.context = context

    def _evaluate(self, x, out, *args, **kwargs):
        out["F"] = self.context.predicted(x)


class SurrogateSearch(Search):
    """Latin-hypercube initial design, then per iteration: fit, evolve a pool, pick ``q`` by the infill criterion.

    With ``log_scale`` the surrogate models the logarithm of the expensive objectives (they must be positive).
    A portfolio (``surrogate="gp-f0+rf-f0"``) splits every batch: each surrogate fits, evolves its own pool and
    picks its share by the infill criterion, never a model an earlier share of the batch picked. Several reference
    points (``ref_point`` as a `k x m` array, ``ref_shares`` the fraction of each batch per point, equal by
    default) split every batch the same way for a single surrogate, fitted once: one share can aim the acquisition
    at the useful region (an error reference below 1) while another keeps the whole front. An ``error_weight``
    ``(u, w)`` instead keeps one batch and one criterion that values both: the hypervolume improvement at the
    reference plus ``w`` times the improvement up to error ``u`` (`InfillContext.weighted`).

    Its proposals depend only on the seed, the archive it was told and, with ``refit="warm"``, the surrogates'
    states of the iteration before (a GP's fitted hyperparameters, from which the next fit starts: a quarter of
    the optimizer steps), which go with the trials' notes (``fit_state``). So a resumed run is told the stored
    archive and the latest stored state (`restore`) and carries on, with no replay of earlier iterations
    (``stateless``). ``refit="cold"`` fits every iteration from the defaults, as runs before warm fits did.

    ``lower_bounds`` (one per modelled objective) are what the problem's expensive objectives can never go below
    (0 for an error or for ZDT1's objectives): the acquisitions raise posterior samples below them to them, so
    a GP that believes in a point beyond the front's extreme end no longer finds a box there to improve.

    With ``shortlist = k`` and a fidelity-1 scorer ``short`` (`surrogate_emo.fidelity.ShortFineTune`), each
    iteration's criterion shortlists ``k`` candidates (`Infill.shortlist`: its batch, then the best of the rest),
    each gets a short fine-tune, and the batch is chosen among them by the surrogate refitted on the archive with
    the short-fine-tune error as one more input: a ladder of fidelities 0 (the pool), 1 (the shortlist) and 2
    (the batch). The archive's genomes get their short fine-tunes too (the design's at the first iteration). Each
    trial records its short-fine-tune error and its iteration's short fine-tunes (``short_steps``, charged once
    per genome of the run, so exact across a resume: `surrogate_emo.evaluate.spent_steps` counts them).

    Example:
        >>> search = SurrogateSearch(dim=3, n_obj=2, seed=0, n_init=5, q=2, n_expensive=2, ref_point=[1.1, 1.1])
        >>> search.ask(100).shape  # the initial design first
        (5, 3)
    """

    stateless = True

    def __init__(self, dim: int, n_obj: int, seed: int = 0, surrogate: str = "gp", infill: str = "ehvi-lazy", q: int = 1,
                 n_init: int = 20, pool_size: int = 100, pool_generations: int = 25, screen_generations: int = 0,
                 screen_design: int = 0, polish_steps: int = 0, n_expensive: int = 1,
                 cheap: Callable[[np.ndarray], np.ndarray] | None = None, ref_point=None,
                 log_scale: bool = False, features: Features | None = None,
                 structure: Callable[[np.ndarray], list] | None = None, refit: str = "cold", shortlist: int = 0,
                 short=None, ref_shares=None, lower_bounds=None, error_weight=None) -> None:
        super().__init__(dim, n_obj, seed)
        if q < 1 or n_init < 2 or pool_size < q or pool_generations < 1 or screen_generations < 0:
            raise ConfigError(f"need q >= 1, n_init >= 2, pool_size >= q, pool_generations >= 1 and "
                              f"screen_generations >= 0; got q={q}, n_init={n_init}, pool_size={pool_size}, "
                              f"pool_generations={pool_generations}, screen_generations={screen_generations}")
        if screen_design and (screen_design < n_init or features is None):
            raise ConfigError(f"screen_design must be 0, or at least n_init ({n_init}) with fidelity-0 features (a "
                              f"compression problem); got screen_design={screen_design}, "
                              f"features={'none' if features is None else 'given'}")
        if not 1 <= n_expensive <= n_obj or (cheap is None) != (n_expensive == n_obj):
            raise ConfigError(f"n_expensive must be in [1, {n_obj}] and cheap objectives given exactly when some "
                              f"objectives are cheap; got n_expensive={n_expensive}, cheap={cheap!r}")
        if refit not in ("warm", "cold"):
            raise ConfigError(f"refit must be 'warm' or 'cold', got {refit!r}")
        self.surrogates, self.infill = portfolio(surrogate), make_infill(infill)  # unknown names fail now
        if len(self.surrogates) > q:
            raise ConfigError(f"a portfolio of surrogates needs a batch q of at least one candidate each; got "
                              f"{len(self.surrogates)} surrogates ({surrogate}) and q={q}")
        differentiable = all(surrogate_class(name).differentiable for name in self.surrogates)
        if polish_steps < 0 or polish_steps and not (cheap is None and differentiable and isinstance(self.infill, EHVI)):
            raise ConfigError(f"polish_steps must be 0, or > 0 with every objective modelled (no exact cheap "
                              f"objectives), a differentiable surrogate (gp) and an EHVI infill (ehvi, ehvi-lazy); "
                              f"got polish_steps={polish_steps}, cheap objectives: {'none' if cheap is None else 'given'}, "
                              f"surrogate={surrogate}, infill={infill}")
        first = surrogate_class(self.surrogates[0])
        if shortlist and (shortlist <= q or short is None or len(self.surrogates) > 1
                          or not (first.uses_features or first.uses_cheaper and n_expensive == 1)):
            raise ConfigError(f"shortlist must be 0, or more than q ({q}) with short fine-tunes (a compression "
                              f"problem) and one surrogate that reads features (gp-f0, rf-f0) or models the short "
                              f"fine-tunes of one expensive objective (gp-mf); got shortlist={shortlist}, short "
                              f"fine-tunes: {'none' if short is None else 'given'}, surrogate={surrogate}, "
                              f"expensive objectives: {n_expensive}")
        self.polish_steps = polish_steps
        self.shortlist, self.short = shortlist, short
        # a surrogate that models the short fine-tunes keeps every one the run made, each iteration's shortlist too
        self.models_short = bool(shortlist) and first.uses_cheaper
        self._listed: list[np.ndarray] = []  # the shortlists of the iterations so far, with models_short
        self.q, self.n_init, self.pool_size, self.pool_generations = q, n_init, pool_size, pool_generations
        self.screen_generations, self.screen_design = screen_generations, screen_design
        self.n_expensive, self.cheap, self.log_scale = n_expensive, cheap, log_scale
        # cheap features of genomes (the fidelity-0 error), read by surrogates that use them; timed per iteration
        self.features = None if features is None else _Timed(features)
        self.structure = structure  # genomes -> the model each builds: a pool never offers one already evaluated
        self.ref_points = np.atleast_2d(np.ones(n_obj) if ref_point is None else np.asarray(ref_point, np.float64))
        self.lower_bounds = None if lower_bounds is None else np.asarray(lower_bounds, dtype=np.float64).reshape(-1)
        if self.lower_bounds is not None and (
                len(self.lower_bounds) != n_expensive or not np.all(np.isfinite(self.lower_bounds))
                or np.any(self.lower_bounds >= self.ref_points[:, :n_expensive])):
            raise ConfigError(f"lower_bounds needs one finite number per modelled objective ({n_expensive}), each "
                              f"below the reference point's {self.ref_points[:, :n_expensive].min(axis=0).tolist()}; "
                              f"got {self.lower_bounds.tolist()}")
        self.ref_point = self.ref_points[0]
        if error_weight is not None:
            useful, weight = error_weight
            if (n_expensive != 1 or len(self.ref_points) > 1 or not self.infill.weighs_errors or weight < 0
                    or not 0 < useful < self.ref_point[0]):
                raise ConfigError(f"an error weight (useful error, weight) needs one expensive objective, one reference "
                                  f"point above the useful error, a weight >= 0 and a criterion that weighs errors "
                                  f"(ehvi, ehvi-lazy, ehvi-joint, ehvi-bands); got {tuple(error_weight)}, "
                                  f"{n_expensive} expensive, reference {self.ref_points.tolist()}, infill {infill}")
            error_weight = (float(useful), float(weight))
        self.error_weight = error_weight
        self.member_shares = _member_shares(self.ref_points, ref_shares, self.surrogates, shortlist)
        self._design = qmc.LatinHypercube(d=dim, seed=seed).random(screen_design or n_init)
        self._design_seconds = 0.0
        self.X = np.zeros((0, dim))
        self.F = np.zeros((0, n_obj))
        self.iterations: list[dict] = []  # timings and predictions of each surrogate iteration of this session
        self._iterations_before = 0  # those of the sessions before a resume, so the numbering carries on
        self._last: dict[int, dict] = {}
        self.refit = refit
        self._fit_states: dict[str, dict] = {}  # per surrogate of the portfolio: where its next fit starts
        self._fitted_now: dict[str, Surrogate] = {}

    @classmethod
    def from_config(cls, config, dim: int, n_obj: int, cheap=None, n_expensive: int = 1, ref_point=None,
                    features=None, structure=None, short=None, ref_shares=None, lower_bounds=None, **_):
        return cls(dim, n_obj, seed=config.seed, surrogate=config.surrogate, infill=config.infill, q=config.q,
                   n_init=config.n_init, pool_size=config.pool_size, pool_generations=config.pool_generations,
                   screen_generations=config.screen_generations, screen_design=config.screen_design,
                   polish_steps=config.polish_steps, n_expensive=n_expensive, cheap=cheap,
                   ref_point=ref_point, log_scale=config.error_scale == "log", features=features, structure=structure,
                   refit=config.refit, shortlist=config.shortlist, short=short, ref_shares=ref_shares,
                   lower_bounds=lower_bounds,
                   error_weight=None if config.useful_weight == 0 else (config.useful_error, config.useful_weight))

    def ask(self, n_max: int) -> np.ndarray:
        self._last = {}
        if len(self.X) < self.n_init:
            if len(self._design) > self.n_init:
                started = time.perf_counter()
                self._design = self._screened_design()
                self._design_seconds = time.perf_counter() - started
            design = self._design[len(self.X):][:n_max]
            if self.screen_design:  # what choosing the design cost, with each of its trials (the same number)
                self._last = {i: {"design_feature_seconds": self._design_seconds} for i in range(len(design))}
            return design
        shares, stats = self._choose(n_max, self._iteration_seed())
        stats = {"iteration": self._iterations_before + len(self.iterations), "archive": len(self.X), **stats}
        self.iterations.append(stats)
        notes = [note for share in shares for note in self._predictions(*share)]
        for key, surrogate in self._fitted_now.items() if self.refit == "warm" else ():
            state = surrogate.state()
            if state is not None:
                self._fit_states[key] = state
        # every trial of the batch carries the states, so that any of them restores the next iteration's start
        kept = {"fit_state": dict(self._fit_states)} if self._fit_states else {}
        if self.models_short:  # and the shortlist, whose short fine-tunes the next fits model
            kept["shortlisted"] = self._listed[-1].tolist()
        self._last = {i: {**stats, **note, **kept} for i, note in enumerate(notes)}
        return np.vstack([picked for _, _, picked, _ in shares])

    def _predictions(self, name: str, surrogate: Surrogate, picked: np.ndarray, ref: np.ndarray) -> list[dict]:
        """Per picked genome, what ``surrogate`` predicted for it (and the features it read, and the reference point
        it was chosen with where there are several), stored with the trial."""
        mean, var = surrogate.predict(picked)
        if self.log_scale:
            mean = np.exp(mean)  # var stays on the log scale it was modelled on
        notes = [{"predicted": m.tolist(), "predicted_var": v.tolist()} for m, v in zip(mean, var)]
        if self.features is not None and surrogate.uses_features:
            read = getattr(surrogate, "features", None) or self.features  # with the short fine-tunes' where refitted
            for note, row in zip(notes, read(picked)):
                note["features"] = row.tolist()
        if self.shortlist:
            for note, error in zip(notes, self.short.errors(picked)):
                note["short_error"] = float(error)
        if len(self.surrogates) > 1:
            for note in notes:
                note["surrogate"] = name
        if len(self.ref_points) > 1:
            for note in notes:
                note["reference_point"] = ref.tolist()
        return notes

    def _screened_design(self) -> np.ndarray:
        """The ``n_init`` of the ``screen_design`` Latin-hypercube points that NSGA-II's rank and crowding (pymoo)
        keeps on their fidelity-0 error and exact cheap objectives: the design is fine-tuned where the front is
        likely to be, not spread over the whole cube."""
        cheap = self.cheap(self._design) if self.cheap is not None else np.zeros((len(self._design), 0))
        F = np.hstack([self.features(self._design), cheap])
        population = Population.new(X=self._design, F=F)
        problem = Problem(n_var=self.dim, n_obj=F.shape[1], xl=0.0, xu=1.0)
        kept = RankAndCrowding().do(problem, population, n_survive=self.n_init,
                                    random_state=np.random.default_rng(self.seed))
        return np.asarray(kept.get("X"), dtype=np.float64)

    def _iteration_seed(self) -> int:
        """The seed of the iteration at the archive's current size: a resumed run draws the same one."""
        return iteration_seed(self.seed, len(self.X))

    def _context(self, surrogate: Surrogate, seed: int, ref: np.ndarray | None = None) -> InfillContext:
        """What an infill criterion sees: the fitted surrogate, the archive, the exact objectives, the reference
        point (default: the first)."""
        return InfillContext(surrogate, self.X, self.F, self.n_expensive, self.cheap,
                             self.ref_point if ref is None else ref, seed, self.log_scale, self.lower_bounds,
                             self.error_weight)

    def _choose(self, n_max: int, seed: int) -> tuple[list[tuple[str, Surrogate, np.ndarray, np.ndarray]], dict]:
        """Per surrogate of the portfolio (or per reference point): fit, evolve the pool, pick its share of the
        batch by the infill criterion. Returns (name, fitted surrogate, picked genomes, reference point) per share,
        and the summed timings."""
        if self.features is not None:
            self.features.seconds = 0.0
        self._fitted_now = {}  # every surrogate fitted this iteration, by the key its warm state is kept under
        stats = dict.fromkeys(("fit_seconds", "pool_seconds", "infill_seconds"), 0.0)
        if self.models_short:  # the fits below model the archive's short fine-tunes: the design's are made now
            started = time.perf_counter()
            self.short.errors(self.X)
            stats["short_seconds"] = time.perf_counter() - started
        shares, picked, fitted_by_key = [], np.zeros((0, self.dim)), {}
        # a share of the batch per surrogate of a portfolio, or per reference point of a single surrogate
        members = ([(name, self.ref_point) for name in self.surrogates] if len(self.ref_points) == 1 else
                   [(self.surrogates[0], ref) for ref in self.ref_points])
        for k, ((name, ref), size) in enumerate(zip(members, _split(min(self.q, n_max), self.member_shares))):
            if not size:
                continue
            member_seed = seed + k  # the first member draws what a single surrogate draws
            started = time.perf_counter()
            fit_key = name if len(self.ref_points) > 1 else k  # several reference points share one fit
            if fit_key not in fitted_by_key:
                fitted_by_key[fit_key] = self._fitted(name, member_seed)
            surrogate = fitted_by_key[fit_key]
            fitted = time.perf_counter()
            context = self._context(surrogate, member_seed, ref)
            # the pool evolves on the genome alone: features cost a forward pass per point, NSGA-II asks for thousands
            on_genome = surrogate.genome_only() if isinstance(surrogate, FeatureSurrogate) else surrogate
            pool = self._pool(self._context(on_genome, member_seed, ref), member_seed, pending=picked,
                              refine=context if on_genome is not surrogate else None)
            pooled = time.perf_counter()
            short_seconds = 0.0
            if self.shortlist:
                surrogate, context, chosen, short_seconds = self._short_choice(name, member_seed, context, pool,
                                                                               size, stats)
            else:
                chosen = pool[self.infill.select(context, pool, size)]
            if self.polish_steps:
                chosen = polish(context, chosen, self.polish_steps)
            stats["fit_seconds"] += fitted - started
            stats["pool_seconds"] += pooled - fitted
            stats["infill_seconds"] += time.perf_counter() - pooled - short_seconds
            shares.append((name, surrogate, chosen, ref))
            picked = np.vstack([picked, chosen])
        if self.features is not None:  # spent inside the three above: cheap evaluations, not optimizer time
            stats["feature_seconds"] = self.features.seconds
        return shares, stats

    def _short_choice(self, name: str, seed: int, context: InfillContext, pool: np.ndarray, size: int,
                      stats: dict) -> tuple[Surrogate, InfillContext, np.ndarray, float]:
        """The fidelity-1 step of an iteration: shortlist, short fine-tunes, refit with their errors (as an input,
        or as observations of a surrogate that models them), choose ``size``. Returns the refitted surrogate, its
        context, the chosen rows and the seconds the short fine-tunes took; adds their count, steps and seconds to
        ``stats``."""
        listed = pool[self.infill.shortlist(context, pool, self.shortlist, size)]
        first = len(self.X) == self.n_init  # the design's genomes are scored now, the loop's when shortlisted
        started = time.perf_counter()
        self.short.features(np.vstack([self.X, listed]))  # on a resume, the archive's are scored again: seconds only
        spent = time.perf_counter() - started
        stats["short_seconds"] = stats.get("short_seconds", 0.0) + spent
        stats["short_scored"] = len(listed) + (self.n_init if first else 0)
        stats["short_steps"] = stats["short_scored"] * self.short.steps
        if self.models_short:
            self._listed.append(listed)
            refitted = self._fitted(name, seed)
        else:
            refitted = self._fitted(name, seed, features=self._with_short, key=f"{name}|short")
        refined = self._context(refitted, seed)
        return refitted, refined, listed[self.infill.select(refined, listed, size)], spent

    def _cheaper(self) -> Cheaper:
        """The run's short fine-tunes, for a surrogate that models them: every archived genome's and every
        shortlisted one's, each once, in the order they came (so a resumed run fits on the same data)."""
        return short_observations(self.short, self.X, self._listed, self.log_scale)

    def _with_short(self, X: np.ndarray) -> np.ndarray:
        """The features the refitted surrogate reads: fidelity 0 and fidelity 1."""
        return np.hstack([self.features(X), self.short.features(X)])

    def _fitted(self, name: str, seed: int, features: Features | None = None, key: str | None = None) -> Surrogate:
        """Surrogate ``name`` fitted to the archive's expensive objectives, on a log scale if asked, reading
        ``features`` (default: fidelity 0); warm refits start from the state kept under ``key`` (default: ``name``),
        or from this iteration's earlier fit under it where there is one (a multi-fidelity GP refitted with the
        shortlist's short fine-tunes: the same archive and a shortlist more, so its optimum is closer still)."""
        key = key or name
        earlier = self._fitted_now.get(key) if self.refit == "warm" else None
        start = earlier.state() if earlier is not None else self._fit_states.get(key)
        expensive = self.F[:, : self.n_expensive]
        if self.log_scale:
            # errors span decades at the interesting end: on a log scale the GP's error there halves (measured);
            # the floor keeps a perfect score from becoming an outlier that bends the whole fit
            expensive = np.log(np.maximum(expensive, LOG_FLOOR))
        cheaper = self._cheaper() if self.models_short else None
        fitted = make_surrogate(name, seed=seed, features=features or self.features, cheaper=cheaper).fit(
            self.X, expensive, start=start)
        self._fitted_now[key] = fitted
        return fitted

    def annotations(self, X: np.ndarray) -> list[dict]:
        """Per asked genome: the surrogate's prediction and the iteration's timings (stored with the trial)."""
        return [self._last.get(i, {}) for i in range(len(X))]

    def restore(self, notes: list[dict]) -> None:
        """Start the next fits where the interrupted run would have: from the latest stored ``fit_state``; number
        the next iteration after the stored batches (`batch_of`)."""
        self._iterations_before = len({batch_of(note) for note in notes if "iteration" in note})
        if self.models_short:  # every trial of a batch carries its iteration's shortlist: one per batch
            by_batch = {batch_of(note): note["shortlisted"] for note in notes if "shortlisted" in note}
            self._listed = [np.array(listed, dtype=np.float64).reshape(-1, self.dim) for listed in by_batch.values()]
        states = [note["fit_state"] for note in notes if "fit_state" in note]
        if self.refit == "warm" and states:
            self._fit_states = dict(states[-1])

    def tell(self, X: np.ndarray, F: np.ndarray) -> None:
        self.X = np.vstack([self.X, np.asarray(X, dtype=np.float64)])
        self.F = np.vstack([self.F, np.asarray(F, dtype=np.float64)])

    def _pool(self, context: InfillContext, seed: int, pending: np.ndarray,
              refine: InfillContext | None = None) -> np.ndarray:
        """NSGA-II on the predictions, started from the archive's best, plus uniform points for exploration. With
        ``refine`` (a feature surrogate's context) and ``screen_generations``, the evolved population then evolves
        that many generations more on the feature surrogate: every new point costs its features (a forward pass).
        Neither an archived model nor one of ``pending`` (picked earlier in this batch) is offered."""
        by_front = np.concatenate(NonDominatedSorting().do(self.F))  # archive rows, best fronts first
        start = self.X[by_front[: self.pool_size]]
        rng = np.random.default_rng(seed)
        if len(start) < self.pool_size:
            start = np.vstack([start, rng.random((self.pool_size - len(start), self.dim))])
        result = minimize(_PredictedProblem(context, self.dim),
                          NSGA2(pop_size=self.pool_size, sampling=start, eliminate_duplicates=True),
                          ("n_gen", self.pool_generations), seed=seed, verbose=False)
        if refine is not None and self.screen_generations:
            result = minimize(_PredictedProblem(refine, self.dim),
                              NSGA2(pop_size=self.pool_size, sampling=result.pop.get("X"), eliminate_duplicates=True),
                              ("n_gen", self.screen_generations), seed=seed, verbose=False)
        pool = np.clip(np.vstack([result.pop.get("X"), rng.random((self.pool_size // 4, self.dim))]), 0.0, 1.0)
        return self._unseen(pool, rng, pending)

    def _unseen(self, pool: np.ndarray, rng: np.random.Generator, pending: np.ndarray) -> np.ndarray:
        """The rows of ``pool`` that build a model neither the archive, ``pending`` nor an earlier row builds (by
        ``structure``; without it, by the genome itself), topped up with uniform draws to ``q`` where too few are
        left."""
        key = (lambda X: [row.tobytes() for row in X]) if self.structure is None else self.structure
        known = np.vstack([self.X, pending])
        taken, fresh = set(key(known)) if len(known) else set(), []
        for row, row_key in zip(pool, key(pool)):
            if row_key not in taken:
                taken.add(row_key)
                fresh.append(row)
        for _ in range(100 * self.q):  # a pool of known models only (a tiny space): uniform draws until q new ones
            if len(fresh) >= self.q:
                break
            row = rng.random((1, self.dim))
            row_key = key(row)[0]
            if row_key not in taken:
                taken.add(row_key)
                fresh.append(row[0])
        if len(fresh) < self.q:  # every model of the space evaluated: repeats, but never an archived or pending genome
            known_rows = {row.tobytes() for row in known}
            fresh += [row for row in pool if row.tobytes() not in known_rows][: self.q - len(fresh)]
        return np.array(fresh).reshape(-1, self.dim)


def iteration_seed(seed: int, archive: int) -> int:
    """The seed of a loop's iteration: from the run's seed and the archive's size, so a resumed run (or a replay of
    a stored one) draws the same."""
    return int(np.random.SeedSequence([seed, archive]).generate_state(1)[0] % (2**31))


def short_observations(short, X: np.ndarray, shortlists, log_scale: bool) -> Cheaper:
    """The short fine-tunes a multi-fidelity surrogate models: of the archive ``X`` and of every shortlist, each
    genome once, in the order they came (so a resumed run fits on the same data)."""
    seen, rows = set(), []
    for row in np.vstack([X, *shortlists]):
        if row.tobytes() not in seen:
            seen.add(row.tobytes())
            rows.append(row)
    known = np.array(rows)
    errors = short.errors(known)
    # on the expensive objective's own scale, with its floor: the same quantity at a lower fidelity
    observed = np.log(np.maximum(errors, LOG_FLOOR)) if log_scale else errors
    return Cheaper(known, observed[:, None], short.fidelity)


class _Timed:
    """A features function that adds up the seconds spent in it."""

    def __init__(self, features: Features) -> None:
        self.function, self.seconds = features, 0.0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.function(X)
        finally:
            self.seconds += time.perf_counter() - started


def _member_shares(ref_points: np.ndarray, ref_shares, surrogates: list[str], shortlist: int) -> np.ndarray:
    """The fraction of each batch per member: per surrogate of a portfolio (equal), or per reference point of a
    single surrogate (``ref_shares``, equal by default)."""
    k = len(ref_points)
    if k == 1:
        if ref_shares is not None and len(ref_shares) != 1:
            raise ConfigError(f"ref_shares must give one share per reference point (1); got {list(ref_shares)}")
        return np.full(len(surrogates), 1.0 / len(surrogates))
    shares = np.full(k, 1.0 / k) if ref_shares is None else np.asarray(ref_shares, dtype=np.float64)
    if len(surrogates) > 1 or shortlist:
        raise ConfigError(f"several reference points need one surrogate and no shortlist; got "
                          f"surrogate={'+'.join(surrogates)}, shortlist={shortlist}")
    if shares.shape != (k,) or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
        raise ConfigError(f"ref_shares must be {k} fractions >= 0 adding up to 1, one per reference point; "
                          f"got {shares.tolist()}")
    return shares


def _split(n: int, shares: np.ndarray) -> list[int]:
    """``n`` picks split by ``shares`` (largest remainder, ties to the earlier member): with equal shares the
    sizes ``np.array_split`` gives."""
    exact = n * np.asarray(shares)
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()
