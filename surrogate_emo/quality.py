"""Compression quality: the fronts found by the searches, each model fine-tuned further and scored on the test
split, beside global magnitude pruning of the dense model at the same compression ratios and the same total
fine-tuning.

Global magnitude pruning is the usual strong baseline: one threshold over every compressed layer's weights
(``torch.nn.utils.prune.global_unstructured`` with L1 magnitude), then fine-tuning with the mask held fixed.
Each result is appended to ``quality/models.jsonl`` as it finishes, so an interrupted study resumes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

from surrogate_emo.config import RunConfig  # noqa: E402
from surrogate_emo.errors import ConfigError  # noqa: E402
from surrogate_emo.report import write_csv  # noqa: E402
from surrogate_emo.train import error_rate, fit, steps_for  # noqa: E402


@dataclass
class QualityConfig:
    """The ``[quality]`` table of an experiment file."""

    methods: list[str] = field(default_factory=list)  # whose fronts are re-scored
    seed: int = 0  # the run of this seed, for every method: one dense base model, one pruning curve
    final_finetune_epochs: float = 10.0  # extra fine-tuning of every front model before the test score
    min_compression: float = 2.0  # front models below this are left out: the flat end, where nothing differs
    max_models: int = 24  # per front, spread evenly in log compression, to bound the study's time

    def __post_init__(self) -> None:
        if self.final_finetune_epochs < 0 or self.min_compression < 1 or self.max_models < 1:
            raise ConfigError("quality needs final_finetune_epochs >= 0, min_compression >= 1 and max_models >= 1; "
                              f"got {self.final_finetune_epochs}, {self.min_compression}, {self.max_models}")


def global_magnitude_prune(model: nn.Module, layer_names: list[str], params_ratio: float) -> nn.Module:
    """A copy of ``model`` whose compressed layers keep their largest-magnitude weights, one threshold for all,
    so that its parameters (non-zero weights, biases, the rest) are ``params_ratio`` of the dense count."""
    pruned = copy.deepcopy(model)
    modules = dict(pruned.named_modules())
    targets = [(modules[name], "weight") for name in layer_names]
    total = sum(p.numel() for p in pruned.parameters())
    prunable = sum(module.weight.numel() for module, _ in targets)
    keep = round(params_ratio * total) - (total - prunable)
    if not 0 <= keep <= prunable:
        raise ConfigError(f"a params ratio of {params_ratio:.4g} needs {keep} of the {prunable} prunable weights")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=prunable - keep)
    return pruned


def pruned_params(model: nn.Module) -> int:
    """Parameters of a pruned model: its non-zero masked weights and every other parameter."""
    count = 0
    for name, parameter in model.named_parameters():
        if name.endswith("weight_orig"):
            module = model.get_submodule(name.rsplit(".", 1)[0])
            count += int(module.weight_mask.sum())
        else:
            count += parameter.numel()
    return count


def _spread(front: list, compressions: np.ndarray, limit: int) -> list:
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


def compression_quality(out_dir: Path, runs: dict[str, RunConfig], quality: QualityConfig) -> list[dict]:
    """Re-score the fronts of ``runs`` (method -> the run's config) and prune the dense model at their
    compression ratios; writes ``out_dir/quality/`` and returns one row per model."""
    from surrogate_emo.compare import load_run
    from surrogate_emo.pipeline import final_model, front_evaluations, prepare

    folder = out_dir / "quality"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "models.jsonl"
    done = _done(log)
    rows = []

    def record(key: tuple, row: dict) -> None:
        row = {"key": list(key), **row}
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        done[key] = row

    configs = list(runs.values())
    if len({c.seed for c in configs}) != 1:
        raise ConfigError(f"the runs compared must share one seed (one base model); got {[c.seed for c in configs]}")
    setup, ratios = prepare(configs[0]), set()
    # the search's fine-tune and the final one: what every pruned model gets too
    total_steps = setup.evaluator.steps + (steps_for(quality.final_finetune_epochs, len(setup.data.train),
                                                     configs[0].batch_size) if quality.final_finetune_epochs else 0)
    for method, config in runs.items():
        evaluations, memo = load_run(config.run_dir, config.name), {}
        front = [e for e in front_evaluations(setup, evaluations) if 1 / e.ratios["params"] >= quality.min_compression]
        front = _spread(front, np.array([1 / e.ratios["params"] for e in front]), quality.max_models)
        for evaluation in front:
            key = ("search", method, config.seed, evaluation.trial, quality.final_finetune_epochs)
            if key not in done:
                model, _ = final_model(setup, evaluation, config, epochs=quality.final_finetune_epochs,
                                       history=evaluations, memo=memo)
                record(key, {"kind": "search", "method": method, "seed": config.seed, "trial": evaluation.trial,
                             "params_ratio": evaluation.ratios["params"], "val_error_search": evaluation.error,
                             "test_error": error_rate(model, setup.data.test),
                             "dense_test_error": setup.dense_test_error,
                             "finetune_steps": total_steps})
            rows.append(done[key])
            ratios.add(round(evaluation.ratios["params"], 6))
    config = configs[0]
    layer_names = setup.scheme.layer_names
    for ratio in sorted(ratios):
        key = ("pruning", "global magnitude", config.seed, ratio, total_steps)
        if key not in done:
            model = global_magnitude_prune(setup.base, layer_names, ratio)
            fit(model, setup.data.train, total_steps, lr=config.finetune_learning_rate, batch_size=config.batch_size,
                seed=config.seed + 1)
            record(key, {"kind": "pruning", "method": "global magnitude pruning", "seed": config.seed, "trial": None,
                         "params_ratio": pruned_params(model) / setup.scheme.dense.params,
                         "val_error_search": None, "test_error": error_rate(model, setup.data.test),
                         "dense_test_error": setup.dense_test_error, "finetune_steps": total_steps})
        rows.append(done[key])
    _write(folder, rows, quality)
    return rows


def best_compression(rows: list[dict], points: float) -> float | None:
    """Highest compression among ``rows`` whose test error is at most ``points`` percentage points above dense."""
    fine = [1 / r["params_ratio"] for r in rows if r["test_error"] <= r["dense_test_error"] + points / 100 + 1e-12]
    return max(fine) if fine else None


def _write(folder: Path, rows: list[dict], quality: QualityConfig) -> None:
    write_csv(folder / "models.csv", [{k: v for k, v in r.items() if k != "key"} for r in rows])
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [f"Each front model fine-tuned {quality.final_finetune_epochs:g} more epochs and scored on the test split; "
             "global magnitude pruning of the dense model at the same params ratios with the same total fine-tuning.",
             "", "| method | seed | models | dense test error | compression at <= +1 pt test error | "
             "compression at <= +2 pt | fine-tuning steps per model |", "|---|---|---|---|---|---|---|"]
    for method in methods:
        for seed in sorted({r["seed"] for r in rows if r["method"] == method}):
            mine = [r for r in rows if r["method"] == method and r["seed"] == seed]
            one, two = best_compression(mine, 1.0), best_compression(mine, 2.0)
            lines.append(f"| {method} | {seed} | {len(mine)} | {100 * mine[0]['dense_test_error']:.2f}% | "
                         f"{'–' if one is None else f'{one:.1f}x'} | {'–' if two is None else f'{two:.1f}x'} | "
                         f"{mine[0]['finetune_steps']} |")
    (folder / "quality.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in methods:
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["params_ratio"])
        ax.plot([1 / r["params_ratio"] for r in mine], [100 * r["test_error"] for r in mine], "o-", ms=3, label=method)
    dense = 100 * rows[0]["dense_test_error"] if rows else None
    if dense is not None:
        ax.axhline(dense, color="gray", lw=0.8, label="dense")
        ax.axhline(dense + 1, color="gray", lw=0.8, ls="--", label="dense + 1 pt")
        ax.set_ylim(dense - 1, dense + 10)
    ax.set_xscale("log")
    ax.set_xlabel("compression (dense params / params)")
    ax.set_ylabel("test error %")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "quality.png", dpi=110)
    plt.close(fig)
