"""Compression quality: the fronts found by the searches, each model fine-tuned further and scored on the test
split, beside global magnitude pruning of the dense model (and global pruning plus uniform 8-bit quantisation) at
the same compression ratios and the same total fine-tuning.

Global magnitude pruning is the usual strong baseline: one threshold over every compressed layer's weights, then
fine-tuning with the masks held fixed. With 8 bits, the kept weights are also quantised per output channel and
fine-tuned through the straight-through estimator. Both are built from this package's masked and quantised layers,
so their parameters, bytes (each layer in its smallest coding) and energy are counted exactly as the schemes'.

Each front model and each baseline is finished with every schedule asked for: ``one-shot`` (the evaluated model,
or the dense model pruned at once, fine-tuned further) and ``gradual`` (from the dense model to the target on Zhu
and Gupta's cubic schedule over the same steps, `surrogate_emo.schedule`). Each result is appended to
``quality/models.jsonl`` as it finishes, so an interrupted study resumes.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from joblib import Parallel, delayed  # noqa: E402

from surrogate_emo.compress import measure  # noqa: E402
from surrogate_emo.config import RunConfig  # noqa: E402
from surrogate_emo.errors import ConfigError  # noqa: E402
from surrogate_emo.report import write_csv  # noqa: E402
from surrogate_emo.schedule import cubic_share, segments  # noqa: E402
from surrogate_emo.schemes.unstructured import pricing_of, source_weight, weight_layer  # noqa: E402
from surrogate_emo.surgery import compressible_layers, replace_layer  # noqa: E402
from surrogate_emo.train import error_rate, fit, steps_for  # noqa: E402

SCHEDULES = ("one-shot", "gradual")
BASELINES = {"global-pruning": None, "global-pruning-8bit": 8}  # name -> weight bits (None: float32)
RATIOS = ("params", "bytes", "energy")


@dataclass
class QualityConfig:
    """The ``[quality]`` table of an experiment file."""

    methods: list[str] = field(default_factory=list)  # whose fronts are re-scored
    seed: int = 0  # the run of this seed, for every method: one dense base model, one pruning curve
    seeds: list[int] | None = None  # several seeds instead: each seed's runs re-scored beside its own base model
    final_finetune_epochs: float = 10.0  # extra fine-tuning of every front model before the test score
    min_compression: float = 2.0  # front models less compressed (in the runs' first objective) are left out
    max_models: int = 24  # per front, spread evenly in log compression, to bound the study's time
    schedules: list[str] = field(default_factory=lambda: ["one-shot"])  # how each model reaches its target
    baselines: list[str] = field(default_factory=lambda: ["global-pruning"])  # beside the fronts
    baseline_schedules: list[str] | None = None  # the baselines' schedules when not the fronts' (None: schedules)
    baseline_points: int = 0  # > 0: baselines at this many params ratios spread evenly (log) over the fronts' range
    baseline_compressions: list[float] = field(default_factory=list)  # more baselines, at these params compressions
    max_val_points: float | None = None  # only front models within this many points of the dense validation error

    def __post_init__(self) -> None:
        if self.baseline_points < 0:
            raise ConfigError(f"quality baseline_points must be >= 0, got {self.baseline_points}")
        if not all(isinstance(c, (int, float)) and c >= 1 for c in self.baseline_compressions):
            raise ConfigError("quality baseline_compressions must be params compressions (dense / compressed) >= 1, "
                              f"got {self.baseline_compressions}")
        if self.max_val_points is not None and not self.max_val_points >= 0:
            raise ConfigError(f"quality max_val_points must be a number >= 0 or left out, got {self.max_val_points}")
        if self.final_finetune_epochs < 0 or self.min_compression < 1 or self.max_models < 1:
            raise ConfigError("quality needs final_finetune_epochs >= 0, min_compression >= 1 and max_models >= 1; "
                              f"got {self.final_finetune_epochs}, {self.min_compression}, {self.max_models}")
        for key, known, given in (("schedules", SCHEDULES, self.schedules), ("baselines", BASELINES, self.baselines),
                                  ("baseline_schedules", SCHEDULES, self.schedules_of_baselines)):
            unknown = [name for name in given if name not in known]
            if unknown or (key != "baselines" and not given):
                raise ConfigError(f"quality {key} must be a list from {list(known)}, got {given}")
        if self.seeds is not None and (not self.seeds or not all(isinstance(s, int) for s in self.seeds)):
            raise ConfigError(f"quality seeds must be a non-empty list of integers or left out, got {self.seeds}")

    @property
    def seed_list(self) -> list[int]:
        """The seeds whose runs are re-scored."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    @property
    def schedules_of_baselines(self) -> list[str]:
        return list(self.baseline_schedules) if self.baseline_schedules is not None else list(self.schedules)


def global_magnitude_prune(model: nn.Module, layer_names: list[str], params_ratio: float,
                           bits: int | None = None) -> nn.Module:
    """A copy of ``model`` whose layers ``layer_names`` keep their largest-magnitude weights, one threshold for all
    (ties to the earlier layer and position), so that its parameters (kept weights, biases, the rest) are
    ``params_ratio`` of the dense model's; with ``bits`` the kept weights are quantised too. A layer already
    masked (a gradual schedule's earlier step) is pruned further from its kept weights.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> pruned = global_magnitude_prune(net, ["0", "2"], 0.5)
        >>> sum(p.numel() for p in net.parameters()), pruned[0].kept + pruned[2].kept + 3 + 2
        (23, 12)
    """
    pruned = copy.deepcopy(model)
    layers = {name: pruned.get_submodule(name) for name in layer_names}
    weights = {name: source_weight(layer) for name, layer in layers.items()}
    # a masked layer keeps its full weight as the parameter: the count is the dense model's either way
    total = sum(p.numel() for p in model.parameters())
    prunable = sum(w.numel() for w in weights.values())
    keep = round(params_ratio * total) - (total - prunable)
    if not 0 <= keep <= prunable:
        raise ConfigError(f"a params ratio of {params_ratio:.4g} needs {keep} of the {prunable} prunable weights")
    magnitudes = torch.cat([w.abs().flatten() for w in weights.values()])
    order = torch.sort(magnitudes, descending=True, stable=True).indices[:keep]
    flat = torch.zeros(magnitudes.numel(), dtype=torch.bool)
    flat[order] = True
    start = 0
    for name, weight in weights.items():
        mask = flat[start:start + weight.numel()].view(weight.shape)
        start += weight.numel()
        pruned = replace_layer(pruned, name, weight_layer(layers[name], weight, mask, bits))
    return pruned


def pruned_baseline(base: nn.Module, layer_names: list[str], params_ratio: float, bits: int | None, schedule: str,
                    data, steps: int, lr: float, batch_size: int, seed: int, updates: int = 20,
                    ramp: float = 0.75) -> nn.Module:
    """Global magnitude pruning (and ``bits``-bit quantisation) of ``base`` to ``params_ratio``, fine-tuned for
    ``steps``: at once (``one-shot``), or on the cubic schedule (``gradual``, as `surrogate_emo.schedule`)."""
    if schedule == "one-shot":
        model = global_magnitude_prune(base, layer_names, params_ratio, bits)
        fit(model, data, steps, lr=lr, batch_size=batch_size, seed=seed)
        return model
    model = base
    for k, (done, segment) in enumerate(segments(steps, updates, ramp)):
        model = global_magnitude_prune(model, layer_names, float(cubic_share(np.array(params_ratio), done)), bits)
        if segment > 0:
            fit(model, data, segment, lr=lr, batch_size=batch_size, seed=seed + k)
    return model


def spread_in_log(front: list, compressions: np.ndarray, limit: int) -> list:
    """At most ``limit`` items, evenly spaced in log compression (ends included)."""
    if len(front) <= limit:
        return front
    targets = np.linspace(np.log(compressions.min()), np.log(compressions.max()), limit)
    chosen = sorted({int(np.argmin(np.abs(np.log(compressions) - t))) for t in targets})
    return [front[i] for i in chosen]


def _done(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {tuple(r["key"]): r for r in rows}


def _schedule_key(schedule: str) -> tuple:
    """The schedule's part of a result's key: none for one-shot, so results recorded before schedules existed
    are found again."""
    return () if schedule == "one-shot" else (schedule,)


def ratios_of(costs, dense) -> dict[str, float]:
    return {f"{name}_ratio": getattr(costs, name) / getattr(dense, name) for name in RATIOS
            if getattr(costs, name) is not None and getattr(dense, name) is not None}


def quality_over_seeds(out_dir: Path, runs_per_seed: list[dict[str, RunConfig]], quality: QualityConfig,
                       jobs: int = 1) -> list[dict]:
    """Re-score the fronts of each seed's runs (one dict of method -> the run's config per seed) and prune that
    seed's dense model at their params ratios with each baseline and schedule; writes ``out_dir/quality/`` (one
    table of every row) and returns one row per model.

    With ``jobs > 1`` the methods' fronts, then the baselines' models, are made ``jobs`` at a time in worker
    processes (joblib). Every model is seeded on its own, so the rows do not depend on ``jobs``."""
    folder = out_dir / "quality"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [row for runs in runs_per_seed for row in _seed_rows(folder / "models.jsonl", runs, quality, jobs)]
    _write(folder, rows, quality)
    return rows


def _seed_rows(log: Path, runs: dict[str, RunConfig], quality: QualityConfig, jobs: int) -> list[dict]:
    configs = list(runs.values())
    if len({c.seed for c in configs}) != 1:
        raise ConfigError(f"the runs compared must share one seed (one base model); got {[c.seed for c in configs]}")
    fronts = _map(jobs, [delayed(_front_rows)(log, method, config, quality) for method, config in runs.items()])
    rows = [row for front in fronts for row in front]
    ratios = {round(row["params_ratio"], 6) for row in rows
              if 1 / row["params_ratio"] >= quality.min_compression}  # quantised alone: no pruning to match
    if quality.baseline_points and len(ratios) > quality.baseline_points:
        logs = np.log(sorted(ratios))
        ratios = {round(float(np.exp(x)), 6) for x in np.linspace(logs[0], logs[-1], quality.baseline_points)}
    ratios |= {round(1.0 / c, 6) for c in quality.baseline_compressions}  # beyond the fronts, where others reach
    config = configs[0]
    total_steps = _setup(config).evaluator.steps + _final_steps(config, quality)
    tasks = [(baseline, schedule, ratio) for baseline in quality.baselines
             for schedule in quality.schedules_of_baselines for ratio in sorted(ratios)]
    return rows + [row for row in _map(jobs, [delayed(_baseline_row)(log, config, total_steps, *task)
                                              for task in tasks]) if row is not None]


def _map(jobs: int, calls: list) -> list:
    """``calls`` (joblib ``delayed`` triples) in order: here with one job, else in ``jobs`` worker processes."""
    if jobs == 1 or len(calls) < 2:
        return [function(*args, **kwargs) for function, args, kwargs in calls]
    return list(Parallel(n_jobs=min(jobs, len(calls)))(calls))


@functools.lru_cache(maxsize=8)
def _prepared(key: str):
    from surrogate_emo.pipeline import prepare

    return prepare(RunConfig(**json.loads(key)))


def _setup(config: RunConfig):
    """The run's data, base model and scheme, once per process."""
    return _prepared(json.dumps(config.to_dict(), sort_keys=True, default=str))


def _final_steps(config: RunConfig, quality: QualityConfig) -> int:
    if not quality.final_finetune_epochs:
        return 0
    return steps_for(quality.final_finetune_epochs, len(_setup(config).data.train), config.batch_size)


def _append(log: Path, key: tuple, row: dict) -> dict:
    """Add a finished model to the study's log at once (one short line: appends from workers do not interleave)."""
    row = {"key": list(key), **row}
    with log.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return row


def _front_rows(log: Path, method: str, config: RunConfig, quality: QualityConfig) -> list[dict]:
    """Every chosen front model of one method's run, with each schedule: from the log, or made now."""
    from surrogate_emo.compare import load_run
    from surrogate_emo.pipeline import final_model, front_evaluations

    setup, done, rows = _setup(config), _done(log), []
    # the search's fine-tune and the final one: what every pruned model gets too
    total_steps = setup.evaluator.steps + _final_steps(config, quality)
    evaluations, memo = load_run(config.run_dir, config.name), {}
    cheap = config.objectives[0]  # what the search compressed: the fronts are read along it
    front = [e for e in front_evaluations(setup, evaluations)
             if 1 / setup.scheme.ratios(e.genome)[cheap] >= quality.min_compression
             and (quality.max_val_points is None
                  or e.error <= setup.dense_val_error + quality.max_val_points / 100 + 1e-12)]
    front = spread_in_log(front, np.array([1 / setup.scheme.ratios(e.genome)[cheap] for e in front]),
                          quality.max_models)
    for schedule in quality.schedules:
        final = RunConfig(**{**config.to_dict(), "final_schedule": schedule})
        for evaluation in front:
            key = ("search", method, config.seed, evaluation.trial, quality.final_finetune_epochs,
                   *_schedule_key(schedule))
            if key not in done:
                started = time.perf_counter()
                model, _ = final_model(setup, evaluation, final, epochs=quality.final_finetune_epochs,
                                       history=evaluations, memo=memo)
                done[key] = _append(log, key, {
                    "kind": "search", "method": method, "scheme": config.scheme, "schedule": schedule,
                    "seed": config.seed, "trial": evaluation.trial,
                    **ratios_of(setup.scheme.costs(evaluation.genome), setup.scheme.dense),
                    "val_error_search": evaluation.error, "test_error": error_rate(model, setup.data.test),
                    "dense_test_error": setup.dense_test_error, "finetune_steps": total_steps,
                    "seconds": round(time.perf_counter() - started, 2)})  # the final fine-tune's, not the search's
            rows.append(done[key])
    return rows


def _baseline_row(log: Path, config: RunConfig, total_steps: int, baseline: str, schedule: str,
                  ratio: float) -> dict | None:
    """One global-pruning model: from the log, or made now; None below what the biases alone hold."""
    bits = BASELINES[baseline]
    key = ("pruning", "global magnitude" + (f" + {bits}-bit" if bits else ""), config.seed, ratio, total_steps,
           *_schedule_key(schedule))
    done = _done(log)
    if key in done:
        return done[key]
    setup = _setup(config)
    layer_names = list(compressible_layers(setup.base))
    pricing = pricing_of(config)
    started = time.perf_counter()
    try:
        model = pruned_baseline(setup.base, layer_names, ratio, bits, schedule, setup.data.train, total_steps,
                                config.finetune_learning_rate, config.batch_size, config.seed + 1)
    except ConfigError:  # a ratio below what the biases alone hold: nothing to prune to
        return None
    return _append(log, key, {
        "kind": "pruning", "method": "global magnitude pruning" + (f" + {bits}-bit" if bits else ""),
        "scheme": baseline, "schedule": schedule, "seed": config.seed, "trial": None,
        **ratios_of(measure(model, setup.data.input_shape, pricing), measure(setup.base, setup.data.input_shape,
                                                                            pricing)),
        "val_error_search": None, "test_error": error_rate(model, setup.data.test),
        "dense_test_error": setup.dense_test_error, "finetune_steps": total_steps,
        "seconds": round(time.perf_counter() - started, 2)})


def best_compression(rows: list[dict], points: float, ratio: str = "params") -> float | None:
    """Highest compression (dense / compressed ``ratio``: params, bytes or energy) among ``rows`` whose test error is
    at most ``points`` percentage points above dense."""
    key = f"{ratio}_ratio"
    fine = [1 / r[key] for r in rows if key in r and r["test_error"] <= r["dense_test_error"] + points / 100 + 1e-12]
    return max(fine) if fine else None


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}x"


def _write(folder: Path, rows: list[dict], quality: QualityConfig) -> None:
    write_quality(folder, rows, f"Each front model fine-tuned {quality.final_finetune_epochs:g} more epochs and scored "
                  "on the test split; global magnitude pruning of the dense model (and with 8 bits) at the same params "
                  "ratios with the same total fine-tuning.")


def write_quality(folder: Path, rows: list[dict], intro: str, stem: str = "quality") -> None:
    """``models.csv``, ``<stem>.md`` (compression at +1 and +2 points of test error per method and schedule,
    after ``intro``) and ``<stem>.png`` (test error against compression) of ``rows``: dicts with ``method``,
    ``schedule``, ``seed``, ``test_error``, ``dense_test_error``, ``finetune_steps`` and the ``<ratio>_ratio``s."""
    write_csv(folder / "models.csv", [{k: v for k, v in r.items() if k != "key"} for r in rows])
    groups = list(dict.fromkeys((r["method"], r.get("schedule", "one-shot")) for r in rows))
    lines = [f"{intro} Compression is dense / compressed: parameters, bytes as stored (each layer in its "
             "smallest coding), accelerator energy. A dash: no model within the bound, or not counted.",
             "", "| method | schedule | seed | models | dense test error | params at +1 pt | bytes at +1 pt | "
             "energy at +1 pt | params at +2 pt | bytes at +2 pt | energy at +2 pt | fine-tuning steps per model |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, schedule in groups:
        for seed in sorted({r["seed"] for r in rows if r["method"] == method}):
            mine = [r for r in rows if r["method"] == method and r.get("schedule", "one-shot") == schedule
                    and r["seed"] == seed]
            if not mine:
                continue
            cells = [_cell(best_compression(mine, points, ratio)) for points in (1.0, 2.0) for ratio in RATIOS]
            lines.append(f"| {method} | {schedule} | {seed} | {len(mine)} | {100 * mine[0]['dense_test_error']:.2f}% | "
                         + " | ".join(cells) + f" | {mine[0]['finetune_steps']} |")
    (folder / f"{stem}.md").write_text("\n".join(lines) + "\n")
    shown = [ratio for ratio in ("params", "bytes") if any(f"{ratio}_ratio" in r for r in rows)]
    fig, axes = plt.subplots(1, len(shown), figsize=(6.5 * len(shown), 4.4), squeeze=False)
    dense = 100 * rows[0]["dense_test_error"] if rows else None
    colors = {method: f"C{index % 10}" for index, method in enumerate(dict.fromkeys(m for m, _ in groups))}
    for ax, ratio in zip(axes[0], shown):
        for method, schedule in groups:  # one colour per method; solid one-shot, dashed gradual
            mine = sorted((r for r in rows if r["method"] == method and r.get("schedule", "one-shot") == schedule
                           and f"{ratio}_ratio" in r), key=lambda r: r[f"{ratio}_ratio"])
            if mine:
                ax.plot([1 / r[f"{ratio}_ratio"] for r in mine], [100 * r["test_error"] for r in mine],
                        "o-" if schedule == "one-shot" else "s--", ms=3, color=colors[method],
                        label=f"{method} ({schedule})")
        if dense is not None:
            ax.axhline(dense, color="gray", lw=0.8, label="dense")
            ax.axhline(dense + 1, color="gray", lw=0.8, ls="--", label="dense + 1 pt")
            ax.axhline(dense + 2, color="gray", lw=0.8, ls=":", label="dense + 2 pt")
            ax.set_ylim(dense - 1, dense + 6)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        ax.set_xlabel(f"compression: dense {ratio} / compressed {ratio} (log scale)")
        ax.set_ylabel("test error %")
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / f"{stem}.png", dpi=110)
    plt.close(fig)
