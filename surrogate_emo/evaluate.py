"""True evaluation: compress the base model to a genome, fine-tune, score on validation; count what it cost."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from surrogate_emo.cache import ModelCache
from surrogate_emo.data import DataSplits, load_dataset
from surrogate_emo.errors import ConfigError, FineTuneDiverged
from surrogate_emo.schemes import Scheme
from surrogate_emo.train import error_rate, fit, resolve_device

CHEAP_OBJECTIVES = ("params", "bytes", "macs", "energy")
WARM_PREFIX = "cache:seed "  # an evaluation's source when it warm-started from the model of the evaluation of that seed
FAILED_ERROR = 1.0  # what the search is told for a failed evaluation: the worst possible error rate


@dataclass
class Evaluation:
    """One true evaluation. ``error`` is the validation error (NaN when ``status == "failed"``)."""

    genome: np.ndarray
    error: float
    ratios: dict[str, float]
    status: str = "ok"
    reason: str = ""
    steps: int = 0
    seconds: float = 0.0
    seed: int = 0
    source: str = "base"
    extra: dict = field(default_factory=dict)
    trial: int | None = None  # set once the evaluation belongs to a run
    # the fine-tuned weights, on their way from a worker to the model cache; never stored in the study
    model_state: dict | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@functools.lru_cache(maxsize=2)
def _cached_dataset(**source) -> DataSplits:
    return load_dataset(**source)


SMALLEST_RATIO = 1e-12  # the log of a ratio of 0 (nothing kept) is taken at this ratio


def cheap_objective(ratios, scale: str = "linear", decades: float = 3.0) -> np.ndarray:
    """Cheap objectives from compressed/dense ratios: the ratio itself (``linear``), or ``1 + log10(ratio) / D``
    (``log``) with ``D = decades``, so that 1 is no compression, 0 is ``10**D`` times smaller, and 10x to 100x
    counts as much as 1x to 10x. On the linear ratio everything beyond 10x shares the last tenth of the axis.

    Example:
        >>> cheap_objective([1.0, 0.1, 0.001], "log").round(6).tolist()
        [1.0, 0.666667, 0.0]
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if scale == "linear":
        return ratios
    if scale == "log":
        return 1.0 + np.log10(np.maximum(ratios, SMALLEST_RATIO)) / decades
    raise ConfigError(f"objective scale must be 'log' or 'linear', got {scale!r}")


def objective_vector(evaluation: Evaluation, cheap: tuple[str, ...] | list[str], scale: str = "linear",
                     decades: float = 3.0) -> np.ndarray:
    """`[error, *cheap objectives]` as float64, minimized (see `cheap_objective`); a failed evaluation gets the
    worst error, `FAILED_ERROR`."""
    error = evaluation.error if evaluation.ok else FAILED_ERROR
    ratios = [evaluation.ratios[name] for name in cheap]
    return np.concatenate([[error], cheap_objective(ratios, scale, decades)]).astype(np.float64)


class _CacheElsewhere:
    """An evaluator's model cache as a worker process sees it: it lives with the search, so `Evaluator.evaluate`
    returns the fine-tuned weights (``model_state``) for the search's process to keep, and nothing else is done."""


def cache_label(seed: int) -> str:
    """The cache label of the model an evaluation with ``seed`` fine-tuned."""
    return f"seed {seed}"


def used_labels(evaluation: Evaluation) -> list[str]:
    """Cache labels an evaluation used, oldest use first: its warm-start source, then its own model."""
    source = [evaluation.source[len("cache:"):]] if evaluation.source.startswith("cache:") else []
    return source + ([cache_label(evaluation.seed)] if evaluation.ok else [])


def batch_of(notes: dict):
    """The batch a trial's notes belong to: its first trial (``batch_first``), unique in a run. Studies made before
    the runner noted it fall back on the loop's ``iteration`` number, which restarted at 0 on each resume until
    commit 0946695."""
    return notes.get("batch_first", notes.get("iteration"))


def spent_steps(evaluations: Sequence[Evaluation]) -> int:
    """Fine-tuning steps the evaluations cost: their own, plus the short fine-tunes (fidelity 1) that the choice of
    each one's batch cost (``short_steps`` in its notes, carried by every trial of the batch, counted once)."""
    short = {e.extra.get("batch_first", e.trial): e.extra["short_steps"] for e in evaluations if "short_steps" in e.extra}
    return int(sum(e.steps for e in evaluations) + sum(short.values()))


def trial_seed(run_seed: int, trial: int) -> int:
    """A seed for one trial that depends only on the run seed and the trial number (so resumes replay exactly)."""
    return int(np.random.SeedSequence([run_seed, trial]).generate_state(1)[0])


class Evaluator:
    """Turns a genome into objectives `[val_error, *cheap ratios]` (all minimized) by fine-tuning a compressed copy.

    The ``scheme`` (`surrogate_emo.schemes.Scheme`) builds the compressed model and counts its exact costs. Counts
    true evaluations, fine-tuning steps and seconds. A fine-tune that diverges (NaN or infinite loss or weights) or
    raises a runtime error is returned as a failed `Evaluation` with its reason; the caller goes on.
    """

    def __init__(self, base: nn.Module, data: DataSplits, scheme: Scheme, steps: int, lr: float = 1e-3,
                 batch_size: int = 128, objectives: tuple[str, ...] = ("params",), cache: ModelCache | None = None,
                 warm_steps: int | None = None, threads: int | None = None, objective_scale: str = "linear",
                 objective_decades: float = 3.0, device: str = "cpu") -> None:
        unknown = [name for name in objectives if name not in CHEAP_OBJECTIVES]
        if unknown or not objectives:
            raise ConfigError(f"objectives must be a non-empty list from {list(CHEAP_OBJECTIVES)}, got {list(objectives)}")
        missing = [name for name in objectives if name not in scheme.cost_names]
        if missing:
            raise ConfigError(f"the {scheme.name or type(scheme).__name__} scheme does not count {missing}; it "
                              f"counts {list(scheme.cost_names)}")
        cheap_objective([1.0], objective_scale, objective_decades)  # the scale checked here, once
        self.objective_scale, self.objective_decades = objective_scale, float(objective_decades)
        self.device = device  # resolved where the fine-tune runs (a worker may differ from the search's machine)
        if steps < 0:
            raise ConfigError(f"fine-tuning steps must be >= 0, got {steps}")
        self.base, self.data, self.scheme = base, data, scheme
        self.steps, self.lr, self.batch_size = steps, lr, batch_size
        self.objective_names = ("error", *objectives)
        self.cache = cache
        self.threads = threads
        self.warm_steps = steps if warm_steps is None else warm_steps
        self.n_evaluations = 0
        self.total_steps = 0
        self.total_seconds = 0.0

    # A worker process (joblib's loky, dask, ray) reloads the data set by name instead of receiving hundreds of
    # megabytes of tensors with every task. Set ``data_source`` to the arguments of `load_dataset` to allow it.
    data_source: dict | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.data_source is not None:
            state["data"] = None
        if self.cache is not None:  # a worker (maybe on another machine) never opens the cache: it returns weights
            state["cache"] = _CacheElsewhere()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.data is None:
            self.data = _cached_dataset(**self.data_source)

    def structure(self, genome) -> nn.Module:
        """An untrained compressed model of ``genome``'s structure, to load stored weights into."""
        return self.scheme.compress(self.base, genome)

    def warm_source(self, genome: np.ndarray, entries: list[tuple[np.ndarray, str]] | None = None
                    ) -> tuple[nn.Module, str] | None:
        """The nearest cached model whose structure holds ``genome``'s (`Scheme.holds`: for low rank + sparse,
        every layer keeps at least its rank and entries), if any, among ``entries`` (default: the whole cache)."""
        if self.cache is None:
            return None
        entries = self.cache.entries() if entries is None else entries
        if not entries:
            return None
        genomes = np.array([cached for cached, _ in entries])
        holds = self.scheme.holds(genomes, genome)
        distances = np.linalg.norm(genomes - genome, axis=1)
        for index in sorted(np.flatnonzero(holds), key=lambda i: distances[i]):
            cached, label = entries[index]
            state = self.cache.load(cached)  # None when the entry is missing or corrupt: try the next one
            if state is not None:
                model = self.structure(cached)
                model.load_state_dict(state)
                return model, label
        return None

    def finetune(self, genome, seed: int, source: nn.Module | None = None,
                 steps: int | None = None) -> tuple[nn.Module, int]:
        """Compress ``source`` (default: the dense base model) to ``genome`` and fine-tune it; deterministic in
        ``seed``. Returns (model, steps)."""
        torch.manual_seed(seed)
        vector = self.scheme.validate(genome)
        model = self.scheme.compress(self.base if source is None else source, vector).to(resolve_device(self.device))
        taken = fit(model, self.data.train, self.steps if steps is None else steps, lr=self.lr,
                    batch_size=self.batch_size, seed=seed,
                    on_step=lambda step: self.scheme.during_finetune(model, vector, step))
        self.scheme.after_finetune(model, vector)
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise FineTuneDiverged("weights became non-finite during fine-tuning")
        return model, taken

    def rebuild(self, evaluation: Evaluation, history: Sequence[Evaluation] = (),
                memo: dict[int, nn.Module] | None = None) -> nn.Module | None:
        """The model ``evaluation`` scored, rebuilt without the cache: fine-tuned from the dense base or, for a warm
        start, from its source model rebuilt the same way (found in ``history`` by the seed its label names), with
        the steps each one had. None when a source is not in ``history``. ``memo`` shares rebuilt models between
        calls (keyed by evaluation seed)."""
        memo = {} if memo is None else memo
        by_seed = {e.seed: e for e in history}
        chain = [evaluation]
        while chain[-1].source != "base" and chain[-1].seed not in memo:
            if not chain[-1].source.startswith(WARM_PREFIX):  # a model cached by someone else: unknown history
                return None
            source = by_seed.get(int(chain[-1].source[len(WARM_PREFIX):]))
            if source is None:
                return None
            chain.append(source)
        model = memo.get(chain[-1].seed)
        for link in reversed(chain):
            if link.seed not in memo:
                memo[link.seed], _ = self.finetune(link.genome, link.seed, source=model, steps=link.steps)
            model = memo[link.seed]
        return copy.deepcopy(model)  # the caller may fine-tune it further; the memo's copy stays as evaluated

    def evaluate(self, genome, seed: int, start: tuple[nn.Module, str] | None = None) -> Evaluation:
        """Fine-tune ``genome`` from ``start`` (a warm-start model and its cache label, see `warm_source`) or from
        the dense base model, and score it. Touches no cache, so it runs anywhere (a joblib or dask worker): with
        a cache configured, the fine-tuned weights come back in ``evaluation.model_state`` for the caller to keep."""
        vector = self.scheme.validate(genome)
        ratios = self.scheme.ratios(vector)
        if self.threads is not None:  # also in a joblib worker process, where the parent's setting is not inherited
            torch.set_num_threads(self.threads)
        began = time.perf_counter()
        source, steps = (None, self.steps) if start is None else (start[0], self.warm_steps)
        state = None
        try:
            model, steps = self.finetune(vector, seed, source, steps)
            error, status, reason = error_rate(model, self.data.val), "ok", ""
            if self.cache is not None:
                state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        except (FineTuneDiverged, RuntimeError) as failure:
            error, status, reason = math.nan, "failed", f"{type(failure).__name__}: {failure}"
        seconds = time.perf_counter() - began
        self.n_evaluations += 1
        self.total_steps += steps
        self.total_seconds += seconds
        evaluation = Evaluation(vector, error, ratios, status, reason, steps, seconds, seed,
                                source="base" if start is None else f"cache:{start[1]}")  # "seed N" (WARM_PREFIX)
        evaluation.model_state = state
        return evaluation

    def keep_model(self, evaluation: Evaluation) -> None:
        """Put the model ``evaluation`` fine-tuned into the cache (labelled by its seed, which `rebuild` reads
        back) and drop it from the evaluation."""
        state, evaluation.model_state = evaluation.model_state, None
        if self.cache is not None and state is not None:
            self.cache.put(evaluation.genome, state, label=cache_label(evaluation.seed))

    def __call__(self, genome, seed: int) -> Evaluation:
        """Fine-tune and score ``genome`` in this process; with a cache, warm-start from the nearest cached model
        that holds its structure and keep the result in the cache (a run's `TrialRunner` does these steps itself)."""
        vector = self.scheme.validate(genome)
        start = self.warm_source(vector)
        evaluation = self.evaluate(vector, seed, start)
        self.keep_model(evaluation)
        if self.cache is not None:
            self.cache.touch(used_labels(evaluation))
        return evaluation

    @property
    def ref_point(self) -> np.ndarray:
        """Hypervolume reference point: error 1 and no compression, for every objective."""
        return np.ones(len(self.objective_names))

    def objectives(self, evaluation: Evaluation) -> np.ndarray:
        """`[error, *cheap objectives]` on the configured scale: what every search and hypervolume sees."""
        return objective_vector(evaluation, self.objective_names[1:], self.objective_scale, self.objective_decades)

    def cheap_objectives(self, X) -> np.ndarray:
        """The exact cheap objectives of genomes ``X`` (`n x d`) on the configured scale, `n x (m - 1)`."""
        ratios = self.scheme.ratio_matrix(X, self.objective_names[1:])
        return cheap_objective(ratios, self.objective_scale, self.objective_decades)
