"""OLMP: optimisation-based layer-wise magnitude pruning (Li, Qian, Jiang and Tang, IJCAI 2018).

Each prunable layer ``l`` has a crate ``c_l``; its threshold is ``t_l = max(mu_l + c_l sigma_l, 0)`` with
``mu_l``, ``sigma_l`` the mean and standard deviation of ``|w|`` of the dense layer. Masks follow Dynamic Network
Surgery (`surrogate_emo.compress.masks`: masked at ``|w| <= 0.9 t``, spliced back at ``|w| > 1.1 t``, masked
weights still trained). The pipeline ("prune and adjust") trains for ``iterations`` steps; at step ``i`` each layer
is picked with probability ``(1 + gamma i)^-1`` and re-masked with its crate; every ``ncs_every`` steps
Negatively Correlated Search (`surrogate_emo.search.ncs`) re-optimises the crates of the layers picked then:

    minimise  kept weights / prunable weights
    subject to  accuracy on one training mini-batch >= the dense model's accuracy on it - delta

(an infeasible crate vector scores ``infeasible``, 1.1 as in the paper; no training inside an evaluation, one
forward pass). From ``prune_until`` on, the masks are fixed and training goes on. One run gives the smallest model
within ``delta``; several deltas give a front.

Where this departs from the paper, and why:

* Adam at the run's fine-tuning learning rate and batch size instead of Caffe's SGD schedule, so that the global
  magnitude pruning it is compared with gets exactly the same training.
* The reference accuracy of the constraint is the dense model's on the same mini-batch (the paper's "accuracy
  before pruning"), so the constraint cannot drift by ``delta`` at every call.
* Crates start at 0 and NCS starts from the current crates. When no crate vector NCS tried is feasible, the
  crates stay as they were.
* NCS is the paper's (parents replaced), not the released code's, whose parents are never replaced.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from torch import nn

from surrogate_emo.compress.masks import magnitude_stats, mask_model, masked_layers
from surrogate_emo.data import DataSplits
from surrogate_emo.errors import ConfigError, FineTuneDiverged
from surrogate_emo.recipes.base import RecipeFile, load_checkpoint, save_checkpoint
from surrogate_emo.recipes.outcome import RecipeStudy, write_outcome
from surrogate_emo.search.ncs import NCS
from surrogate_emo.surgery import compressible_layers


@dataclass
class Settings:
    """The ``[olmp]`` table of a recipe file. Defaults are the paper's for the LeNets."""

    deltas: list[float] = field(default_factory=lambda: [0.08])  # allowed accuracy drop; one model per delta
    iterations: int = 30001  # training steps of prune-and-adjust
    prune_until: int = 15000  # masks fixed from this step on
    ncs_every: int = 1000  # steps between two NCS calls
    gamma_linear: float = 2e-4  # a Linear layer is picked with probability (1 + gamma step)^-1
    gamma_conv: float = 2e-5  # a Conv2d layer likewise
    crate_max: float = 10.0  # crates in [0, crate_max] (the paper: 10 for LeNet-300-100, 20 for LeNet-5)
    ncs_pop: int = 10
    ncs_evaluations: int = 1600  # per NCS call
    ncs_sigma: float = 0.1  # NCS's initial step, as a fraction of crate_max
    ncs_r: float = 0.99  # NCS's 1/5-rule factor
    constraint_batch: int = 64  # training images in the constraint's mini-batch
    infeasible: float = 1.1  # the fitness of a crate vector that breaks the constraint
    baselines: list[str] = field(default_factory=lambda: ["global-pruning"])  # beside it, same steps
    schedules: list[str] = field(default_factory=lambda: ["one-shot", "gradual"])  # of the baselines
    baseline_ratios: list[float] = field(default_factory=list)  # params ratios beyond the models' own

    def __post_init__(self) -> None:
        if not self.deltas or not all(isinstance(d, (int, float)) and 0 <= d < 1 for d in self.deltas):
            raise ConfigError(f"olmp deltas must be accuracy drops in [0, 1), e.g. [0.02, 0.08]; got {self.deltas}")
        if not 0 <= self.prune_until <= self.iterations or self.ncs_every < 1:
            raise ConfigError("olmp needs 0 <= prune_until <= iterations and ncs_every >= 1; got "
                              f"{self.prune_until}, {self.iterations}, {self.ncs_every}")
        if not self.crate_max > 0 or self.ncs_evaluations < self.ncs_pop or self.constraint_batch < 1:
            raise ConfigError("olmp needs crate_max > 0, ncs_evaluations >= ncs_pop and constraint_batch >= 1; got "
                              f"{self.crate_max}, {self.ncs_evaluations}, {self.constraint_batch}")


class CrateProblem(Problem):
    """The crates of some layers, minimising the kept fraction of all prunable weights under the accuracy bound.

    Evaluating sets the masks of ``model``'s picked layers as DNS would (from their current masks); the masks
    are restored by `restore`.
    """

    def __init__(self, model: nn.Module, picked: list[str], stats: dict[str, tuple[float, float]], images, labels,
                 floor: float, infeasible: float, crate_max: float) -> None:
        super().__init__(n_var=len(picked), n_obj=1, xl=0.0, xu=crate_max)
        layers = masked_layers(model)
        self.model, self.layers = model, [layers[name] for name in picked]
        self.stats = [stats[name] for name in picked]
        self.saved = [layer.mask.clone() for layer in self.layers]
        self.magnitudes = [layer.weight.detach().abs() for layer in self.layers]
        self.total = sum(layer.mask.numel() for layer in layers.values())
        self.others = sum(layer.kept for name, layer in layers.items() if name not in picked)
        self.images, self.labels, self.floor, self.infeasible = images, labels, floor, infeasible

    @torch.no_grad()
    def _evaluate(self, X, out, *args, **kwargs):
        fitness = []
        for crates in X:
            kept = self.others
            for layer, saved, magnitude, (mu, sigma), crate in zip(self.layers, self.saved, self.magnitudes,
                                                                   self.stats, crates):
                threshold = max(mu + crate * sigma, 0.0)
                layer.mask.copy_((saved & (magnitude > 0.9 * threshold)) | (magnitude > 1.1 * threshold))
                kept += int(layer.mask.sum())
            accuracy = float((self.model(self.images).argmax(dim=1) == self.labels).float().mean())
            fitness.append(kept / self.total if accuracy >= self.floor - 1e-9 else self.infeasible)
        out["F"] = np.array(fitness)[:, None]

    def restore(self) -> None:
        for layer, saved in zip(self.layers, self.saved):
            layer.mask.copy_(saved)


def _threshold(stats: tuple[float, float], crate: float) -> float:
    mu, sigma = stats
    return max(mu + crate * sigma, 0.0)


class _Batches:
    """The indices of any training step: epochs are permutations seeded by (seed, epoch), so a step's batch is
    known without replaying the ones before (a resumed run trains on the same batches)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = math.ceil(n / batch_size)
        self.epoch, self.order = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self.epoch, self.order = epoch, torch.randperm(self.n, generator=generator)
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]


def prune_and_adjust(base: nn.Module, data: DataSplits, settings: Settings, delta: float, lr: float, batch_size: int,
                     seed: int, checkpoint: Path | None = None,
                     progress: Callable[[int], None] | None = None) -> tuple[nn.Module, dict]:
    """OLMP's pipeline from the dense ``base`` (left untouched) for one ``delta``; returns the pruned model (masks
    fixed) and what happened (final crates, NCS calls, seconds).

    With ``checkpoint``, the state is saved there at every NCS step (every ``ncs_every`` steps) and a saved state
    is taken up again, so an interrupted call resumes and ends with the same model. ``progress`` is called with
    the steps done after every step (it may raise to stop the run: what was saved stays).
    """
    names = list(compressible_layers(base))
    if not names:
        raise ConfigError(f"OLMP prunes Linear and Conv2d layers; {type(base).__name__} has none")
    model = mask_model(base, {name: 1.0 for name in names}, recovery=True)
    layers = masked_layers(model)
    stats = {name: magnitude_stats(layers[name].weight) for name in names}  # of the dense layers, once
    gammas = np.array([settings.gamma_conv if isinstance(base.get_submodule(n), nn.Conv2d) else settings.gamma_linear
                       for n in names])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    crates, step, calls = np.zeros(len(names)), 0, 0
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        step, calls, crates = int(state["step"]), int(state["calls"]), np.array(state["crates"], dtype=np.float64)
        if step >= settings.prune_until:
            _fix_masks(model)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        optimizer.load_state_dict(state["optimizer"])
    loss_fn = nn.CrossEntropyLoss()
    batches = _Batches(len(data.train), batch_size, seed)
    started = time.perf_counter()
    while step < settings.iterations:
        block, offset = divmod(step, settings.ncs_every)
        if offset == 0 or state is not None:  # a block starts (or resumes): its draws are known from its number
            rng = np.random.default_rng([seed, block])
            picks = rng.random((settings.ncs_every, len(names)))
            constraint = torch.from_numpy(rng.choice(len(data.train), settings.constraint_batch, replace=False))
            state = None
        if offset == 0 and checkpoint is not None:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                         "step": step, "calls": calls, "crates": crates.tolist()})
        if step == settings.prune_until:
            _fix_masks(model)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)  # moments gathered under DNS would move zeros
        if step < settings.prune_until:
            picked = picks[offset] < 1.0 / (1.0 + gammas * step)
            if offset == 0 and picked.any():
                chosen = [n for n, p in zip(names, picked) if p]
                crates[picked] = _search_crates(model, base, chosen, stats, crates[picked], data, constraint,
                                                delta, settings, seed=int(rng.integers(2**31)))
                calls += 1
            for name, crate in zip(np.array(names)[picked], crates[picked]):
                layers[name].update_mask(_threshold(stats[name], float(crate)))
        model.train()
        batch = batches(step)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(data.train.x[batch]), data.train.y[batch])
        if not torch.isfinite(loss):
            raise FineTuneDiverged(f"OLMP's loss became {loss.item()} at step {step}; lower the learning rate")
        loss.backward()
        optimizer.step()
        step += 1
        if progress is not None:
            progress(step)
    _fix_masks(model)
    model.eval()
    kept = {name: layer.kept / layer.mask.numel() for name, layer in layers.items()}
    return model, {"crates": crates.tolist(), "ncs_calls": calls, "kept": kept,
                   "seconds_this_session": time.perf_counter() - started}


def _fix_masks(model: nn.Module) -> None:
    for layer in masked_layers(model).values():
        layer.recovery = False  # masked weights zeroed: they stay zero


@torch.no_grad()
def _search_crates(model: nn.Module, base: nn.Module, picked: list[str], stats, start: np.ndarray, data: DataSplits,
                   constraint: torch.Tensor, delta: float, settings: Settings, seed: int) -> np.ndarray:
    """NCS over the crates of ``picked`` from ``start``; the best feasible crates found, else ``start``."""
    images, labels = data.train.x[constraint], data.train.y[constraint]
    base.eval()
    model.eval()
    floor = float((base(images).argmax(dim=1) == labels).float().mean()) - delta
    problem = CrateProblem(model, picked, stats, images, labels, floor, settings.infeasible, settings.crate_max)
    try:
        result = minimize(problem, NCS(pop_size=settings.ncs_pop, sigma=settings.ncs_sigma, r=settings.ncs_r,
                                       x0=np.clip(start, 0.0, settings.crate_max)),
                          ("n_evals", settings.ncs_evaluations), seed=seed, verbose=False)
    finally:
        problem.restore()
    if result.F[0] >= settings.infeasible:
        return start
    return np.asarray(result.X, dtype=np.float64)


def progress_printer(total: int, label: str) -> Callable[[int], None]:
    """A progress callback printing one line every tenth of the steps to stderr."""
    every = max(1, total // 10)

    def show(step: int) -> None:
        if step % every == 0 or step == total:
            print(f"{label}: step {step}/{total}", file=sys.stderr, flush=True)

    return show


def run(file: RecipeFile, progress: bool = True) -> dict:
    """OLMP for every delta of the file, then global magnitude pruning beside it with the same steps; writes the
    study, the models, ``summary.md`` and ``summary.png`` under ``file.out_dir``. Rerun to resume."""
    from surrogate_emo.pipeline import prepare

    config, settings = file.run_config(), file.recipe_settings()
    config.progress, config.warm_start = progress, False  # each model starts from the dense one
    setup = prepare(config)
    study = RecipeStudy(file.out_dir, config, setup)
    name = f"olmp_seed{config.seed}"
    besides = ("deltas", "baselines", "schedules", "baseline_ratios")  # more of them extend the run
    done = study.open(name, {"recipe": "olmp", **{k: v for k, v in asdict(settings).items() if k not in besides}})
    rows = []
    for delta in settings.deltas:
        key = float(delta)
        if key not in done:
            checkpoint = file.out_dir / "checkpoints" / f"{name}-delta{key:g}.pt"
            label = f"OLMP delta {key:g}"
            started = time.perf_counter()
            model, info = prune_and_adjust(setup.base, setup.data, settings, key, config.finetune_learning_rate,
                                           config.batch_size, config.seed, checkpoint,
                                           progress_printer(settings.iterations, label) if progress else None)
            done[key] = study.record(name, key, model, settings.iterations, time.perf_counter() - started,
                                     {"delta": key, "crates": info["crates"], "ncs_calls": info["ncs_calls"]})
            checkpoint.unlink(missing_ok=True)
        rows.append(study.row(done[key], "OLMP", "prune and adjust"))
    ratios = [row["params_ratio"] for row in rows] + list(settings.baseline_ratios)
    rows += study.baselines(ratios, settings.iterations, settings.baselines, settings.schedules, progress)
    return write_outcome(file.out_dir, rows, f"OLMP (prune and adjust, {settings.iterations} steps, one model per "
                         "delta) and global magnitude pruning of the dense model with the same steps, scored on the "
                         "test split.")
