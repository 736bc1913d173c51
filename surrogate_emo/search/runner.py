"""Drives a `Search` against true evaluations under a budget, writing each to the study and replaying on resume."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
import warnings

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from surrogate_emo.cache import genome_key
from surrogate_emo.errors import ConfigError, RunInterrupted, StudyMismatchError
from surrogate_emo.evaluate import Evaluation, Evaluator, spent_steps, trial_seed, used_labels
from surrogate_emo.front import hypervolume, pareto_indices
from surrogate_emo.search.base import Search
from surrogate_emo.store import Study


# A proposed genome within this of the stored one is the same trial computed on another CPU or BLAS (their floats
# differ in the last bits); the stored genome is kept. Anything farther means the seed, configuration or code changed.
GENOME_TOLERANCE = 1e-9


class TrialRunner:
    """Numbers trials, evaluates or replays them, and stops at ``budget`` true evaluations (or, between batches, at
    ``time_limit`` seconds of this session or ``step_limit`` fine-tuning steps of the whole run, short fine-tunes
    included: `spent_steps`).

    Resume works by replay: the search is rerun from its seed, and each trial already in the study is answered
    from the study instead of being fine-tuned again. A stored genome that differs from the one proposed by more
    than floating-point noise (`GENOME_TOLERANCE`) means the configuration, seed or code changed, and stops the
    run with `StudyMismatchError`. A search marked ``stateless`` (its proposals depend only on what it was told)
    is instead told the stored archive at once, and the batch that was interrupted, if any, is finished as asked.

    With a model cache, warm-start sources are chosen and loaded here, fine-tuned models are put into the cache
    here, and the cache's use and eviction are recorded in trial order: workers only fine-tune, and the archive
    is the same whatever ``n_jobs``, the order in which workers finish, and wherever the run was interrupted.
    """

    def __init__(self, evaluator: Evaluator, study: Study, run_id: int, seed: int, budget: int,
                 ref_point: np.ndarray, progress: bool = True, n_jobs: int = 1,
                 time_limit: float | None = None, step_limit: int | None = None) -> None:
        if budget < 1:
            raise ConfigError(f"budget must be at least 1 true evaluation, got {budget}")
        self.evaluator, self.study, self.run_id, self.seed, self.budget = evaluator, study, run_id, seed, budget
        self.ref_point = np.asarray(ref_point, dtype=np.float64)
        self.history: list[Evaluation] = []  # in trial order; each knows its trial number (gaps are possible)
        self._objectives: list[np.ndarray] = []  # kept beside history, not recomputed at every trial
        self.replayed = 0
        self.evaluated_now = 0  # true evaluations run in this session (in whichever process)
        self.search_seconds = 0.0
        self.n_jobs, self.time_limit, self.step_limit = n_jobs, time_limit, step_limit
        self.stopped_by = "budget"
        self._stored = study.evaluations(run_id, pending=True)
        self._next_trial = 0
        self._progress = progress
        self._failed, self._finetune_seconds = 0, 0.0
        self._settled = False  # whether this session has brought the cache to its state at a batch's start

    @property
    def remaining(self) -> int:
        return self.budget - len(self.history)

    def objectives(self) -> np.ndarray:
        """Objectives `n x m` of every trial so far, failed ones at the worst error."""
        return np.array(self._objectives).reshape(-1, len(self.ref_point))

    def run(self, search: Search) -> list[Evaluation]:
        """Run ``search`` to the budget (or time limit). Ctrl-C or SIGTERM (as `KeyboardInterrupt`) raise
        `RunInterrupted` once the joblib workers are stopped; everything finished is in the study."""
        bar = tqdm(total=self.budget, desc="true evaluations", unit="eval", disable=not self._progress, leave=True)
        started = time.perf_counter()
        try:
            if search.stateless and self._stored:
                self._restore(search, bar)
            while self.remaining > 0:
                if self.time_limit is not None and time.perf_counter() - started >= self.time_limit:
                    self.stopped_by = "time_limit"
                    break
                if self.step_limit is not None and spent_steps(self.history) >= self.step_limit:
                    self.stopped_by = "step_limit"  # counted over every session: the stored steps are exact
                    break
                start = time.perf_counter()
                X = np.atleast_2d(search.ask(self.remaining))
                asked = time.perf_counter() - start
                # every trial records the optimizer time of the batch that proposed it, for the experiment reports,
                # and the batch it belongs to, so a resumed run finishes an interrupted batch as it was asked
                notes = [{**note, "batch_search_seconds": asked, "batch_size": len(X), "batch_first": self._next_trial}
                         for note in search.annotations(X)]
                self.search_seconds += asked
                evaluations = self._batch(X, notes, bar)
                start = time.perf_counter()
                # the stored genomes, where a trial was replayed: the archive is the stored one
                search.tell(np.array([e.genome for e in evaluations]),
                            np.array([self.evaluator.objectives(e) for e in evaluations]))
                self.search_seconds += time.perf_counter() - start
        except KeyboardInterrupt:
            _stop_workers()
            raise RunInterrupted(self.evaluated_now) from None
        finally:
            bar.close()
        return self.history

    def _restore(self, search: Search, bar) -> None:
        """Hand a stateless search the stored trials' notes (`Search.restore`: what one iteration passes the next),
        tell it every stored trial before the interrupted batch at once (no replay), then
        finish that batch as it was asked: its finished trials from the study, the rest evaluated, told in trial
        order, with the warm-start sources and cache state of the batch's start."""
        trials = sorted(self._stored)[: self.budget]
        search.restore([self._stored[t].extra for t in trials])
        batch = self._interrupted_batch(trials)
        before = sorted(set(trials) - set(batch))
        for trial in before:
            self._append(trial, self._stored[trial])
            self.replayed += 1
        bar.update(len(before))
        self._touch(self.history)  # their uses again, in trial order: the same least-recently-used order
        self._keep_front(evict=False)  # the cache on disk already holds the state after the last whole batch
        if before:
            search.tell(np.array([e.genome for e in self.history]), self.objectives())
        if batch:
            X = np.array([self._stored[t].genome for t in batch])
            evaluations = self._batch(X, [self._stored[t].extra for t in batch], bar, trials=batch)
            search.tell(X, np.array([self.evaluator.objectives(e) for e in evaluations]))
        self._next_trial = max(trials) + 1

    def _interrupted_batch(self, trials: list[int]) -> list[int]:
        """Trials of the batch that was interrupted (finished or not), in trial order; [] when none was."""
        pending = [t for t in trials if self._stored[t].status == "pending"]
        if not pending:
            return []
        first = self._stored[pending[0]].extra.get("batch_first")
        if first is None:  # a study written before batches were recorded: the pending trials and those after
            return [t for t in trials if t >= pending[0]]
        return [t for t in trials if self._stored[t].extra.get("batch_first") == first]

    def _check_replay(self, trial: int, stored: np.ndarray, proposed: np.ndarray) -> None:
        """Refuse a stored trial whose genome differs from the proposed one by more than float noise."""
        proposed = np.asarray(proposed, dtype=np.float64)
        if stored.shape != proposed.shape:
            raise StudyMismatchError(
                f"trial {trial} of run {self.run_id} in {self.study.path} stored a genome of {stored.size} genes, but "
                f"the search now proposes {proposed.size}: the configuration or code changed since the run started. "
                "Use another run name to start afresh.")
        difference = np.abs(stored - proposed)
        if not difference.max(initial=0.0) <= GENOME_TOLERANCE:  # NaN fails too
            gene = int(np.nanargmax(difference)) if np.isfinite(difference).any() else 0
            raise StudyMismatchError(
                f"trial {trial} of run {self.run_id} in {self.study.path}: the search now proposes a genome that "
                f"differs from the stored one by up to {float(difference.max()):.3g} (gene {gene}: stored "
                f"{stored[gene]!r}, proposed {proposed[gene]!r}; floating-point noise is below {GENOME_TOLERANCE:g}): "
                "the seed, configuration or code changed since the run started. Use another run name to start afresh.")

    def _batch(self, X: np.ndarray, notes: list[dict], bar, trials: list[int] | None = None) -> list[Evaluation]:
        """Evaluate (or replay) one batch; new trials run through joblib when ``n_jobs != 1``, each recorded as
        it finishes. Returns the batch's evaluations in trial order."""
        if trials is None:
            trials = list(range(self._next_trial, self._next_trial + len(X)))
            self._next_trial += len(X)
        results: dict[int, Evaluation] = {}
        genomes, todo = [], []
        for trial, genome, note in zip(trials, X, notes):
            stored = self._stored.get(trial)
            if stored is not None:
                self._check_replay(trial, stored.genome, genome)
                genome = stored.genome
            genomes.append(genome)
            if stored is None or stored.status == "pending":
                # an interrupted trial keeps the notes it was asked with (the prediction it was chosen on)
                todo.append((trial, genome, stored.extra if stored is not None and stored.extra else note))
            else:
                results[trial] = stored
                self.replayed += 1
                bar.update(1)
        fresh = [(t, g, n) for t, g, n in todo if t not in self._stored]
        if fresh:
            self.study.mark_pending(self.run_id, [t for t, _, _ in fresh], np.array([g for _, g, _ in fresh]),
                                    [n for _, _, n in fresh])
        if todo:
            self._settle(genomes, bar)
            finished = self._evaluate(todo, np.array(genomes))
            try:
                for trial, evaluation in finished:
                    if self._cache is not None:  # (synthetic evaluators keep no models)
                        self.evaluator.keep_model(evaluation)  # before the study: a kill in between redoes the trial
                    results[trial] = evaluation
                    self.study.record(self.run_id, trial, evaluation)
                    self.evaluated_now += 1
                    bar.update(1)
            finally:
                with warnings.catch_warnings():  # an interrupted batch's cancelled jobs are redone on resume
                    warnings.filterwarnings("ignore", ".*tasks which were still being processed", UserWarning)
                    finished.close()
        # uses in trial order, not in the order the workers finished; a replayed batch's too, in case the run was
        # killed between its last commit and this: replaying every use in order gives the same LRU order
        self._touch([results[trial] for trial in trials])
        for trial in trials:
            self._append(trial, results[trial])
        if self._progress:
            bar.set_postfix(self._postfix(), refresh=False)
        self._keep_front(evict=bool(todo))  # a replayed batch leaves the cache as the run left it
        return [results[trial] for trial in trials]

    def _touch(self, evaluations: list[Evaluation]) -> None:
        if self._cache is not None:
            self._cache.touch([label for evaluation in evaluations for label in used_labels(evaluation)])

    def _settle(self, batch: list[np.ndarray], bar) -> None:
        """Before this session's first true evaluation: restart the progress clock (replayed trials took no
        time), and finish the eviction of the last whole batch (a kill may have cut it short), sparing the models
        of this batch's trials finished before the kill."""
        if self._settled:
            return
        self._settled = True
        if self._progress and bar.n:
            done = bar.n
            bar.reset()
            bar.initial = bar.n = bar.last_print_n = done
            bar.refresh()
        if self._cache is not None:
            self._cache.evict(protect=batch)

    def _evaluate(self, todo: list[tuple[int, np.ndarray, dict]], batch: np.ndarray):
        entries = self._warm_sources(batch)

        def job(trial, genome, note):  # the warm-start model is chosen and loaded here, in this thread and process
            start = None if entries is None else self.evaluator.warm_source(genome, entries)
            return self.evaluator, trial, genome, trial_seed(self.seed, trial), note, start

        if self.n_jobs == 1:  # (a batch of one still goes to the workers: on a cluster they alone fine-tune)
            return (_evaluate_one(*job(*item)) for item in todo)  # one model in memory at a time
        # all loaded before joblib starts: it reads its jobs from another thread, and SQLite allows one
        jobs = [job(*item) for item in todo]
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

    def _keep_front(self, evict: bool = True) -> None:
        """Keep the archive's Pareto front out of the model cache's eviction (and, with ``evict``, evict the
        least recently used of the rest). A model once dominated stays dominated (the archive only grows), so the
        final front's models are all still there at the end: the front is re-scored on the very models
        evaluated, which a warm-started model's genome and seed cannot rebuild."""
        if self._cache is not None and self.history:
            self._cache.keep([self.history[i].genome for i in pareto_indices(self.objectives())], evict=evict)

    def _append(self, trial: int, evaluation: Evaluation) -> None:
        evaluation.trial = trial
        self.history.append(evaluation)
        self._objectives.append(self.evaluator.objectives(evaluation))
        self._next_trial = max(self._next_trial, trial + 1)
        self._failed += not evaluation.ok
        self._finetune_seconds += evaluation.seconds

    def _postfix(self) -> dict:
        return {"hv": f"{hypervolume(self.objectives(), self.ref_point):.4f}", "failed": self._failed,
                "finetune": f"{self._finetune_seconds:.0f}s", "search": f"{self.search_seconds:.0f}s"}


def _evaluate_one(evaluator: Evaluator, trial: int, genome: np.ndarray, seed: int, note: dict,
                  start: tuple | None) -> tuple[int, Evaluation]:
    """One true evaluation; module-level so joblib can ship it to a worker process."""
    if multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread():
        # a worker process leaves Ctrl-C to the search's process, which stops the workers itself
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    evaluation = evaluator.evaluate(genome, seed, start)
    evaluation.extra.update(note)
    return trial, evaluation


def _stop_workers() -> None:
    """Stop joblib's worker processes now (after Ctrl-C or SIGTERM), instead of leaving them to finish their
    fine-tunes and idle out minutes later."""
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)  # the reusable executor, if one was started
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)
