"""Run configuration: one typed dataclass; TOML/YAML files and CLI options map one-to-one onto its fields."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from surrogate_emo.errors import ConfigError

# Fields that may change when a run is resumed: they do not change what any trial computes.
# Output locations (output_dir, study, cache_dir) are among them.
RESUMABLE_FIELDS = ("budget", "time_limit", "step_limit", "progress", "output_dir", "final_test", "n_jobs", "cache_dir", "study",
                    "dask_scheduler", "device")

# The options the dense base model depends on (with the seed and the torch version: its cache key in
# `pipeline.prepare`): runs that differ in one of them compress different base models by design.
BASE_FIELDS = ("dataset", "data_dir", "data_seed", "model", "base_epochs", "lr", "batch_size", "seed", "threads",
               "device")

# Fields a built-in search never reads: a resumed run may differ in them (a default changed since it started).
_LOOP_ONLY = ("surrogate", "infill", "error_scale", "q", "n_init", "pool_size", "pool_generations", "screen_size",
              "screen_generations", "screen_design", "polish_steps", "refit", "shortlist", "shortlist_fraction",
              "whole_range_share", "useful_error", "useful_weight")
_ACQUISITION_ONLY = ("error_reference",)  # read by the hypervolume acquisitions of the loop and of BoTorch
UNUSED_FIELDS = {"nsga2": _LOOP_ONLY + _ACQUISITION_ONLY, "random": _LOOP_ONLY + _ACQUISITION_ONLY,
                 "surrogate": ("pop_size",),
                 "botorch": ("pop_size", "surrogate", "infill", "pool_size", "pool_generations", "screen_size",
                             "screen_generations", "screen_design", "polish_steps", "refit", "shortlist",
                             "shortlist_fraction", "whole_range_share", "useful_error", "useful_weight")}


# The compression scheme of every run made before schemes were named; left out of `RunConfig.identity` when chosen.
DEFAULT_SCHEME = "lowrank-sparse"

# Fields added with the compression schemes, read only by some of them: left out of `RunConfig.identity` at their
# defaults, so the runs and studies made before them keep their names and keys.
LATER_FIELDS = ("scheme", "objective_decades", "coding", "index_bits", "dataflow", "recovery", "min_bits", "max_bits", "global_keep",
                "final_schedule", "screen_size", "screen_generations", "screen_design", "polish_steps", "shortlist",
                "shortlist_fraction", "error_reference", "whole_range_share", "useful_error", "useful_weight")

# What a stored run that lacks a field had: the cheap objectives were linear ratios before ``objective_scale``, and
# the loop fitted its surrogates from scratch every iteration before ``refit`` (as it does again by default).
LEGACY_VALUES = {"objective_scale": "linear", "refit": "cold"}


# The headings of ``surrogate-emo run --help``, in order; a field without a group is listed under "other".
DATA, COMPRESSION, SEARCH, LOOP, FINETUNE, OUTPUTS, RUNNING = (
    "data and model", "compression", "search", "surrogate loop", "fine-tuning", "outputs", "running")
GROUPS = (DATA, COMPRESSION, SEARCH, LOOP, FINETUNE, OUTPUTS, RUNNING)


def _opt(default, help: str, group: str | None = None, choices: tuple[str, ...] | None = None,
         names: tuple[str, ...] | None = None, shown: str | None = None):
    """A `RunConfig` field with its command-line help.

    Args:
        default: the value when neither the config file nor the command line gives one.
        help: one line, no default in it (``--help`` adds it once).
        group: the ``--help`` heading it is listed under (one of `GROUPS`).
        choices: the only accepted values (of each item, for a list).
        names: built-in names of a field that also takes ``package.module:Name``.
        shown: how ``--help`` shows the default when the value alone does not say it (None: "unset").
    """
    metadata = {"help": help, "group": group, "choices": choices, "names": names, "shown": shown}
    if isinstance(default, list):  # a fresh list per instance: no shared mutable default
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """Everything that defines a run. Each field is a config-file key and a ``--kebab-case`` CLI option.

    Example:
        >>> RunConfig(budget=50).search
        'nsga2'
    """

    name: str | None = _opt(None, "run name: outputs go to <output_dir>/<name>/ and the study keys runs by it",
                            OUTPUTS, shown="quickstart for the default settings, else <dataset>-<model>-<search>-"
                                           "<hash of the settings>")
    dataset: str = _opt("digits", "data set: digits (bundled), fashion-mnist (Debian package), idx (--data-dir), "
                                  "cifar10 (--data-dir)", DATA, choices=("digits", "fashion-mnist", "idx", "cifar10"))
    data_dir: str | None = _opt(None, "folder of MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST), or of "
                                      "CIFAR-10's binary batches", DATA)
    data_seed: int = _opt(0, "seed of the fixed train/validation/test split", DATA)
    model: str = _opt("mlp", "model: a built-in network, or package.module:factory(input_shape, n_classes)",
                    DATA, names=("mlp", "lenet-300-100", "lenet-5", "vgg-small"))
    scheme: str = _opt(DEFAULT_SCHEME, "compression scheme: what the genes of each layer mean and how the smaller "
                                         "model is built, or package.module:Class", COMPRESSION,
                       names=("lowrank-sparse", "prune", "filters", "quant", "prune-quant"))
    layers: list[str] | None = _opt(None, "names of the layers to compress", COMPRESSION,
                                     shown="every Linear and Conv2d")
    decades: float = _opt(3.0, "decades spanned by the log-scale keep fraction of each gene", COMPRESSION)
    objectives: list[str] = _opt(["params"], "cheap objectives beside the error (exact counts of the compressed "
                                             "model; energy: the accelerator model)", COMPRESSION,
                                 choices=("params", "bytes", "macs", "energy"))
    objective_scale: str = _opt("log", "scale of the cheap objectives in every search, criterion and hypervolume: "
                                       "log (1 + log10(ratio) / objective_decades) or linear (the ratio)",
                                COMPRESSION, choices=("log", "linear"))
    objective_decades: float = _opt(3.0, "decades of compression a log-scale cheap objective spans from 1 to 0",
                                    COMPRESSION)
    coding: str = _opt("best", "how a pruned layer's weights are stored and counted in bytes: best (the smallest "
                               "per layer), dense, csr (relative indices), coo", COMPRESSION,
                       choices=("best", "dense", "csr", "coo"))
    index_bits: int = _opt(5, "bits of a CSR relative index (a filler entry when a gap overflows)", COMPRESSION)
    dataflow: str = _opt("X:Y", "accelerator loop unrolling of the energy objective", COMPRESSION,
                         choices=("X:Y", "IC:OC", "Fx:Fy", "X:Fx"))
    recovery: bool = _opt(False, "prune: Dynamic Network Surgery masks while fine-tuning (pruned weights can "
                                 "return) instead of fixed ones", COMPRESSION)
    min_bits: int = _opt(2, "quant, prune-quant: smallest weight bit width of a gene", COMPRESSION)
    max_bits: int = _opt(8, "quant, prune-quant: largest weight bit width of a gene (at most 16)", COMPRESSION)
    global_keep: bool = _opt(False, "prune-quant: one kept fraction for every layer (EMOMC) instead of one per "
                                    "layer", COMPRESSION)
    search: str = _opt("nsga2", "search: nsga2 (full evaluation), random, surrogate (the surrogate loop), botorch "
                                "(qLogNEHVI peer), or package.module:Class", SEARCH,
                       names=("nsga2", "random", "surrogate", "botorch"))
    budget: int = _opt(300, "true evaluations (fine-tunings) the search may spend", SEARCH)
    time_limit: float | None = _opt(None, "wall-clock seconds after which no new batch is started", RUNNING,
                                    shown="no limit")
    step_limit: int | None = _opt(None, "fine-tuning steps of the whole run (all sessions) after which no new batch "
                                  "is started: a budget in compute rather than in evaluations", SEARCH,
                                  shown="no limit")
    pop_size: int = _opt(30, "NSGA-II population size; batch size of random search", SEARCH)
    surrogate: str = _opt("gp", "surrogate of the error: gp, rf (random forest), gp-f0 / rf-f0 (reading the "
                        "fidelity-0 error), gp-mf (with a shortlist: a multi-fidelity GP over every short fine-tune "
                        "of the run), package.module:SurrogateClass, or a portfolio joined by '+' (gp-f0+rf-f0: "
                        "each picks its share of every batch)", LOOP, names=("gp", "rf", "gp-f0", "rf-f0", "gp-mf"))
    infill: str = _opt("ehvi-lazy", "infill criterion, or package.module:Class", LOOP,
                     names=("ehvi-lazy", "ehvi", "ehvi-exact", "ehvi-joint", "ehvi-bands", "parego", "mean", "random"))
    error_reference: float = _opt(1.0, "the error coordinate of the reference point of the loop's (and BoTorch's) "
                                  "hypervolume acquisition: a candidate predicted above it adds nothing, so the search "
                                  "spends its evaluations below it (e.g. the dense error + 0.1). The reports keep 1.0",
                                  LOOP)
    whole_range_share: float = _opt(0.0, "with error_reference below 1: the share of each loop batch chosen with the "
                                    "reference at 1 instead, so one run both aims at the useful region and keeps the "
                                    "whole front (0.5: half of each batch)", LOOP)
    useful_weight: float = _opt(0.0, "with useful_error: the loop's acquisition counts hypervolume below that error "
                                "(1 + this) times, so its value is the improvement at error_reference plus this "
                                "times the improvement at useful_error: one criterion for both, no split batch", LOOP)
    useful_error: float | None = _opt(None, "the error below which useful_weight counts (e.g. the dense error + 0.1)",
                                      LOOP)
    error_scale: str = _opt("log", "scale on which the surrogate models the error", LOOP, choices=("log", "linear"))
    q: int = _opt(4, "infill candidates truly evaluated per surrogate iteration", LOOP)
    n_init: int = _opt(20, "Latin-hypercube initial design of the surrogate loop (true evaluations)", LOOP)
    pool_size: int = _opt(100, "NSGA-II population evolved on the surrogate's predictions (the candidate pool)",
                          LOOP)
    pool_generations: int = _opt(25, "NSGA-II generations on the surrogate per iteration", LOOP)
    screen_size: int = _opt(1000, "validation samples of the fidelity-0 (no fine-tuning) error that gp-f0 and rf-f0 "
                            "read", LOOP)
    screen_generations: int = _opt(0, "with gp-f0 or rf-f0: NSGA-II generations more on the feature surrogate after "
                                   "the pool's evolution on the genome alone (each new point: one fidelity-0 "
                                   "evaluation)", LOOP)
    screen_design: int = _opt(0, "choose the n_init design points from this many Latin-hypercube points by their "
                              "fidelity-0 error and exact costs (NSGA-II rank and crowding); 0: the plain design",
                              LOOP)
    polish_steps: int = _opt(0, "L-BFGS-B steps up the EHVI from each chosen batch, inside the unit cube; only where "
                             "every objective is modelled (a test problem) and with gp. 0: the pool's points as they are",
                             LOOP)
    refit: str = _opt("cold", "how the loop refits its GPs each iteration: cold from the defaults, or warm from the "
                      "last fit's hyperparameters, each lengthscale started at most at 3 (stored with the trials; "
                      "for gp-mf on LeNet-300-100 a quarter of the cold fits' time at their likelihoods; uncapped, "
                      "chains of gp fits settled in worse optima: results/warm_refit_drift)", LOOP,
                      choices=("warm", "cold"))
    shortlist: int = _opt(0, "fidelity 1: candidates per iteration the infill shortlists and fine-tunes briefly "
                          "(shortlist_fraction of the steps); the batch is then chosen among them by the surrogate "
                          "refitted with their short-fine-tune error as an input (gp-f0, rf-f0) or as observations "
                          "it keeps (gp-mf). 0: no short fine-tunes", LOOP)
    shortlist_fraction: float = _opt(0.125, "the short fine-tune's steps as a fraction of a full one's", LOOP)
    warm_start: bool = _opt(True, "cache fine-tuned models and warm-start new candidates from the nearest one",
                             FINETUNE)
    warm_fraction: float = _opt(0.5, "fraction of the fine-tuning steps a warm-started candidate gets", FINETUNE)
    model_cache_mb: int = _opt(512, "size bound of the model cache (least recently used evicted first)", FINETUNE)
    n_jobs: int = _opt(1, "true evaluations run in parallel through joblib (-1: all cores)", RUNNING)
    seed: int = _opt(0, "seed of the search, the base model and every fine-tune", RUNNING)
    device: str = _opt("cpu", "where training, fine-tuning and scoring run: cpu, cuda, or auto (a GPU if torch sees "
                              "one); floats differ in their last bits between devices", RUNNING,
                       choices=("cpu", "cuda", "auto"))
    threads: int = _opt(1, "torch threads per evaluation; results are reproducible only for the same count",
                       RUNNING)
    base_epochs: float = _opt(30.0, "epochs of dense training of the base model (trained once, then cached)", DATA)
    finetune_epochs: float = _opt(3.0, "fine-tuning epochs per true evaluation", FINETUNE)
    finetune_steps: int | None = _opt(None, "fine-tuning minibatch steps per evaluation (overrides finetune_epochs)",
                                      FINETUNE)
    final_finetune_epochs: float = _opt(0.0, "extra fine-tuning epochs for front models before the test re-score",
                                        FINETUNE)
    final_schedule: str = _opt("one-shot", "how front models reach their genome in the final fine-tune: one-shot "
                                           "(fine-tune the evaluated model further) or gradual (from the dense "
                                           "model, Zhu and Gupta's cubic schedule)", FINETUNE,
                               choices=("one-shot", "gradual"))
    lr: float = _opt(1e-3, "Adam learning rate of the dense base model's training", DATA)
    finetune_lr: float | None = _opt(None, "Adam learning rate of each fine-tune", FINETUNE, shown="--lr")
    batch_size: int = _opt(128, "minibatch size of the base model's training and of every fine-tune", DATA)
    output_dir: str = _opt("runs", "folder that receives <name>/ (the committed studies are under results/)",
                           OUTPUTS)
    study: str | None = _opt(None, "SQLite study file", OUTPUTS, shown="<output_dir>/<name>/study.sqlite")
    cache_dir: str = _opt("~/.cache/surrogate_emo", "where trained base models are kept, by config hash", OUTPUTS)
    progress: bool = _opt(True, "show progress on stderr: data, base model, true evaluations", RUNNING)
    final_test: bool = _opt(True, "re-score the final front on the test split", OUTPUTS)
    problem: str | None = _opt(None, "a pymoo test problem by name with options, or package.module:factory: run the "
                                     "search on it instead of compressing a network (e.g. 'dtlz7 n_obj=3')", SEARCH,
                               shown="none: compress the network")
    dask_scheduler: str | None = _opt(None, "address of a dask scheduler (tcp://HOST:8786): true evaluations run "
                                            "on its workers (needs the dask extra; replaces n_jobs)", RUNNING,
                                      shown="none: evaluate on this machine")

    def __post_init__(self) -> None:
        self.validate()
        if self.name is None:
            self.name = self.default_name()

    def identity(self) -> dict:
        """The fields that define what the trials compute: all but the run name, the `RESUMABLE_FIELDS` and the
        fields the configured search never reads (`UNUSED_FIELDS`). The `LATER_FIELDS` are left out at their
        defaults and the `LEGACY_VALUES` at those values, so the runs and studies made before them keep their names
        and keys."""
        ignored = {"name", *RESUMABLE_FIELDS, *UNUSED_FIELDS.get(self.search, ())}
        defaults = RunConfig.__dataclass_fields__
        ignored.update(key for key in LATER_FIELDS if getattr(self, key) == defaults[key].default)
        ignored.update(key for key, value in LEGACY_VALUES.items() if getattr(self, key) == value)
        return {key: value for key, value in self.to_dict().items() if key not in ignored}

    def default_name(self) -> str:
        """``quickstart`` when every field of `identity` has its default, else
        ``<dataset>-<model>-<search>-<first 8 hex of the SHA-256 of the identity>`` (``<problem>-<search>-...`` for a
        problem run): each distinct configuration
        gets a folder of its own, and rerunning the same command resumes it.

        Example:
            >>> RunConfig().name, RunConfig(budget=10, output_dir="elsewhere").name
            ('quickstart', 'quickstart')
            >>> RunConfig(pop_size=20).name[:-8]
            'digits-mlp-nsga2-'
        """
        identity = self.identity()
        if identity == RunConfig(name="quickstart").identity():
            return "quickstart"
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
        what = self.problem.split()[0] if self.problem else f"{self.dataset}-{self.model}"
        readable = re.sub(r"[^A-Za-z0-9_.]+", "-", f"{what}-{self.search}").strip("-")
        return f"{readable}-{digest}"

    def validate(self) -> None:
        checks = [
            ("budget", self.budget >= 1, "an integer >= 1"),
            ("pop_size", self.pop_size >= 2, "an integer >= 2"),
            ("threads", self.threads >= 1, "an integer >= 1"),
            ("time_limit", self.time_limit is None or self.time_limit > 0, "a positive number of seconds or unset"),
            ("step_limit", self.step_limit is None or self.step_limit >= 1, "an integer >= 1 or unset"),
            ("q", self.q >= 1, "an integer >= 1"),
            ("error_scale", self.error_scale in ("log", "linear"), "'log' or 'linear'"),
            ("error_reference", 0 < self.error_reference <= 1, "a number in (0, 1]"),
            ("error_reference", self.problem is None or self.error_reference == 1,
             "1 with --problem (a test problem's reference point is its own)"),
            ("whole_range_share", 0 <= self.whole_range_share < 1, "a fraction in [0, 1)"),
            ("whole_range_share", self.whole_range_share == 0 or self.error_reference < 1,
             "0 while error_reference is 1 (the whole range already)"),
            ("whole_range_share", self.whole_range_share == 0 or self.search != "botorch",
             "0 with search botorch (its acquisition takes one reference point)"),
            ("useful_weight", self.useful_weight >= 0, "a number >= 0"),
            ("useful_weight", self.useful_weight == 0 or self.search == "surrogate",
             "0 unless search is surrogate (the loop's acquisition alone weighs errors)"),
            ("useful_weight", self.useful_weight == 0 or self.problem is None,
             "0 with --problem (its first objective is no error)"),
            ("useful_weight", self.useful_weight == 0 or self.whole_range_share == 0,
             "0 with whole_range_share (a split batch or a weighted criterion, not both)"),
            ("useful_error", (self.useful_error is None) == (self.useful_weight == 0),
             "set exactly when useful_weight is above 0"),
            ("useful_error", self.useful_error is None or 0 < self.useful_error < self.error_reference,
             f"a number in (0, error_reference = {self.error_reference})"),
            ("n_init", self.n_init >= 2, "an integer >= 2"),
            ("pool_size", self.pool_size >= self.q, f"an integer >= q ({self.q})"),
            ("pool_generations", self.pool_generations >= 1, "an integer >= 1"),
            ("screen_size", self.screen_size >= 1, "an integer >= 1"),
            ("screen_generations", self.screen_generations >= 0, "an integer >= 0"),
            ("screen_design", self.screen_design == 0 or self.screen_design >= self.n_init,
             f"0 or an integer >= n_init ({self.n_init})"),
            ("polish_steps", self.polish_steps >= 0, "an integer >= 0"),
            ("refit", self.refit in ("warm", "cold"), "'warm' or 'cold'"),
            ("shortlist", self.shortlist == 0 or self.shortlist > self.q, f"0 or an integer > q ({self.q})"),
            ("shortlist_fraction", 0 < self.shortlist_fraction < 1, "a fraction in (0, 1)"),
            ("n_jobs", self.n_jobs != 0, "a non-zero integer (-1: all cores)"),
            ("warm_fraction", 0 < self.warm_fraction <= 1, "a fraction in (0, 1]"),
            ("model_cache_mb", self.model_cache_mb >= 1, "an integer >= 1"),
            ("base_epochs", self.base_epochs >= 0, "a number >= 0"),
            ("finetune_epochs", self.finetune_epochs >= 0, "a number >= 0"),
            ("finetune_steps", self.finetune_steps is None or self.finetune_steps >= 0, "an integer >= 0 or unset"),
            ("final_finetune_epochs", self.final_finetune_epochs >= 0, "a number >= 0"),
            ("lr", self.lr > 0, "a positive number"),
            ("finetune_lr", self.finetune_lr is None or self.finetune_lr > 0, "a positive number or unset"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("decades", self.decades > 0, "a positive number"),
            ("objective_decades", self.objective_decades > 0, "a positive number"),
            ("index_bits", 1 <= self.index_bits <= 32, "an integer in [1, 32]"),
            ("min_bits", 2 <= self.min_bits <= 16, "an integer in [2, 16]"),
            ("max_bits", self.min_bits <= self.max_bits <= 16, f"an integer in [min_bits ({self.min_bits}), 16]"),
            ("name", self.name is None or (bool(self.name) and "/" not in self.name),
             "a non-empty name without '/' or unset"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{key} must be {expected}, got {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def finetune_learning_rate(self) -> float:
        return self.lr if self.finetune_lr is None else self.finetune_lr

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def _field_types() -> dict[str, object]:
    return typing.get_type_hints(RunConfig)


def _base_type(annotation) -> tuple[type, bool]:
    """(scalar type, is_list) of an annotation such as ``int | None`` or ``list[str] | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] if isinstance(annotation, types.UnionType) else [annotation]
    inner = args[0]
    if typing.get_origin(inner) is list:
        return typing.get_args(inner)[0], True
    return inner, False


def _coerce(key: str, value, annotation):
    scalar, is_list = _base_type(annotation)
    if value is None:
        if type(None) in typing.get_args(annotation):
            return None
        raise ConfigError(f"{key} must be a {scalar.__name__}, got None")
    if is_list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of {scalar.__name__}, got {value!r}")
        return [_coerce(key, item, scalar) for item in value]
    if scalar is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, scalar) or (scalar is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be a {scalar.__name__}, got {value!r} ({type(value).__name__})")
    return value


def problem_text(table: typing.Mapping) -> str:
    """A problem given as a table (``{name = "dtlz7", n_obj = 3}``) written as its spec text, ``dtlz7 n_obj=3``.

    Example:
        >>> problem_text({"name": "zdt1", "n_var": 8, "ref_point": [1.1, 1.1]})
        'zdt1 n_var=8 ref_point=1.1,1.1'
    """
    def text(value) -> str:
        if isinstance(value, list):
            return ",".join(map(text, value)) + ("," if len(value) == 1 else "")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)) or (isinstance(value, str) and value and not re.search(r"[\s=,]", value)):
            return str(value)
        raise ConfigError(f"problem option values must be numbers, true/false, words or lists of them, got {value!r}")

    name = table.get("name")
    if not isinstance(name, str) or not name or re.search(r"\s", name):
        raise ConfigError(f"a problem table needs a name such as 'zdt1' or 'package.module:factory', got {dict(table)!r}")
    return " ".join([name, *(f"{key}={text(value)}" for key, value in table.items() if key != "name")])


def config_from_dict(values: dict) -> RunConfig:
    """Build a `RunConfig` from a mapping, rejecting unknown keys and wrong types with what was expected."""
    hints = _field_types()
    if isinstance(values.get("problem"), dict):  # a problem written as a table in a config file
        values = {**values, "problem": problem_text(values["problem"])}
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known keys: {sorted(hints)}")
    return RunConfig(**{key: _coerce(key, value, hints[key]) for key, value in values.items()})


def load_config_file(path: str | Path) -> dict:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config file into a dict (keys use underscores)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} must be a UTF-8 text file, got undecodable bytes ({error.reason})") from error
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as error:
                raise ConfigError("YAML config files need PyYAML: pip install 'surrogate-emo[yaml]'") from error
            try:
                values = yaml.safe_load(text) or {}
            except yaml.YAMLError as error:  # not a ValueError
                raise ConfigError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from error
        else:
            raise ConfigError(f"config file must end in .toml, .yaml or .yml, got {path.name!r}")
    except (tomllib.TOMLDecodeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{path} is not valid {path.suffix[1:].upper()}: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a table of keys, got {type(values).__name__}")
    return {key.replace("-", "_"): value for key, value in values.items()}


def shown_default(item: dataclasses.Field) -> str:
    """How ``--help`` shows a field's default: ``300``, ``0.001``, ``params``, ``on``, ``unset``."""
    default = item.default_factory() if item.default is dataclasses.MISSING else item.default
    if item.metadata.get("shown"):
        return item.metadata["shown"]
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list):
        return " ".join(map(str, default))
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per `RunConfig` field, default unset so the config file's value stands unless given.

    Options are listed under the headings of `GROUPS`, in that order (a field without a group under "other");
    each help line ends with its default, once.
    """
    hints = _field_types()
    fields = dataclasses.fields(RunConfig)
    titles = [*GROUPS, "other"]
    used = {item.metadata.get("group") if item.metadata.get("group") in GROUPS else "other" for item in fields}
    groups = {title: parser.add_argument_group(title) for title in titles if title in used}
    for item in fields:
        group = groups[item.metadata.get("group") if item.metadata.get("group") in GROUPS else "other"]
        flag = "--" + item.name.replace("_", "-")
        scalar, is_list = _base_type(hints[item.name])
        help_text = f"{item.metadata.get('help', '')} (default: {shown_default(item)})".replace("%", "%%")
        if scalar is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        choices, names = item.metadata.get("choices"), item.metadata.get("names")
        metavar = (None if choices else "{%s}" % ",".join(names) if names else
                   {int: "N", float: "X"}.get(scalar, item.name.upper()))
        group.add_argument(flag, type=scalar, nargs="+" if is_list else None, default=None, help=help_text,
                           choices=choices, metavar=metavar)
