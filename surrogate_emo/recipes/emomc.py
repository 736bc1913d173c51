"""EMOMC: evolutionary multi-objective model compression by pruning and quantisation under an energy model
(Wang et al., IEEE CIM 16(3), 2021).

Stage I builds a library of pruned models, one per kept percentage ``r`` of a grid: every prunable layer keeps the
same fraction, reached gradually over ``library_epochs`` epochs (at the start of epoch ``s`` each layer keeps its
``(r/100)^((s+1)/S)`` largest weights, then trains an epoch with the masks fixed; the last pruning is trained for
one epoch). Stage II searches without any training: pymoo's NSGA-II over ``x0`` (the kept percentage, snapped to
the nearest library model) and ``x1..xL`` (each layer's weight bits, real-valued and rounded), each candidate the
library model with its layers quantised and scored on validation images; objectives error and energy (or bytes),
the other cost bounded as a constraint. The final front is scored on the test split.

Where this departs from the paper, and why:

* Quantisation is per output channel (this package's quantised layers, priced exactly in bytes and energy),
  not one step per layer.
* The library grid is configurable (the paper: every percent from 20 to 80); the committed recipes use a coarser
  grid to fit two CPU cores.
* Stage II's error is measured on ``eval_images`` validation images (all of them by default), never on test.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import ElementwiseProblem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.optimize import minimize
from torch import nn

from surrogate_emo.compress import measure
from surrogate_emo.compress.masks import MaskedLayer, keep_count, top_magnitude_mask
from surrogate_emo.data import Split
from surrogate_emo.errors import ConfigError
from surrogate_emo.front import pareto_indices
from surrogate_emo.quality import spread_in_log
from surrogate_emo.recipes.base import RecipeFile, load_checkpoint, save_checkpoint
from surrogate_emo.recipes.outcome import RecipeStudy, write_outcome
from surrogate_emo.schemes.unstructured import source_weight, weight_layer
from surrogate_emo.surgery import compressible_layers, replace_layer
from surrogate_emo.train import error_rate, fit, steps_for

OBJECTIVES = ("energy", "bytes")


@dataclass
class Settings:
    """The ``[emomc]`` table of a recipe file. Stage II's defaults are the paper's."""

    keeps: list[float] = field(default_factory=lambda: [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0])  # percent
    library_epochs: int = 32  # S, the gradual pruning of each library model
    min_bits: int = 2
    max_bits: int = 12
    objective: str = "energy"  # the cheap objective beside error; the other of energy and bytes is the constraint
    constraint_ratio: float | None = None  # the other cost at most this fraction of the dense model's; None: no bound
    pop_size: int = 40
    offsprings: int = 20
    generations: int = 120
    eval_images: int | None = None  # validation images scoring stage II (None: all)
    max_models: int = 8  # front models scored on test, spread along the cheap objective
    baselines: list[str] = field(default_factory=lambda: ["global-pruning", "global-pruning-8bit"])
    schedules: list[str] = field(default_factory=lambda: ["one-shot", "gradual"])

    def __post_init__(self) -> None:
        if not self.keeps or not all(0 < k <= 100 for k in self.keeps):
            raise ConfigError(f"emomc keeps must be kept percentages in (0, 100], got {self.keeps}")
        if not 2 <= self.min_bits <= self.max_bits <= 16:
            raise ConfigError(f"emomc needs 2 <= min_bits <= max_bits <= 16, got {self.min_bits}, {self.max_bits}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"emomc objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        if self.constraint_ratio is not None and not self.constraint_ratio > 0:
            raise ConfigError(f"emomc constraint_ratio must be > 0 or left out, got {self.constraint_ratio}")
        if self.library_epochs < 1 or self.pop_size < 2 or self.offsprings < 1 or self.generations < 1:
            raise ConfigError("emomc needs library_epochs, offsprings and generations >= 1 and pop_size >= 2")


def uniform_prune(model: nn.Module, names: list[str], keep: float) -> nn.Module:
    """A copy of ``model`` whose layers ``names`` each keep their ``keep`` fraction of largest (effective) weights,
    masks fixed."""
    pruned = copy.deepcopy(model)
    for name in names:
        layer = pruned.get_submodule(name)
        weight = source_weight(layer)
        mask = top_magnitude_mask(weight, keep_count(float(keep), weight.numel()))
        pruned = replace_layer(pruned, name, weight_layer(layer, weight, mask, None))
    return pruned


def library_model(base: nn.Module, train: Split, keep: float, epochs: int, lr: float, batch_size: int, seed: int,
                  checkpoint=None, progress=None) -> nn.Module:
    """Stage I for one kept fraction: the dense ``base`` (left untouched) pruned to ``keep`` on the schedule
    ``keep^((s+1)/S)``, an epoch of training after each step; resumes from ``checkpoint`` (saved every epoch)."""
    names = list(compressible_layers(base))
    model = uniform_prune(base, names, 1.0)
    first = 0
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        first = int(state["epoch"])
    steps = steps_for(1.0, len(train), batch_size)
    for epoch in range(first, epochs):
        model = uniform_prune(model, names, keep ** ((epoch + 1) / epochs))
        fit(model, train, steps, lr=lr, batch_size=batch_size, seed=seed + epoch)
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "epoch": epoch + 1})
        if progress is not None:
            progress(epoch + 1)
    return model


def quantised(model: nn.Module, names: list[str], bits: list[int]) -> nn.Module:
    """A copy of the pruned ``model`` with layer ``names[i]`` quantised to ``bits[i]`` (per output channel), its
    mask kept; no training."""
    out = copy.deepcopy(model)
    for name, q in zip(names, bits):
        layer = out.get_submodule(name)
        mask = layer.mask if isinstance(layer, MaskedLayer) else None
        out = replace_layer(out, name, weight_layer(layer, source_weight(layer), mask, int(q)))
    return out


class StageTwo(ElementwiseProblem):
    """EMOMC's stage II: ``[keep percent, bits per layer]`` -> (validation error, cheap objective ratio), the
    other cost bounded. Decoded candidates are scored once."""

    def __init__(self, library: dict[float, nn.Module], names: list[str], images: Split, input_shape, pricing, dense,
                 settings: Settings) -> None:
        keeps = sorted(library)
        low = np.array([min(keeps)] + [settings.min_bits - 0.5] * len(names), dtype=float)
        high = np.array([max(keeps)] + [settings.max_bits + 0.5 - 1e-9] * len(names), dtype=float)
        bounded = settings.constraint_ratio is not None
        super().__init__(n_var=1 + len(names), n_obj=2, n_ieq_constr=1 if bounded else 0, xl=low, xu=high)
        self.library, self.keeps, self.names, self.images = library, np.array(keeps), names, images
        self.input_shape, self.pricing, self.dense, self.settings = input_shape, pricing, dense, settings
        self.other = "bytes" if settings.objective == "energy" else "energy"
        self.scored: dict[tuple, tuple[float, dict]] = {}

    def decode(self, x: np.ndarray) -> tuple:
        keep = float(self.keeps[np.argmin(np.abs(self.keeps - x[0]))])
        bits = tuple(int(np.clip(np.round(b), self.settings.min_bits, self.settings.max_bits)) for b in x[1:])
        return (keep, *bits)

    def build(self, decoded: tuple) -> nn.Module:
        return quantised(self.library[decoded[0]], self.names, list(decoded[1:]))

    def score(self, decoded: tuple) -> tuple[float, dict]:
        if decoded not in self.scored:
            model = self.build(decoded)
            costs = measure(model, self.input_shape, self.pricing)
            ratios = {name: getattr(costs, name) / getattr(self.dense, name) for name in ("params", *OBJECTIVES)}
            self.scored[decoded] = (error_rate(model, self.images), ratios)
        return self.scored[decoded]

    def _evaluate(self, x, out, *args, **kwargs):
        error, ratios = self.score(self.decode(x))
        out["F"] = [error, ratios[self.settings.objective]]
        if self.settings.constraint_ratio is not None:
            out["G"] = [ratios[self.other] - self.settings.constraint_ratio]


def stage_two(problem: StageTwo, settings: Settings, seed: int) -> list[tuple]:
    """NSGA-II (the paper's operators) over ``problem``; the decoded candidates of its final non-dominated set,
    feasible ones only, in increasing cheap objective."""
    algorithm = NSGA2(pop_size=settings.pop_size, n_offsprings=settings.offsprings, crossover=SBX(prob=0.9, eta=15),
                      mutation=PM(eta=20), eliminate_duplicates=True)
    minimize(problem, algorithm, ("n_gen", settings.generations), seed=seed, verbose=False)
    scored = list(problem.scored.items())  # everything evaluated, not only the last population
    feasible = [(d, e, r) for d, (e, r) in scored
                if settings.constraint_ratio is None or r[problem.other] <= settings.constraint_ratio]
    if not feasible:
        return []
    F = np.array([[e, r[settings.objective]] for _, e, r in feasible])
    front = [feasible[i] for i in pareto_indices(F)]
    return [d for d, _, _ in sorted(front, key=lambda item: item[2][settings.objective])]


def run(file: RecipeFile, progress: bool = True) -> dict:
    """Stage I (the library, resumable per epoch), stage II (NSGA-II without training), the front on test, and
    global magnitude pruning (+ 8-bit) beside it with the library's training steps."""
    from surrogate_emo.pipeline import prepare

    config, settings = file.run_config(), file.recipe_settings()
    config.progress, config.warm_start = progress, False
    setup = prepare(config)
    study = RecipeStudy(file.out_dir, config, setup)
    names = list(compressible_layers(setup.base))
    seed = config.seed
    lr, batch = config.finetune_learning_rate, config.batch_size
    epochs = settings.library_epochs
    steps = epochs * steps_for(1.0, len(setup.data.train), batch)
    library_run = f"emomc-library_seed{seed}"
    done = study.open(library_run, {"recipe": "emomc", "library_epochs": epochs})
    library = {}
    for keep in settings.keeps:
        key = float(keep)
        stored = file.out_dir / "library" / f"keep{key:g}.pt"
        if key in done and stored.is_file():
            model = uniform_prune(setup.base, names, 1.0)
            model.load_state_dict(load_checkpoint(stored)["model"])
        else:
            checkpoint = file.out_dir / "checkpoints" / f"library-keep{key:g}.pt"
            started = time.perf_counter()
            show = (lambda epoch, k=key: print(f"EMOMC library {k:g}%: epoch {epoch}/{epochs}", file=sys.stderr,
                                                   flush=True)) if progress else None
            model = library_model(setup.base, setup.data.train, key / 100, epochs, lr, batch, seed, checkpoint, show)
            save_checkpoint(stored, {"model": model.state_dict()})
            if key not in done:
                done[key] = study.record(library_run, key, model, steps, time.perf_counter() - started,
                                         {"keep_percent": key})
            checkpoint.unlink(missing_ok=True)
        library[key] = model.eval()
    images = setup.data.val
    if settings.eval_images is not None:
        images = Split(images.x[:settings.eval_images], images.y[:settings.eval_images])
    problem = StageTwo(library, names, images, setup.data.input_shape, study.pricing, study.dense, settings)
    besides = ("baselines", "schedules", "max_models")
    search_run = f"emomc_seed{seed}"
    done = study.open(search_run, {"recipe": "emomc", **{k: v for k, v in asdict(settings).items()
                                                          if k not in besides}})
    if progress:
        print(f"EMOMC stage II: NSGA-II, {settings.generations} generations, no training", file=sys.stderr, flush=True)
    started = time.perf_counter()
    front = stage_two(problem, settings, seed)
    search_seconds = time.perf_counter() - started
    values = np.array([problem.score(d)[1][settings.objective] for d in front]) if front else np.array([])
    rows = []
    for decoded in spread_in_log(front, values, settings.max_models):
        key = "-".join(f"{v:g}" for v in decoded)
        if key not in done:
            done[key] = study.record(search_run, key, problem.build(decoded), steps, 0.0,
                                     {"keep_percent": decoded[0], "bits": list(decoded[1:]),
                                      "stage_two_seconds": round(search_seconds, 2),
                                      "stage_two_evaluations": len(problem.scored)})
        # the library's rows hold the training; stage II adds none
        rows.append({**study.row(done[key], "EMOMC", "stage II, no training"), "steps_spent": 0, "seconds_spent": 0.0})
    rows += [study.row(e, "EMOMC library (float32)", "gradual") for e in
             study.open(library_run, {"recipe": "emomc", "library_epochs": epochs}).values()]
    ratios = sorted({row["params_ratio"] for row in rows})
    rows += study.baselines(ratios, steps, settings.baselines, settings.schedules, progress)
    return write_outcome(file.out_dir, rows, f"EMOMC: a library of models pruned gradually over {epochs} epochs "
                         f"(kept {', '.join(f'{k:g}' for k in settings.keeps)}%), then NSGA-II over kept percentage and "
                         f"bits per layer without training ({settings.objective} and validation error); global "
                         "magnitude pruning of the dense model with the same training steps.")
