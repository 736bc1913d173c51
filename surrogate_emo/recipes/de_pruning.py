"""Layer-wise weight pruning by differential evolution, with a sensitivity analysis and random recovery
(Sensors 21(3):880, 2021).

1. Sensitivity analysis: each prunable layer pruned alone at increasing fractions (its smallest weights), the
   accuracy drop on the scoring images recorded (``sensitivity.csv``, ``sensitivity.png``).
2. ``rounds`` rounds of: pymoo's differential evolution over one sensitivity ``s_l`` per layer, a layer keeping
   the weights with ``|w| > s_l std(w_l)`` (Han et al.'s threshold; ``std`` over the layer's current weights,
   pruned ones as zeros); then fine-tuning with the masks fixed, except that every ``recover_every`` steps a
   random ``recovery_rate`` of each layer's removed connections is given back (at zero, free to grow).

The paper does not give DE's fitness, settings or recovery rate. Ours, all config keys: a candidate scores its
kept fraction of the prunable weights when the error on the scoring images is at most ``max_drop`` above the dense
model's, else ``1 +`` its excess (so that DE is led back to the bound); DE/rand/1/bin with F 0.5 and CR 0.9,
population 20 for 30 generations per round; sensitivities in ``[0, s_max]``; one model per ``max_drop``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from pymoo.algorithms.soo.nonconvex.de import DE  # noqa: E402
from pymoo.core.problem import ElementwiseProblem  # noqa: E402
from pymoo.optimize import minimize  # noqa: E402
from torch import nn  # noqa: E402

from surrogate_emo.compress.masks import mask_model, masked_layers  # noqa: E402
from surrogate_emo.data import Split  # noqa: E402
from surrogate_emo.errors import ConfigError  # noqa: E402
from surrogate_emo.recipes.base import RecipeFile, load_checkpoint, save_checkpoint  # noqa: E402
from surrogate_emo.recipes.outcome import RecipeStudy, write_outcome  # noqa: E402
from surrogate_emo.report import write_csv  # noqa: E402
from surrogate_emo.surgery import compressible_layers  # noqa: E402
from surrogate_emo.train import error_rate, fit  # noqa: E402


@dataclass
class Settings:
    """The ``[de]`` table of a recipe file."""

    max_drops: list[float] = field(default_factory=lambda: [0.01])  # error above dense allowed; one model each
    fractions: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    rounds: int = 5
    round_steps: int = 2000  # fine-tuning steps after each round's pruning
    s_max: float = 3.0
    pop_size: int = 20
    generations: int = 30
    F: float = 0.5
    CR: float = 0.9
    eval_images: int | None = 2000  # validation images scoring candidates (None: all)
    recovery_rate: float = 0.01  # of each layer's removed connections, given back every recover_every steps
    recover_every: int = 200
    baselines: list[str] = field(default_factory=lambda: ["global-pruning"])
    schedules: list[str] = field(default_factory=lambda: ["one-shot", "gradual"])
    baseline_ratios: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.max_drops or not all(0 <= d < 1 for d in self.max_drops):
            raise ConfigError(f"de max_drops must be error increases in [0, 1), got {self.max_drops}")
        if not all(0 < f < 1 for f in self.fractions):
            raise ConfigError(f"de fractions must be pruned fractions in (0, 1), got {self.fractions}")
        if self.rounds < 1 or self.round_steps < 0 or self.recover_every < 1 or not 0 <= self.recovery_rate <= 1:
            raise ConfigError("de needs rounds >= 1, round_steps >= 0, recover_every >= 1 and recovery_rate in "
                              f"[0, 1]; got {self.rounds}, {self.round_steps}, {self.recover_every}, "
                              f"{self.recovery_rate}")
        if not self.s_max > 0 or self.pop_size < 4 or self.generations < 1:
            raise ConfigError(f"de needs s_max > 0, pop_size >= 4 and generations >= 1; got {self.s_max}, "
                              f"{self.pop_size}, {self.generations}")


def sensitivity(base: nn.Module, names: list[str], fractions: list[float], images: Split) -> list[dict]:
    """Each layer of ``base`` pruned alone at each fraction (its smallest weights): the error increase on
    ``images``."""
    dense = error_rate(base, images)
    rows = []
    for name in names:
        for fraction in fractions:
            pruned = mask_model(base, {name: 1.0 - fraction})
            rows.append({"layer": name, "pruned_fraction": fraction,
                         "error_increase": error_rate(pruned, images) - dense})
    return rows


def plot_sensitivity(rows: list[dict], path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == name]
        ax.plot([r["pruned_fraction"] for r in mine], [100 * r["error_increase"] for r in mine], "o-", ms=3,
                label=name)
    ax.set_xlabel("fraction of the layer's weights pruned (that layer alone, no fine-tuning)")
    ax.set_ylabel("error increase on validation images (points)")
    ax.grid(alpha=0.3)
    ax.legend(title="layer", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class SensitivityProblem(ElementwiseProblem):
    """One sensitivity per layer -> the kept fraction of all prunable weights, bounded in error (see the module)."""

    def __init__(self, model: nn.Module, images: Split, floor: float, max_drop: float, s_max: float) -> None:
        self.layers = list(masked_layers(model).values())
        super().__init__(n_var=len(self.layers), n_obj=1, xl=0.0, xu=s_max)
        self.model, self.images, self.floor, self.max_drop = model, images, floor, max_drop
        self.saved = [layer.mask.clone() for layer in self.layers]
        with torch.no_grad():
            self.magnitudes = [(layer.weight * layer.mask).abs() for layer in self.layers]
            self.stds = [float((layer.weight * layer.mask).std(correction=0)) for layer in self.layers]
        self.total = sum(layer.mask.numel() for layer in self.layers)

    def apply(self, s: np.ndarray) -> int:
        """Set the masks for sensitivities ``s`` (pruned ones stay pruned); returns the weights kept."""
        kept = 0
        with torch.no_grad():
            for layer, saved, magnitude, std, value in zip(self.layers, self.saved, self.magnitudes, self.stds, s):
                layer.mask.copy_(saved & (magnitude > value * std))
                kept += int(layer.mask.sum())
        return kept

    def _evaluate(self, x, out, *args, **kwargs):
        kept = self.apply(x)
        excess = error_rate(self.model, self.images) - self.floor - self.max_drop
        out["F"] = kept / self.total if excess <= 1e-12 else 1.0 + excess

    def restore(self) -> None:
        with torch.no_grad():
            for layer, saved in zip(self.layers, self.saved):
                layer.mask.copy_(saved)


def _recover(model: nn.Module, rate: float, generator: torch.Generator) -> None:
    """Give back a random ``rate`` of each layer's removed connections (at zero weight)."""
    with torch.no_grad():
        for layer in masked_layers(model).values():
            removed = torch.nonzero(~layer.mask.flatten()).flatten()
            count = int(round(rate * removed.numel()))
            if count:
                chosen = removed[torch.randperm(removed.numel(), generator=generator)[:count]]
                layer.mask.view(-1)[chosen] = True


def de_pruning(base: nn.Module, data, settings: Settings, max_drop: float, lr: float, batch_size: int, seed: int,
               checkpoint=None, progress=None) -> tuple[nn.Module, dict]:
    """The rounds of DE pruning and fine-tuning with random recovery from the dense ``base`` (left untouched) for one
    ``max_drop``; checkpointed after every round, so an interrupted call resumes to the same model."""
    names = list(compressible_layers(base))
    if not names:
        raise ConfigError(f"DE pruning prunes Linear and Conv2d layers; {type(base).__name__} has none")
    images = data.val if settings.eval_images is None else Split(data.val.x[:settings.eval_images],
                                                                 data.val.y[:settings.eval_images])
    floor = error_rate(base, images)
    model = mask_model(base, {name: 1.0 for name in names})
    first, history = 0, []
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        first, history = int(state["round"]), list(state["history"])
    for round_ in range(first, settings.rounds):
        problem = SensitivityProblem(model, images, floor, max_drop, settings.s_max)
        result = minimize(problem, DE(pop_size=settings.pop_size, variant="DE/rand/1/bin", F=settings.F,
                                      CR=settings.CR), ("n_gen", settings.generations),
                          seed=seed * 1000 + round_, verbose=False)
        best = np.asarray(result.X, dtype=np.float64)
        if result.F[0] > 1.0:  # nothing within the bound: this round prunes nothing more
            best = np.zeros_like(best)
        kept = problem.apply(best)
        generator = torch.Generator().manual_seed(seed * 1000 + round_)
        done = 0
        while done < settings.round_steps:
            segment = min(settings.recover_every, settings.round_steps - done)
            fit(model, data.train, segment, lr=lr, batch_size=batch_size, seed=seed * 1000 + round_ * 97 + done)
            done += segment
            if done < settings.round_steps:
                _recover(model, settings.recovery_rate, generator)
        history.append({"round": round_ + 1, "sensitivities": best.tolist(), "kept_after_pruning": kept,
                        "kept_after_recovery": sum(layer.kept for layer in masked_layers(model).values())})
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "round": round_ + 1, "history": history})
        if progress is not None:
            progress(round_ + 1)
    return model.eval(), {"rounds": history}


def run(file: RecipeFile, progress: bool = True) -> dict:
    """The sensitivity analysis, DE pruning for every max_drop, and global magnitude pruning beside it with the
    same steps; rerun to resume."""
    from surrogate_emo.pipeline import prepare

    config, settings = file.run_config(), file.recipe_settings()
    config.progress, config.warm_start = progress, False
    setup = prepare(config)
    study = RecipeStudy(file.out_dir, config, setup)
    names = list(compressible_layers(setup.base))
    images = setup.data.val if settings.eval_images is None else Split(setup.data.val.x[:settings.eval_images],
                                                                       setup.data.val.y[:settings.eval_images])
    if not (file.out_dir / "sensitivity.csv").is_file():
        rows = sensitivity(setup.base, names, settings.fractions, images)
        write_csv(file.out_dir / "sensitivity.csv", rows)
        plot_sensitivity(rows, file.out_dir / "sensitivity.png")
    name = f"de_seed{config.seed}"
    besides = ("max_drops", "baselines", "schedules", "baseline_ratios", "fractions")
    done = study.open(name, {"recipe": "de", **{k: v for k, v in asdict(settings).items() if k not in besides}})
    steps = settings.rounds * settings.round_steps
    rows = []
    for max_drop in settings.max_drops:
        key = float(max_drop)
        if key not in done:
            checkpoint = file.out_dir / "checkpoints" / f"{name}-drop{key:g}.pt"
            show = (lambda r, k=key: print(f"DE pruning, max drop {k:g}: round {r}/{settings.rounds}",
                                           file=sys.stderr, flush=True)) if progress else None
            started = time.perf_counter()
            model, info = de_pruning(setup.base, setup.data, settings, key, config.finetune_learning_rate,
                                     config.batch_size, config.seed, checkpoint, show)
            done[key] = study.record(name, key, model, steps, time.perf_counter() - started,
                                     {"max_drop": key, "rounds": info["rounds"]})
            checkpoint.unlink(missing_ok=True)
        rows.append(study.row(done[key], "DE layer-wise pruning", f"{settings.rounds} rounds + recovery"))
    ratios = [row["params_ratio"] for row in rows] + list(settings.baseline_ratios)
    rows += study.baselines(ratios, steps, settings.baselines, settings.schedules, progress)
    return write_outcome(file.out_dir, rows, f"DE layer-wise pruning ({settings.rounds} rounds of DE then "
                         f"{settings.round_steps} fine-tuning steps with random recovery, one model per max drop) and "
                         "global magnitude pruning of the dense model with the same steps, scored on the test split.")
