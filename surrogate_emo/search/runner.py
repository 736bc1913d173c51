"""Drives a `Search` against true evaluations under a budget, writing each to the study and replaying on resume."""

from __future__ import annotations

import time

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from surrogate_emo.cache import genome_key
from surrogate_emo.errors import ConfigError, StudyMismatchError
from surrogate_emo.evaluate import Evaluation, Evaluator, trial_seed
from surrogate_emo.front import hypervolume, pareto_indices
from surrogate_emo.search.base import Search
from surrogate_emo.store import Study


class TrialRunner:
    """Numbers trials, evaluates or replays them, and stops at ``budget`` true evaluations.

    Resume works by replay: the search is rerun from its seed, and each trial already in the study is answered
    from the study instead of being fine-tuned again. A stored genome that differs from the one proposed means
    the configuration, seed or code changed, and stops the run with `StudyMismatchError`. A search marked
    ``stateless`` (its proposals depend only on what it was told) is instead told the whole stored archive at once.
    """

    def __init__(self, evaluator: Evaluator, study: Study, run_id: int, seed: int, budget: int,
                 ref_point: np.ndarray, progress: bool = True, n_jobs: int = 1,
                 time_limit: float | None = None) -> None:
        if budget < 1:
            raise ConfigError(f"budget must be at least 1 true evaluation, got {budget}")
        self.evaluator, self.study, self.run_id, self.seed, self.budget = evaluator, study, run_id, seed, budget
        self.ref_point = np.asarray(ref_point, dtype=np.float64)
        self.history: list[Evaluation] = []  # in trial order; each knows its trial number (gaps are possible)
        self._objectives: list[np.ndarray] = []  # kept beside history, not recomputed at every trial
        self.replayed = 0
        self.search_seconds = 0.0
        self.n_jobs, self.time_limit = n_jobs, time_limit
        self.stopped_by = "budget"
        self._stored = study.evaluations(run_id, pending=True)
        self._next_trial = 0
        self._progress = progress
        self._failed, self._finetune_seconds = 0, 0.0

    @property
    def remaining(self) -> int:
        return self.budget - len(self.history)

    def objectives(self) -> np.ndarray:
        """Objectives `n x m` of every trial so far, failed ones at the worst error."""
        return np.array(self._objectives).reshape(-1, len(self.ref_point))

    def run(self, search: Search) -> list[Evaluation]:
        bar = tqdm(total=self.budget, desc="true evaluations", unit="eval", disable=not self._progress, leave=True)
        started = time.perf_counter()
        try:
            if search.stateless and self._stored:
                self._restore(search, bar)
            while self.remaining > 0:
                if self.time_limit is not None and time.perf_counter() - started >= self.time_limit:
                    self.stopped_by = "time_limit"
                    break
                start = time.perf_counter()
                X = np.atleast_2d(search.ask(self.remaining))
                asked = time.perf_counter() - start
                # every trial records the optimizer time of the batch that proposed it, for the experiment reports
                notes = [{**note, "batch_search_seconds": asked, "batch_size": len(X)} for note in search.annotations(X)]
                self.search_seconds += asked
                F = np.array([self.evaluator.objectives(e) for e in self._batch(X, notes, bar)])
                start = time.perf_counter()
                search.tell(X, F)
                self.search_seconds += time.perf_counter() - start
        finally:
            bar.close()
        return self.history

    def _restore(self, search: Search, bar) -> None:
        """A search whose proposals depend only on its archive is told every stored trial at once (no replay);
        the unfinished rest of an interrupted batch is evaluated and told next, as it would have been."""
        trials = sorted(self._stored)[: self.budget]
        finished = [t for t in trials if self._stored[t].status != "pending"]
        for trial in finished:
            self._append(trial, self._stored[trial], bar)
            self.replayed += 1
        self._keep_front()
        search.tell(np.array([e.genome for e in self.history]), self.objectives())
        pending = [t for t in trials if self._stored[t].status == "pending"]
        if pending:
            X = np.array([self._stored[t].genome for t in pending])
            evaluations = self._batch(X, [{} for _ in pending], bar, trials=pending)
            search.tell(X, np.array([self.evaluator.objectives(e) for e in evaluations]))
        self._next_trial = max(trials) + 1

    def _batch(self, X: np.ndarray, notes: list[dict], bar, trials: list[int] | None = None) -> list[Evaluation]:
        """Evaluate (or replay) one batch; new trials run through joblib when ``n_jobs != 1``, each recorded as
        it finishes."""
        if trials is None:
            trials = list(range(self._next_trial, self._next_trial + len(X)))
            self._next_trial += len(X)
        results: dict[int, Evaluation] = {}
        todo = []
        for trial, genome, note in zip(trials, X, notes):
            stored = self._stored.get(trial)
            if stored is None or stored.status == "pending":
                if stored is not None and not np.array_equal(stored.genome, genome):
                    raise StudyMismatchError(f"trial {trial} of run {self.run_id} was asked with another genome "
                                             "before the interruption: the seed, configuration or code changed")
                todo.append((trial, genome, note))
            elif not np.array_equal(stored.genome, genome):
                raise StudyMismatchError(
                    f"trial {trial} of run {self.run_id} in {self.study.path} stored genome {stored.genome.round(4)}, "
                    f"but the search now proposes {np.round(genome, 4)}: the seed, configuration or code changed "
                    "since the run started. Use another run name to start afresh.")
            else:
                results[trial] = stored
                self.replayed += 1
        fresh = [(t, g) for t, g, _ in todo if t not in self._stored]
        if fresh:
            self.study.mark_pending(self.run_id, [t for t, _ in fresh], np.array([g for _, g in fresh]))
        for trial, evaluation in self._evaluate(todo, X):
            results[trial] = evaluation
            self.study.record(self.run_id, trial, evaluation)
        for trial in trials:
            self._append(trial, results[trial], bar)
        self._keep_front()
        return [results[trial] for trial in trials]

    def _evaluate(self, todo: list[tuple[int, np.ndarray, dict]], batch: np.ndarray):
        sources = self._warm_sources(batch)
        jobs = [(self.evaluator, trial, genome, trial_seed(self.seed, trial), note, sources)
                for trial, genome, note in todo]
        if self.n_jobs == 1 or len(todo) < 2:
            return (_evaluate_one(*job) for job in jobs)
        # joblib's backend is the caller's to choose: parallel_config(backend="dask") spreads this over a cluster
        return Parallel(n_jobs=self.n_jobs, return_as="generator_unordered")(delayed(_evaluate_one)(*job) for job in jobs)

    @property
    def _cache(self):
        return getattr(self.evaluator, "cache", None)  # synthetic evaluators have none

    def _warm_sources(self, batch: np.ndarray) -> list[tuple[np.ndarray, str]] | None:
        """The cached models a batch may warm-start from: those cached before it began, less any stored under one
        of its own genomes. So no candidate starts from a batch-mate, and the archive is the same whatever
        ``n_jobs``, whichever batch-mate finishes first, and whether the batch was interrupted and resumed."""
        if self._cache is None:
            return None
        own = {genome_key(genome) for genome in batch}
        return [(genome, label) for genome, label in self._cache.entries() if genome_key(genome) not in own]

    def _keep_front(self) -> None:
        """Keep the archive's Pareto front out of the model cache's eviction. A model once dominated stays
        dominated (the archive only grows), so the final front's models are all still there at the end: the front
        is re-scored on the very models evaluated, which a warm-started model's genome and seed cannot rebuild."""
        if self._cache is not None and self.history:
            self._cache.keep([self.history[i].genome for i in pareto_indices(self.objectives())])

    def _append(self, trial: int, evaluation: Evaluation, bar) -> None:
        evaluation.trial = trial
        self.history.append(evaluation)
        self._objectives.append(self.evaluator.objectives(evaluation))
        self._next_trial = max(self._next_trial, trial + 1)
        self._failed += not evaluation.ok
        self._finetune_seconds += evaluation.seconds
        if self._progress:
            bar.set_postfix(hv=f"{hypervolume(self.objectives(), self.ref_point):.4f}", failed=self._failed,
                            finetune=f"{self._finetune_seconds:.0f}s", search=f"{self.search_seconds:.0f}s",
                            refresh=False)
        bar.update(1)


def _evaluate_one(evaluator: Evaluator, trial: int, genome: np.ndarray, seed: int, note: dict,
                  warm_sources: list | None) -> tuple[int, Evaluation]:
    """One true evaluation; module-level so joblib can ship it to a worker process."""
    evaluation = evaluator(genome, seed) if warm_sources is None else evaluator(genome, seed, warm_sources)
    evaluation.extra.update(note)
    return trial, evaluation
