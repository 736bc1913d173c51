"""One run from a `RunConfig`: data, base model, scheme, evaluator, study, search, front re-scored on test, report."""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from surrogate_emo.cache import ModelCache
from surrogate_emo.cluster import evaluation_backend
from surrogate_emo.config import LEGACY_VALUES, UNUSED_FIELDS, RunConfig
from surrogate_emo.data import DATASETS, DataSplits, load_dataset
from surrogate_emo.errors import ConfigError, OutputError, SurrogateEMOWarning
from surrogate_emo.evaluate import CHEAP_OBJECTIVES, Evaluation, Evaluator, spent_steps
from surrogate_emo.fidelity import ShortFineTune, ZeroShot
from surrogate_emo.front import pareto_indices
from surrogate_emo.infill import infill_class
from surrogate_emo.models import build_model, model_factory
from surrogate_emo.registry import resolve
from surrogate_emo.schedule import gradual_finetune
from surrogate_emo.schemes import SCHEMES, Scheme, scheme_class
from surrogate_emo.problems import SyntheticEvaluator
from surrogate_emo.report import write_problem_report, write_report
from surrogate_emo.search import SEARCHES, TrialRunner
from surrogate_emo.search.base import Search
from surrogate_emo.store import Study
from surrogate_emo.surrogates import portfolio
from surrogate_emo.train import base_model, error_rate, fit, resolve_device, steps_for, weights_digest


@dataclass
class Setup:
    """What every search of one configuration shares: data, trained base model, scheme, evaluator."""

    data: DataSplits
    base: nn.Module
    evaluator: Evaluator
    dense_val_error: float
    dense_test_error: float
    base_from_cache: bool
    base_digest: str  # `weights_digest` of the base: which dense model the run compresses
    zero_shot: ZeroShot  # fidelity 0: the compressed model's validation error with no fine-tuning
    short: ShortFineTune | None = None  # fidelity 1, for a loop with a shortlist: the error after a short fine-tune

    @property
    def scheme(self) -> Scheme:
        return self.evaluator.scheme


@dataclass
class RunResult:
    run_dir: Path
    evaluations: list[Evaluation]
    front: list[dict]
    summary: dict


def prepare(config: RunConfig) -> Setup:
    """Load data, train (or load) the dense base model, and build the scheme and the evaluator."""
    # float sums differ with the thread count, and so would the base model and every fine-tune
    torch.set_num_threads(config.threads)
    if config.progress:
        print(f"loading data set {config.dataset} ...", file=sys.stderr, flush=True)
    data = load_dataset(config.dataset, config.data_dir, seed=config.data_seed)
    torch.manual_seed(config.seed)  # the base model's initial weights
    model = build_model(config.model, data.input_shape, data.n_classes)
    key = {"dataset": config.dataset, "data_dir": str(Path(config.data_dir).resolve()) if config.data_dir else None,
           "data_seed": config.data_seed, "model": config.model, "epochs": config.base_epochs, "lr": config.lr,
           "batch_size": config.batch_size, "seed": config.seed, "threads": config.threads, "torch": torch.__version__}
    device = resolve_device(config.device)
    if device.type != "cpu":  # a base model trained elsewhere differs in its last bits: cached apart (CPU keys kept)
        key["device"] = device.type
    base, cached = base_model(model.to(device), data, config.base_epochs, config.lr, config.batch_size, config.seed,
                              config.cache_dir, key, progress=config.model if config.progress else None)
    base = base.cpu()  # the dense model every compression copies stays on the CPU; fine-tunes move to the device
    scheme = scheme_class(config.scheme).from_config(config, base, data.input_shape)
    steps = config.finetune_steps if config.finetune_steps is not None else steps_for(
        config.finetune_epochs, len(data.train), config.batch_size)
    # The runner evicts after each batch, once it has kept the new Pareto front: a batch's own models are never
    # evicted before they are judged (the cache may exceed its bound by one batch).
    cache = (ModelCache(config.run_dir / "model_cache", config.model_cache_mb * 2**20, evict_on_put=False)
             if config.warm_start else None)
    evaluator = Evaluator(base, data, scheme, steps, config.finetune_learning_rate, config.batch_size,
                          tuple(config.objectives), cache=cache, warm_steps=max(1, round(config.warm_fraction * steps)),
                          threads=config.threads, objective_scale=config.objective_scale,
                          objective_decades=config.objective_decades, device=config.device)
    evaluator.data_source = {"name": config.dataset, "data_dir": config.data_dir, "seed": config.data_seed}
    short = (ShortFineTune(evaluator, max(1, round(config.shortlist_fraction * steps)), config.screen_size, config.seed)
             if config.shortlist else None)
    return Setup(data, base, evaluator, error_rate(base, data.val), error_rate(base, data.test), cached,
                 weights_digest(base.state_dict()), ZeroShot(scheme, base, data.val, config.screen_size), short)


def search_class(config: RunConfig) -> type[Search]:
    """The class named by ``config.search``: a built-in name or ``package.module:Class``."""
    found = resolve(config.search, SEARCHES, kind="search")
    if not (isinstance(found, type) and issubclass(found, Search)):
        raise ConfigError(f"search {config.search!r} must name a subclass of surrogate_emo.search.Search, "
                          f"got {found!r}")
    return found


def check_names(config: RunConfig) -> None:
    """Resolve every name ``config`` gives (search, surrogate, infill, model, scheme, data set, objectives, problem)
    before any data is loaded or any model trained: a misspelt name fails at once, with the known ones listed.

    Raises:
        ConfigError: a name is unknown, or names something of the wrong kind.
    """
    search_class(config)
    portfolio(config.surrogate)  # cheap: read only by the loop, but a typo is a typo
    infill_class(config.infill)
    model_factory(config.model)
    scheme = scheme_class(config.scheme)
    if "energy" in config.objectives and not scheme.counts_energy:
        raise ConfigError(f"objective energy is not counted by the {config.scheme} scheme; schemes that count it: "
                          f"{', '.join(name for name, cls in SCHEMES.items() if cls.counts_energy)}")
    if config.dataset not in DATASETS:
        raise ConfigError(f"unknown data set {config.dataset!r}; expected one of {', '.join(DATASETS)}")
    unknown = [name for name in config.objectives if name not in CHEAP_OBJECTIVES]
    if unknown or not config.objectives:
        raise ConfigError(f"objectives must be a non-empty list from {list(CHEAP_OBJECTIVES)}, "
                          f"got {list(config.objectives)}")
    if config.problem is not None:
        SyntheticEvaluator(config.problem)


def check_outputs(config: RunConfig) -> None:
    """Fail now, before any data is loaded or model trained, when the run folder or the study cannot be written,
    the study file is not a readable study (`StudyError`; it is left unchanged), or it holds this run with another
    configuration (`StudyMismatchError`).

    Raises:
        OutputError: ``cannot write to <path>: <reason>``.
        StudyError: the study file is not a readable SQLite study.
        StudyMismatchError: the study holds a run of this name with another configuration.
    """
    study = Path(config.study) if config.study else config.run_dir / "study.sqlite"
    if study.exists():  # readable, and holding no run of this name with another configuration
        opened = Study(study)
        try:
            opened.check_run(config.name, study_key(config), ignore=UNUSED_FIELDS.get(config.search, ()),
                             assumed=legacy_values(config))
        finally:
            opened.close()
    # the base-model cache too: a compression run would otherwise find out only after training the dense model
    cache = [] if config.problem is not None else [Path(config.cache_dir).expanduser() / "base"]
    for folder in dict.fromkeys((config.run_dir, study.parent, *cache)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise OutputError.writing(folder, error) from error


def make_search(config: RunConfig, setup: Setup) -> Search:
    """The configured search on the compression problem: the error modelled, the cost ratios exact."""
    cheap_names = setup.evaluator.objective_names[1:]
    n_obj = 1 + len(cheap_names)
    ref_point = setup.evaluator.ref_point.copy()
    ref_point[0] = config.error_reference  # where the acquisition looks; the reports keep the evaluator's
    ref_shares = None
    if config.whole_range_share:  # a second reference point, the evaluator's, for that share of each batch
        ref_point = np.vstack([ref_point, setup.evaluator.ref_point])
        ref_shares = [1 - config.whole_range_share, config.whole_range_share]
    return search_class(config).from_config(config, setup.scheme.dim, n_obj, n_expensive=1, ref_point=ref_point,
                                            cheap=setup.evaluator.cheap_objectives, features=setup.zero_shot.features,
                                            structure=setup.scheme.structure_keys, short=setup.short,
                                            ref_shares=ref_shares)


def final_model(setup: Setup, evaluation: Evaluation, config: RunConfig, epochs: float | None = None,
                history: Sequence[Evaluation] = (), memo: dict | None = None) -> tuple[nn.Module, float]:
    """The model an evaluation scored (from the cache, or rebuilt: same genome, same seed and, for a warm start,
    the same source model rebuilt from ``history``: the same weights), given ``epochs`` more of fine-tuning
    (default: ``config.final_finetune_epochs``; with ``config.final_schedule = "gradual"`` the dense model is
    compressed to the genome gradually over those epochs instead); returns it with its validation error as
    rebuilt, before that extra fine-tuning. A warm start whose source is not in ``history`` is rebuilt cold, and its error differs."""
    epochs = config.final_finetune_epochs if epochs is None else epochs
    cached = setup.evaluator.cache.load(evaluation.genome) if setup.evaluator.cache is not None else None
    if cached is not None:  # the very model that was evaluated
        model = setup.evaluator.structure(evaluation.genome)
        model.load_state_dict(cached)
    else:
        model = setup.evaluator.rebuild(evaluation, history, memo)
        if model is None:
            model, _ = setup.evaluator.finetune(evaluation.genome, evaluation.seed)
    reproduced = error_rate(model, setup.data.val)
    if epochs > 0:
        steps = steps_for(epochs, len(setup.data.train), config.batch_size)
        if config.final_schedule == "gradual":  # from the dense model, not from the evaluated one
            model = gradual_finetune(setup.scheme, setup.base, evaluation.genome, setup.data.train, steps,
                                     lr=config.finetune_learning_rate, batch_size=config.batch_size,
                                     seed=evaluation.seed + 1)
        else:
            fit(model, setup.data.train, steps, lr=config.finetune_learning_rate, batch_size=config.batch_size,
                seed=evaluation.seed + 1, on_step=lambda step: setup.scheme.during_finetune(model, evaluation.genome,
                                                                                              step))
            setup.scheme.after_finetune(model, evaluation.genome)
    return model, reproduced


def front_evaluations(setup: Setup, evaluations: list[Evaluation]) -> list[Evaluation]:
    """The successful evaluations on the validation Pareto front, by increasing error."""
    ok = [e for e in evaluations if e.ok]
    if not ok:
        return []
    return [ok[i] for i in pareto_indices(np.array([setup.evaluator.objectives(e) for e in ok]))]


def rescore_front(setup: Setup, evaluations: list[Evaluation], config: RunConfig) -> list[dict]:
    """Score each front model on the test split, after ``config.final_finetune_epochs`` more fine-tuning.

    The validation error is recomputed too, so a front whose fine-tunes do not reproduce is visible.
    """
    rows, memo = [], {}
    for evaluation in front_evaluations(setup, evaluations):
        model, reproduced = final_model(setup, evaluation, config, history=evaluations, memo=memo)
        rows.append({"trial": evaluation.trial, "val_error": evaluation.error, "val_error_rebuilt": reproduced,
                     "test_error": error_rate(model, setup.data.test), "evaluation": evaluation})
    return rows


def legacy_values(config: RunConfig) -> dict:
    """What a stored run that lacks a field had (`LEGACY_VALUES`); a problem run has no cheap objectives, so
    nothing is assumed for their scale."""
    return {key: value for key, value in LEGACY_VALUES.items() if not (config.problem and key == "objective_scale")}


def study_key(config: RunConfig, identity: dict | None = None) -> dict:
    """What the study keys a run by: `RunConfig.identity`, plus ``identity`` (a problem's normalised name)."""
    return {**config.identity(), **(identity or {})}


def base_history(study: Study, run_id: int, name: str, info: dict) -> list[dict]:
    """The run's dense base models so far, one entry per change (weights digest, dense validation error, and how
    many evaluations were stored when it came), with this session's (``info``) appended where it differs.

    A base trained again (its cache lost, another machine, thread count, device or torch) differs in its last bits,
    and every evaluation after it compresses another model than those before: warned, and kept in the run's facts,
    because an archive over two bases is no exact resume. A run made before bases were recorded starts its history
    with an unknown digest (None) and is warned about only where its stored dense error differs."""
    stored_info = study.info(run_id)
    history = list(stored_info.get("base_history", []))
    entry = {"digest": info["base_digest"], "dense_val_error": info["dense_val_error"]}
    stored = study.count(run_id)
    if not stored:  # nothing was evaluated on an earlier base (a session stopped before its first evaluation)
        return [{**entry, "from_evaluation": 0}]
    if not history:
        history = [{"digest": None, "dense_val_error": stored_info.get("dense_val_error"), "from_evaluation": 0}]
    last = history[-1]
    unrecorded_same = last["digest"] is None and last["dense_val_error"] == entry["dense_val_error"]
    if last["digest"] == entry["digest"] or unrecorded_same:
        return history
    before = f"digest {last['digest']}" if last["digest"] else "digest not recorded"
    if last["dense_val_error"] is not None:
        before += f", dense validation error {last['dense_val_error']:.4f}"
    warnings.warn(f"run {name} resumes on another dense base model than its last session's: expected {before}; "
                  f"got digest {entry['digest']}, dense validation error {entry['dense_val_error']:.4f} (its "
                  f"{stored} stored evaluations were made on the other)", SurrogateEMOWarning, stacklevel=3)
    return history + [{**entry, "from_evaluation": stored}]


def run_facts(config: RunConfig) -> dict:
    """What the run's study holds about it beside its evaluations (`Study.info`): dense errors, base models, ..."""
    study = Study(config.study or config.run_dir / "study.sqlite")
    try:
        return study.info(study.run_id(config.name))
    finally:
        study.close()


def run_in_study(config: RunConfig, evaluator, search: Search, identity: dict | None = None,
                 info: dict | None = None) -> TrialRunner:
    """Run (or resume) ``search`` against ``evaluator`` in the run's study, under the configured budget; the
    study refuses a resume whose configuration (plus ``identity``) changed in a field the search reads. ``info``
    (facts about the run) is stored with it; with a ``base_digest``, so is the run's `base_history`. Returns the
    finished runner."""
    study = Study(config.study or config.run_dir / "study.sqlite")
    # numpy's and scipy's BLAS and scikit-learn's OpenMP get the torch thread count too: their float sums (GP fits)
    # then do not depend on whether the run is in a joblib worker (which limits them) or in this process, and
    # spare threads do not spin against the other runs of an experiment
    limits = threadpool_limits(limits=config.threads)
    try:
        run_id = study.open_run(config.name, study_key(config, identity), ignore=UNUSED_FIELDS.get(config.search, ()),
                                assumed=legacy_values(config))
        if info:
            history = {"base_history": base_history(study, run_id, config.name, info)} if "base_digest" in info else {}
            study.set_info(run_id, **info, **history)
        with evaluation_backend(config.n_jobs, config.dask_scheduler) as n_jobs:  # this machine or a cluster
            runner = TrialRunner(evaluator, study, run_id, config.seed, config.budget, evaluator.ref_point,
                                 progress=config.progress, n_jobs=n_jobs, time_limit=config.time_limit,
                                 step_limit=config.step_limit)
            runner.run(search)
    finally:
        limits.restore_original_limits()
        study.close()
    return runner


def run_problem(config: RunConfig) -> RunResult:
    """Run (or resume) the search on ``config.problem`` (a pymoo test problem or a user's), every objective
    expensive (modelled), and write summary.json, evaluations.csv, front.csv and plots under the run folder."""
    torch.set_num_threads(config.threads)  # the GP fits' float sums, and so the results, depend on it
    started = time.perf_counter()
    evaluator = SyntheticEvaluator(config.problem)
    search = search_class(config).from_config(config, evaluator.dim, evaluator.n_obj, n_expensive=evaluator.n_obj,
                                              ref_point=evaluator.ref_point, lower_bounds=evaluator.lower_bounds)
    runner = run_in_study(config, evaluator, search, identity={"problem": evaluator.name})
    evaluations = runner.history
    summary = {"run": config.name, "problem": evaluator.name, "search": config.search, "seed": config.seed,
               "budget": config.budget, "true_evaluations": len(evaluations), "stopped_by": runner.stopped_by,
               "time_limit": config.time_limit, "replayed_from_study": runner.replayed, "evaluated_now": runner.evaluated_now,
               "failed": sum(not e.ok for e in evaluations),
               "search_overhead_seconds_this_session": runner.search_seconds,
               "wall_seconds_this_session": time.perf_counter() - started,
               "objectives": list(evaluator.objective_names), "hypervolume_reference_point": evaluator.ref_point.tolist()}
    extra, front = write_problem_report(config.run_dir, config, evaluator, evaluations, summary)
    return RunResult(config.run_dir, evaluations, front, {**summary, **extra})


def run(config: RunConfig) -> RunResult:
    """Run (or resume) the search that ``config`` describes and write its report under ``config.run_dir``: the
    compression of a network, or with ``config.problem`` a test problem (`run_problem`)."""
    check_names(config)
    check_outputs(config)
    if config.problem is not None:
        return run_problem(config)
    started = time.perf_counter()
    setup = prepare(config)
    run_dir = config.run_dir
    info = {"dense_val_error": setup.dense_val_error, "dense_test_error": setup.dense_test_error,
            "space": setup.scheme.describe(), "finetune_steps": setup.evaluator.steps, "base_digest": setup.base_digest}
    runner = run_in_study(config, setup.evaluator, make_search(config, setup), info=info)
    history = run_facts(config).get("base_history", [])
    evaluations = runner.history
    search_seconds = runner.search_seconds
    front = rescore_front(setup, evaluations, config) if config.final_test else []
    summary = {
        "run": config.name, "dataset": config.dataset, "model": config.model, "search": config.search,
        "seed": config.seed, "budget": config.budget, "true_evaluations": len(evaluations),
        "stopped_by": runner.stopped_by, "time_limit": config.time_limit,
        "replayed_from_study": runner.replayed, "evaluated_now": runner.evaluated_now,
        "failed": sum(not e.ok for e in evaluations),
        "warm_started": sum(e.source.startswith("cache:") for e in evaluations),
        "finetune_steps_per_evaluation": setup.evaluator.steps,
        "finetune_steps_total": int(sum(e.steps for e in evaluations)),
        # with the short fine-tunes (fidelity 1) that chose the batches: what a step limit counts
        "finetune_steps_with_short": spent_steps(evaluations),
        "finetune_seconds_total": float(sum(e.seconds for e in evaluations)),
        "search_overhead_seconds_this_session": search_seconds,
        # cheap evaluations at fidelity 0 (part of the search overhead above)
        "zero_shot_scored_this_session": setup.zero_shot.n_scored,
        "zero_shot_seconds_this_session": setup.zero_shot.seconds,
        **({"short_finetunes_this_session": setup.short.n_scored, "short_finetune_steps_this_session":
            setup.short.steps_spent, "short_finetune_seconds_this_session": setup.short.seconds} if setup.short else {}),
        "wall_seconds_this_session": time.perf_counter() - started,
        "base_model_from_cache": setup.base_from_cache,
        # which dense model was compressed; more than one entry: a resume retrained it, the archive mixes bases
        "base_digest": setup.base_digest, "base_history": history,
        "dense_val_error": setup.dense_val_error, "dense_test_error": setup.dense_test_error,
        "dense_params": setup.scheme.dense.params,
        "dense_bytes": setup.scheme.dense.bytes,
        "dense_macs": setup.scheme.dense.macs,
        **({"dense_energy": setup.scheme.dense.energy} if setup.scheme.dense.energy is not None else {}),
        "objectives": list(setup.evaluator.objective_names),
        "hypervolume_reference_point": setup.evaluator.ref_point.tolist(),
    }
    try:
        summary.update(write_report(run_dir, config, setup, evaluations, front, summary))
    except OSError as error:  # the evaluations are in the study: rerunning once the folder is fixed reports them
        raise OutputError.writing(error.filename or run_dir, error) from error
    return RunResult(run_dir, evaluations, front, summary)
