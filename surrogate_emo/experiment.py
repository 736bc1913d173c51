"""Experiments: every method x seed (x problem) of one study, run or resumed, then reported.

An experiment file (TOML or YAML) names the seeds, the methods (each a set of `RunConfig` keys over a shared
``[base]``) and either synthetic ``problems`` (every objective treated as expensive; each a spec as ``--problem``
takes it: a pymoo test problem with options, ``"dtlz7 n_obj=3 ref_point=1,1,7"``, a table
``{name = "dtlz7", n_obj = 3}``, or ``"package.module:factory"``) or, without them, the one compression problem
that ``[base]`` describes::

    name = "synthetic"
    seeds = [0, 1, 2]
    problems = ["zdt1", "dtlz2"]
    baselines = ["nsga2", "random"]
    [base]
    budget = 100
    [methods.surrogate_gp]
    search = "surrogate"
    [methods.nsga2]
    search = "nsga2"
    pop_size = 20
    [methods.botorch]
    search = "botorch"
    seeds = [0]          # a method may run fewer seeds (say why in the report)

Each run keeps its own study under ``<output_dir>/<name>/<problem>/<method>_seed<seed>/`` (a problem with
options gets a folder such as ``dtlz7-n_obj-3``), so rerunning the command skips finished runs and resumes
interrupted ones from their studies. The dense base models are kept under ``<output_dir>/<name>/base/`` (unless
``cache_dir`` is set): a base trained again on another machine differs in its last bits, so a study that keeps
its bases compares every method, in every session, on the same dense model per seed.
"""

from __future__ import annotations

import json
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from joblib import Parallel, delayed
from tqdm.auto import tqdm

from surrogate_emo.config import RunConfig, config_from_dict, load_config_file
from surrogate_emo.errors import ConfigError, OutputError
from surrogate_emo.problems import SyntheticEvaluator, problem_folder, problem_label
from surrogate_emo.quality import QualityConfig, quality_over_seeds

EXPERIMENT_KEYS = {"name", "description", "seeds", "problems", "baselines", "jobs", "output_dir", "base", "methods",
                   "quality", "recipes"}


@dataclass
class RunSpec:
    """One run of an experiment: a method on a problem with a seed."""

    problem: str
    method: str
    seed: int
    config: RunConfig
    synthetic: bool

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def label(self) -> str:
        return f"{self.problem}/{self.config.name}"


@dataclass
class Experiment:
    name: str
    seeds: list[int]
    methods: dict[str, dict]
    base: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)
    jobs: int = 1
    output_dir: str = "runs"  # the committed experiments are under results/: --output-dir results extends them
    description: str = ""
    quality: dict | None = None  # a QualityConfig table: re-score fronts on test beside global magnitude pruning
    recipes: dict[str, dict] = field(default_factory=dict)  # published methods: name -> recipe = "..." and settings

    @classmethod
    def from_file(cls, path: str | Path) -> Experiment:
        values = load_config_file(path)
        unknown = sorted(set(values) - EXPERIMENT_KEYS)
        if unknown:
            raise ConfigError(f"{path}: unknown experiment keys {unknown}; expected some of {sorted(EXPERIMENT_KEYS)} "
                              "(run options go under [base] or [methods.<name>])")
        missing = [key for key in ("name", "seeds") if key not in values]
        if "methods" not in values and "recipes" not in values:
            missing.append("methods")
        if missing:
            raise ConfigError(f"{path}: an experiment needs {missing}")
        values.setdefault("methods", {})
        experiment = cls(**values)
        experiment.validate()
        return experiment

    def validate(self) -> None:
        if not (self.methods or self.recipes) or not all(isinstance(m, dict) for m in self.methods.values()):
            raise ConfigError(f"methods must be tables of run options, one per method; got {self.methods!r}")
        if self.recipes and self.problems:
            raise ConfigError(f"recipes compress a model: they need a compression experiment, not {self.problems}")
        self.recipe_files()  # every recipe's settings checked now
        placed = [m for m, options in {"[base]": self.base, **self.methods}.items() if "problem" in options]
        if placed:
            raise ConfigError(f"an experiment lists its problems in problems = [...], expected no 'problem' key in "
                              f"{placed}")
        for problem in self.problems:
            SyntheticEvaluator(problem)  # an unknown name or a bad option fails now, with what was expected
        self.problems = [problem_label(p) for p in self.problems]  # one spelling: the runs' problem names
        strangers = [b for b in self.baselines if b not in self.methods]
        if strangers:
            raise ConfigError(f"baselines {strangers} are not among the methods {list(self.methods)}")
        if self.quality is not None:
            if self.problems:
                raise ConfigError("a [quality] study re-scores compressed models: it needs a compression "
                                  f"experiment, not the synthetic problems {self.problems}")
            quality = self.quality_config()
            strangers = [m for m in quality.methods if m not in self.methods]
            if strangers or not quality.methods:
                raise ConfigError(f"quality methods must be some of {list(self.methods)}, got {quality.methods}")
            for seed, runs in zip(quality.seed_list, self.quality_runs()):
                missing = [m for m in quality.methods if m not in runs]
                if missing:
                    raise ConfigError(f"quality seed {seed} is not among the seeds of {missing}")
        self.runs()  # every run's configuration is checked now, not hours later

    def quality_config(self) -> QualityConfig:
        try:
            return QualityConfig(**self.quality)
        except TypeError as error:
            raise ConfigError(f"[quality]: {error}; its keys are {list(QualityConfig.__dataclass_fields__)}") from None

    def quality_runs(self) -> list[dict[str, RunConfig]]:
        """Per quality seed, each quality method's run configuration with that seed."""
        quality, specs = self.quality_config(), self.runs()
        runs = []
        for seed in quality.seed_list:
            mine = {s.method: s for s in specs if s.seed == seed}
            runs.append({m: mine[m].config for m in quality.methods if m in mine})
        return runs

    @property
    def out_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def problem_names(self) -> list[str]:
        """The synthetic problems, or the one compression problem, named after its model and data set."""
        if self.problems:
            return list(self.problems)
        probe = config_from_dict(dict(self.base))
        return [re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{probe.model}_{probe.dataset}")]  # a folder name

    def recipe_files(self) -> list:
        """Each recipe (a ``[recipes.<name>]`` table: ``recipe = "olmp"`` and its settings, optionally ``seeds``)
        for each seed, as a recipe file writing into the problem's folder (``<name>_seed<seed>/``)."""
        from surrogate_emo.recipes import RECIPES
        from surrogate_emo.recipes.base import RecipeFile

        files = []
        for name, table in self.recipes.items():
            if not isinstance(table, dict) or table.get("recipe") not in RECIPES:
                raise ConfigError(f"[recipes.{name}] needs recipe = one of {sorted(RECIPES)}, got {table!r}")
            settings = {k: v for k, v in table.items() if k not in ("recipe", "seeds")}
            for seed in table.get("seeds", self.seeds):
                base = {"cache_dir": str(self.out_dir), **self.base, "seed": seed}  # the methods' base models
                file = RecipeFile(name=f"{name}_seed{seed}", recipe=table["recipe"], base=base, settings=settings,
                                  output_dir=str(self.out_dir / self.problem_names()[0]))
                file.run_config()
                file.recipe_settings()
                files.append(file)
        return files

    def runs(self) -> list[RunSpec]:
        specs = []
        for problem in self.problem_names():
            for method, options in self.methods.items():
                options = dict(options)
                seeds = options.pop("seeds", self.seeds)
                for seed in seeds:
                    folder = problem_folder(problem) if self.problems else problem
                    # the dense base models live in the experiment's folder (unless it says otherwise): committed
                    # with the study, every method, session and machine compresses the same one per seed
                    values = {"cache_dir": str(self.out_dir), **self.base, **options, "seed": seed,
                              "name": f"{method}_seed{seed}", "output_dir": str(self.out_dir / folder),
                              "progress": False, **({"problem": problem} if self.problems else {})}
                    specs.append(RunSpec(problem, method, seed, config_from_dict(values), bool(self.problems)))
        return specs


def is_finished(spec: RunSpec) -> bool:
    """A run is finished when its summary says it spent its budget, or the time limit the experiment still sets
    (a limit is per session: a file that raises or drops it carries the run on towards its budget)."""
    path = spec.run_dir / "summary.json"
    if not path.exists():
        return False
    summary = json.loads(path.read_text())
    return summary.get("true_evaluations", 0) >= spec.config.budget or (
        summary.get("stopped_by") == "time_limit" and summary.get("time_limit") == spec.config.time_limit)


def run_one(spec: RunSpec) -> dict:
    """Run or resume one run; a failure is caught and reported with its reason, never lost."""
    if is_finished(spec):
        return {"run": spec.label, "status": "skipped (finished before)", "seconds": 0.0}
    started = time.perf_counter()
    (spec.run_dir / "error.txt").unlink(missing_ok=True)  # an earlier failure is retried, not reported again
    try:
        from surrogate_emo.pipeline import run

        run(spec.config)  # checks its names first: a misspelt one fails this run before it loads data or trains
    except Exception as error:  # noqa: BLE001 - one broken run must not stop the others; its reason is kept
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        (spec.run_dir / "error.txt").write_text(traceback.format_exc())
        return {"run": spec.label, "status": f"failed: {type(error).__name__}: {error}",
                "seconds": time.perf_counter() - started}
    return {"run": spec.label, "status": "ran", "seconds": time.perf_counter() - started}


def run_recipe(file) -> dict:
    """Run or resume one recipe of an experiment; a failure is caught and reported with its reason, never lost."""
    from surrogate_emo.recipes import RECIPES

    started = time.perf_counter()
    (file.out_dir / "error.txt").unlink(missing_ok=True)
    try:
        RECIPES[file.recipe].run(file, progress=False)
    except Exception as error:  # noqa: BLE001 - one broken recipe must not stop the others; its reason is kept
        file.out_dir.mkdir(parents=True, exist_ok=True)
        (file.out_dir / "error.txt").write_text(traceback.format_exc())
        return {"run": f"recipe {file.name}", "status": f"failed: {type(error).__name__}: {error}",
                "seconds": time.perf_counter() - started}
    return {"run": f"recipe {file.name}", "status": "ran", "seconds": time.perf_counter() - started}


def run_experiment(experiment: Experiment, jobs: int | None = None, progress: bool = True) -> list[dict]:
    """Every run of the experiment, ``jobs`` at a time (joblib), finished ones skipped; then the report."""
    from surrogate_emo.experiment_report import write_experiment_report

    specs = experiment.runs()
    try:
        experiment.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError.writing(experiment.out_dir, error) from error
    jobs = jobs or experiment.jobs
    outcomes = []
    with tqdm(total=len(specs), desc=f"{experiment.name} runs", unit="run", disable=not progress) as bar:
        results = (map(run_one, specs) if jobs == 1 else
                   Parallel(n_jobs=jobs, return_as="generator_unordered")(delayed(run_one)(s) for s in specs))
        for outcome in results:
            outcomes.append(outcome)
            bar.set_postfix_str(f"{outcome['run']}: {outcome['status'][:40]}", refresh=False)
            bar.update(1)
    files = experiment.recipe_files()
    if files:  # recipes rerun cheaply: each skips the models its study holds
        outcomes += (list(map(run_recipe, files)) if jobs == 1 else
                     list(Parallel(n_jobs=min(jobs, len(files)))(delayed(run_recipe)(f) for f in files)))
    if experiment.quality is not None:
        runs = experiment.quality_runs()
        unfinished = sorted({m for seed_runs in runs for m, config in seed_runs.items()
                             if not (config.run_dir / "summary.json").exists()})
        if unfinished:
            outcomes.append({"run": "quality", "status": f"not run: the runs of {unfinished} did not finish",
                             "seconds": 0.0})
        else:
            started = time.perf_counter()
            quality_over_seeds(experiment.out_dir, runs, experiment.quality_config(), jobs=jobs)
            outcomes.append({"run": "quality", "status": "ran", "seconds": time.perf_counter() - started})
    log = experiment.out_dir / "run_log.jsonl"
    with log.open("a") as handle:  # the history of sessions: which runs ran, failed or were skipped, and when
        for outcome in outcomes:
            handle.write(json.dumps({**outcome, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    write_experiment_report(experiment)
    return outcomes
