"""SMOEA: sub-network multi-objective evolutionary filter pruning, group by group (2022).

The prunable layers of the `filters` scheme (every ``Conv2d`` and hidden ``Linear``, coupled layers sharing a
gene; the classifier kept) are split into groups of ``group_size`` consecutive genes. For each group in turn,
pymoo's NSGA-II searches that group's genes with the groups before it fixed at their choice and the groups after
it unpruned; a candidate is the current model with the group's channels removed (Torch-Pruning, L1 norm), fine-tuned
``eval_steps`` and scored on ``eval_images`` validation images; objectives: that error and the whole model's
parameters. One solution is kept (``choose``: the knee of the final front, or the smallest within ``max_drop`` of
the current model's error), its channels removed physically, the model fine-tuned ``group_steps``, and the next
group is searched.

The paper's genome, objectives, settings and schedule are not public. Our choices, all config keys: one gene per
layer (the kept share of its channels on the `filters` scheme's log scale) rather than a keep bit per filter,
which keeps the search small and the ranking of filters by L1 norm; population 10 for 4 generations per group.
Every evaluation of every group's search lands in the study; a resumed run replays them from it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import ElementwiseProblem
from pymoo.operators.sampling.lhs import LHS
from pymoo.optimize import minimize
from torch import nn

from surrogate_emo.data import Split
from surrogate_emo.errors import ConfigError
from surrogate_emo.front import pareto_indices
from surrogate_emo.recipes.base import RecipeFile, load_checkpoint, save_checkpoint
from surrogate_emo.recipes.outcome import RecipeStudy, write_outcome
from surrogate_emo.schemes.filters import FiltersScheme
from surrogate_emo.search.surrogate import SurrogateSearch
from surrogate_emo.train import error_rate, fit

CHOICES = ("knee", "bound")


@dataclass
class Settings:
    """The ``[smoea]`` table of a recipe file."""

    group_size: int = 2  # genes per group, in model order
    pop_size: int = 10
    generations: int = 4
    eval_steps: int = 50  # fine-tuning of a candidate before it is scored
    eval_images: int | None = 2000  # validation images scoring candidates (None: all)
    choose: str = "knee"  # or "bound": the smallest within max_drop of the current model's error
    max_drop: float = 0.01
    group_steps: int = 500  # fine-tuning after each group's channels are removed
    search: str = "nsga2"  # or "surrogate": the GP (or forest) + EHVI loop over each group, surrogate-assisted
    surrogate: str = "gp"  # with search = "surrogate": "gp" or "rf"
    evaluations: int | None = None  # with search = "surrogate": per group (None: a third of pop_size x generations)
    uniform_baseline: bool = True  # L1-norm filter pruning, the same share of every layer, at SMOEA's params
    baselines: list[str] = field(default_factory=lambda: ["global-pruning"])
    schedules: list[str] = field(default_factory=lambda: ["one-shot"])

    def __post_init__(self) -> None:
        if self.group_size < 1 or self.pop_size < 2 or self.generations < 1:
            raise ConfigError(f"smoea needs group_size >= 1, pop_size >= 2 and generations >= 1; got "
                              f"{self.group_size}, {self.pop_size}, {self.generations}")
        if self.search not in ("nsga2", "surrogate"):
            raise ConfigError(f"smoea search must be 'nsga2' or 'surrogate', got {self.search!r}")
        if self.evaluations is not None and self.evaluations < 3:
            raise ConfigError(f"smoea evaluations must be >= 3 or left out, got {self.evaluations}")
        if self.choose not in CHOICES:
            raise ConfigError(f"smoea choose must be one of {list(CHOICES)}, got {self.choose!r}")
        if self.eval_steps < 0 or self.group_steps < 0 or not 0 <= self.max_drop < 1:
            raise ConfigError("smoea needs eval_steps >= 0, group_steps >= 0 and max_drop in [0, 1)")


def knee(F: np.ndarray) -> int:
    """Index of the knee of a two-objective front: the point farthest from the line through its two extremes,
    both objectives scaled to [0, 1] over the front (the first point where the front is a line or a point)."""
    F = np.asarray(F, dtype=np.float64)
    span = F.max(axis=0) - F.min(axis=0)
    scaled = (F - F.min(axis=0)) / np.where(span > 0, span, 1.0)
    a, b = scaled[np.argmin(scaled[:, 0])], scaled[np.argmin(scaled[:, 1])]
    direction = b - a
    norm = np.linalg.norm(direction)
    if norm == 0:
        return 0
    distance = np.abs(direction[0] * (scaled[:, 1] - a[1]) - direction[1] * (scaled[:, 0] - a[0])) / norm
    return int(np.argmax(distance))


class GroupProblem(ElementwiseProblem):
    """One group's genes -> (error after a short fine-tune, the whole model's params ratio); evaluations are looked
    up in, or added to, ``known`` (genome key -> (error, params ratio))."""

    def __init__(self, scheme: FiltersScheme, current: nn.Module, fixed: np.ndarray, group: list[int], train: Split,
                 images: Split, settings: Settings, lr: float, batch_size: int, seed: int, known: dict,
                 on_new=None) -> None:
        super().__init__(n_var=len(group), n_obj=2, xl=0.0, xu=1.0)
        self.scheme, self.current, self.fixed, self.group = scheme, current, fixed, group
        self.train, self.images, self.settings = train, images, settings
        self.lr, self.batch_size, self.seed, self.known, self.on_new = lr, batch_size, seed, known, on_new

    def genome(self, x: np.ndarray) -> np.ndarray:
        genome = self.fixed.copy()
        genome[self.group] = np.round(np.clip(x, 0.0, 1.0), 6)
        return genome

    def _evaluate(self, x, out, *args, **kwargs):
        genome = self.genome(x)
        key = ",".join(f"{g:.6f}" for g in genome)
        if key not in self.known:
            started = time.perf_counter()
            model = self.scheme.compress(self.current, genome)
            if self.settings.eval_steps:
                fit(model, self.train, self.settings.eval_steps, lr=self.lr, batch_size=self.batch_size,
                    seed=self.seed)
            self.known[key] = (error_rate(model, self.images), self.scheme.ratios(genome)["params"])
            if self.on_new is not None:
                self.on_new(key, genome, *self.known[key], time.perf_counter() - started)
        out["F"] = list(self.known[key])


def search_group(problem: GroupProblem, settings: Settings, seed: int) -> None:
    """The surrogate-assisted version of one group's search: the package's surrogate loop (`SurrogateSearch`, a
    Latin hypercube then one EHVI pick per iteration) over the group's genes, the error modelled and the params
    ratio exact, for ``evaluations`` true evaluations (default: a third of NSGA-II's)."""
    budget = settings.evaluations or max(3, settings.pop_size * settings.generations // 3)
    group = problem.group

    def params(X: np.ndarray) -> np.ndarray:
        return np.array([[problem.scheme.ratios(problem.genome(x))["params"]] for x in X])

    search = SurrogateSearch(len(group), 2, seed=seed, surrogate=settings.surrogate, q=1,
                             n_init=max(2, min(budget - 1, budget // 3)), pool_size=40, pool_generations=10,
                             cheap=params, ref_point=[1.0, 1.0])
    done = 0
    while done < budget:
        X = search.ask(budget - done)
        F = np.array([problem.evaluate(x[None, :], return_as_dictionary=True)["F"][0] for x in X])
        search.tell(X, F)
        done += len(X)


def choose(F: np.ndarray, how: str, floor: float, max_drop: float) -> int:
    """The index of the kept solution among a front ``F`` (error, params ratio)."""
    if how == "bound":
        within = np.flatnonzero(F[:, 0] <= floor + max_drop + 1e-12)
        return int(within[np.argmin(F[within, 1])]) if len(within) else int(np.argmin(F[:, 0]))
    return knee(F)


def run(file: RecipeFile, progress: bool = True) -> dict:
    """Group by group: NSGA-II, the kept solution, removal and fine-tuning; then the final model beside uniform L1
    filter pruning and global magnitude pruning with the same steps. Checkpointed after every group."""
    from surrogate_emo.pipeline import prepare

    config, settings = file.run_config(), file.recipe_settings()
    config.progress, config.warm_start = progress, False
    setup = prepare(config)
    study = RecipeStudy(file.out_dir, config, setup)
    scheme = FiltersScheme(setup.base, setup.data.input_shape, pricing=study.pricing)
    genes = list(range(scheme.dim))
    groups = [genes[i:i + settings.group_size] for i in range(0, len(genes), settings.group_size)]
    images = setup.data.val if settings.eval_images is None else Split(setup.data.val.x[:settings.eval_images],
                                                                       setup.data.val.y[:settings.eval_images])
    lr, batch, seed = config.finetune_learning_rate, config.batch_size, config.seed
    besides = ("baselines", "schedules", "uniform_baseline")
    identity = {"recipe": "smoea", **{k: v for k, v in asdict(settings).items() if k not in besides}}
    checkpoint = file.out_dir / "checkpoints" / f"smoea_seed{seed}.pt"
    state = load_checkpoint(checkpoint)
    chosen, first = np.ones(scheme.dim), 0
    current = setup.base
    if state is not None:
        chosen, first = np.array(state["chosen"], dtype=np.float64), int(state["groups_done"])
        current = scheme.compress(setup.base, chosen)  # the structure; the weights come from the checkpoint
        current.load_state_dict(state["model"])
    for index in range(first, len(groups)):
        run_name = f"smoea-group{index}_seed{seed}"
        stored = study.open(run_name, identity)
        known = {key: (e.error, e.ratios["params"]) for key, e in stored.items()}

        def keep(key, genome, error, params, seconds, run_name=run_name):
            study.record_search(run_name, key, genome, error, {"params": params}, settings.eval_steps, seconds)

        if progress:
            print(f"SMOEA group {index + 1}/{len(groups)}: genes {[scheme.gene_names[g] for g in groups[index]]}",
                  file=sys.stderr, flush=True)
        problem = GroupProblem(scheme, current, chosen, groups[index], setup.data.train, images, settings, lr, batch,
                               seed + index, known, keep)
        floor = error_rate(current, images)
        if settings.search == "surrogate":
            search_group(problem, settings, seed + index)
        else:
            minimize(problem, NSGA2(pop_size=settings.pop_size, sampling=LHS(), eliminate_duplicates=True),
                     ("n_gen", settings.generations), seed=seed + index, verbose=False)
        keys = list(problem.known)
        F = np.array([problem.known[k] for k in keys])
        front = pareto_indices(F)
        pick = keys[front[choose(F[front], settings.choose, floor, settings.max_drop)]]
        chosen = np.array([float(g) for g in pick.split(",")])
        current = scheme.compress(current, chosen)
        if settings.group_steps:
            fit(current, setup.data.train, settings.group_steps, lr=lr, batch_size=batch, seed=seed + 100 + index)
        save_checkpoint(checkpoint, {"model": current.state_dict(), "chosen": chosen.tolist(),
                                     "groups_done": index + 1})
    steps = len(groups) * (settings.group_steps + settings.eval_steps)  # the kept path's training
    final_run = f"smoea_seed{seed}"
    done = study.open(final_run, identity)
    if "final" not in done:
        done["final"] = study.record(final_run, "final", current.eval(), steps, 0.0,
                                     {"channels": scheme.decode(chosen)}, genome=chosen)
    label = "SMOEA" if settings.search == "nsga2" else f"SMOEA, surrogate-assisted ({settings.surrogate})"
    rows = [study.row(done["final"], label, "group by group")]
    # what the method spent, beside what its model saw: every candidate's fine-tune too
    candidates = [e for index in range(len(groups))
                  for e in study.open(f"smoea-group{index}_seed{seed}", identity).values()]
    rows[0]["steps_spent"] = sum(e.steps for e in candidates) + len(groups) * settings.group_steps
    rows[0]["seconds_spent"] = round(sum(e.seconds for e in candidates), 2)  # the candidates' (groups' not timed)
    if settings.uniform_baseline:
        rows.append(_uniform(study, scheme, setup, rows[0]["params_ratio"], steps, lr, batch, seed))
    rows += study.baselines([rows[0]["params_ratio"]], steps, settings.baselines, settings.schedules, progress)
    searched = (f"NSGA-II {settings.pop_size} x {settings.generations}" if settings.search == "nsga2" else
                f"the {settings.surrogate.upper()} surrogate loop, "
                f"{settings.evaluations or max(3, settings.pop_size * settings.generations // 3)} evaluations")
    return write_outcome(file.out_dir, rows, f"SMOEA ({len(groups)} groups of up to {settings.group_size} layers, "
                         f"{searched} per group) beside L1-norm filter "
                         "pruning of the same share in every layer and global magnitude pruning, same steps.")


def _uniform(study: RecipeStudy, scheme: FiltersScheme, setup, params_ratio: float, steps: int, lr: float,
             batch: int, seed: int) -> dict:
    """L1-norm filter pruning with one gene for every layer, at the params ratio closest to ``params_ratio`` from
    below (bisection on the gene), fine-tuned ``steps`` from the dense model."""
    run_name = f"uniform-l1-filters_seed{seed}"
    done = study.open(run_name, {"baseline": "uniform L1 filters", "steps": steps})
    key = round(params_ratio, 6)
    if key not in done:
        low, high = 0.0, 1.0
        for _ in range(40):
            middle = (low + high) / 2
            if scheme.ratios(np.full(scheme.dim, middle))["params"] <= params_ratio:
                low = middle
            else:
                high = middle
        genome = np.full(scheme.dim, low)
        model = scheme.compress(setup.base, genome)
        started = time.perf_counter()
        fit(model, setup.data.train, steps, lr=lr, batch_size=batch, seed=seed + 1)
        done[key] = study.record(run_name, key, model.eval(), steps, time.perf_counter() - started,
                                 {"channels": scheme.decode(genome)}, genome=genome)
    return study.row(done[key], "uniform L1 filter pruning", "one-shot")
