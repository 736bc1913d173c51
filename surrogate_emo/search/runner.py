"""Drives a `Search` against true evaluations under a budget, writing each to the study and replaying on resume."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from surrogate_emo.errors import ConfigError, StudyMismatchError
from surrogate_emo.evaluate import Evaluation, Evaluator, trial_seed
from surrogate_emo.front import hypervolume
from surrogate_emo.search.base import Search
from surrogate_emo.store import Study


class TrialRunner:
    """Numbers trials, evaluates or replays them, and stops at ``budget`` true evaluations.

    Resume works by replay: the search is rerun from its seed, and each trial already in the study is answered
    from the study instead of being fine-tuned again. A stored genome that differs from the one proposed means
    the configuration, seed or code changed, and stops the run with `StudyMismatchError`.
    """

    def __init__(self, evaluator: Evaluator, study: Study, run_id: int, seed: int, budget: int,
                 ref_point: np.ndarray, progress: bool = True,
                 on_trial: Callable[[int, Evaluation], None] | None = None) -> None:
        if budget < 1:
            raise ConfigError(f"budget must be at least 1 true evaluation, got {budget}")
        self.evaluator, self.study, self.run_id, self.seed, self.budget = evaluator, study, run_id, seed, budget
        self.ref_point = np.asarray(ref_point, dtype=np.float64)
        self.history: list[Evaluation] = []
        self.replayed = 0
        self.search_seconds = 0.0
        self._stored = study.evaluations(run_id)
        self._progress = progress
        self._on_trial = on_trial

    @property
    def remaining(self) -> int:
        return self.budget - len(self.history)

    def objectives(self) -> np.ndarray:
        """Objectives `n x m` of every trial so far, failed ones at the worst error."""
        return np.array([self.evaluator.objectives(e) for e in self.history]).reshape(-1, len(self.ref_point))

    def run(self, search: Search) -> list[Evaluation]:
        bar = tqdm(total=self.budget, desc="true evaluations", unit="eval", disable=not self._progress, leave=True)
        try:
            while self.remaining > 0:
                start = time.perf_counter()
                X = np.atleast_2d(search.ask(self.remaining))
                self.search_seconds += time.perf_counter() - start
                F = np.array([self.evaluator.objectives(self._trial(x, bar)) for x in X])
                start = time.perf_counter()
                search.tell(X, F)
                self.search_seconds += time.perf_counter() - start
        finally:
            bar.close()
        return self.history

    def _trial(self, genome: np.ndarray, bar) -> Evaluation:
        trial = len(self.history)
        stored = self._stored.get(trial)
        if stored is not None:
            if not np.array_equal(stored.genome, genome):
                raise StudyMismatchError(
                    f"trial {trial} of run {self.run_id} in {self.study.path} stored genome {stored.genome.round(4)}, "
                    f"but the search now proposes {np.round(genome, 4)}: the seed, configuration or code changed "
                    "since the run started. Use another run name to start afresh.")
            evaluation = stored
            self.replayed += 1
        else:
            evaluation = self.evaluator(genome, trial_seed(self.seed, trial))
            self.study.record(self.run_id, trial, evaluation)
        self.history.append(evaluation)
        if self._on_trial is not None:
            self._on_trial(trial, evaluation)
        failed = sum(not e.ok for e in self.history)
        bar.set_postfix(hv=f"{hypervolume(self.objectives(), self.ref_point):.4f}", failed=failed, refresh=False)
        bar.update(1)
        return evaluation
