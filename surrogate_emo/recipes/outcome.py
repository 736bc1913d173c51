"""What every recipe does with its models: record them in the study, put global magnitude pruning beside them with
the same training steps, and write the table and plot.

Each model a recipe makes is one evaluation of a run of ``study.sqlite``: its genome is the kept fraction of each
prunable layer, its error the validation error, and its ``extra`` holds the test error and what the method reports.
The baselines are runs of the same study, one per baseline and schedule, keyed by their params ratio, so a rerun
skips every model already made.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from safetensors.torch import save_file
from torch import nn

from surrogate_emo.compress import measure
from surrogate_emo.compress.masks import MaskedLayer, effective_state
from surrogate_emo.compress.quant import QuantLayer
from surrogate_emo.config import RunConfig
from surrogate_emo.evaluate import Evaluation
from surrogate_emo.quality import BASELINES, best_compression, pruned_baseline, ratios_of, write_quality
from surrogate_emo.schemes.unstructured import pricing_of
from surrogate_emo.store import Study
from surrogate_emo.surgery import compressible_layers
from surrogate_emo.train import error_rate

BASE_KEYS = ("dataset", "data_dir", "data_seed", "model", "base_epochs", "lr", "finetune_lr", "batch_size", "seed",
             "threads", "device", "coding", "index_bits", "dataflow")
"""The run options a recipe's models depend on: data, base model, training, and how costs are priced."""


def base_identity(config: RunConfig) -> dict:
    values = config.to_dict()
    return {key: values[key] for key in BASE_KEYS}


class RecipeStudy:
    """The recipe's SQLite study: one run per method or baseline, models keyed by a value of their own (a delta,
    a params ratio) so that a rerun finds them."""

    def __init__(self, folder: Path, config: RunConfig, setup) -> None:
        self.folder, self.config, self.setup = folder, config, setup
        self.study = Study(folder / "study.sqlite")
        self.pricing = pricing_of(config)
        self.dense = measure(setup.base, setup.data.input_shape, self.pricing)

    def open(self, run: str, settings: dict) -> dict:
        """Open run ``run`` (its settings checked against the stored ones); its models by key."""
        run_id = self.study.open_run(run, {"base": base_identity(self.config), **settings})
        self.study.set_info(run_id, dense_val_error=self.setup.dense_val_error,
                            dense_test_error=self.setup.dense_test_error)
        return {e.extra["key"]: e for e in self.study.evaluations(run_id).values()}

    def record(self, run: str, key, model: nn.Module, steps: int, seconds: float, extra: dict,
               genome: np.ndarray | None = None) -> Evaluation:
        """Score ``model`` (validation and test), price it, save its weights, and store it under ``key``; its
        genome is the kept fraction of each masked or quantised layer unless given."""
        run_id = self.study.run_id(run)
        trial = self.study.count(run_id)
        if genome is None:
            genome = np.array([float(m.mask.float().mean()) if getattr(m, "mask", None) is not None else 1.0
                               for m in model.modules() if isinstance(m, (MaskedLayer, QuantLayer))])
        costs = measure(model, self.setup.data.input_shape, self.pricing)
        evaluation = Evaluation(genome, error_rate(model, self.setup.data.val), ratios_of(costs, self.dense),
                                steps=steps, seconds=seconds, seed=self.config.seed, source=run,
                                extra={"key": key, "test_error": error_rate(model, self.setup.data.test), **extra})
        models = self.folder / "models"
        models.mkdir(parents=True, exist_ok=True)
        save_file(effective_state(model), str(models / f"{run}-{trial}.safetensors"),
                  metadata={"run": run, "key": str(key)})
        self.study.record(run_id, trial, evaluation)
        evaluation.trial = trial
        return evaluation

    def record_search(self, run: str, key, genome: np.ndarray, error: float, ratios: dict, steps: int,
                      seconds: float, extra: dict | None = None) -> Evaluation:
        """Store one evaluation of a method's own search (no test score, no weights) under ``key``."""
        run_id = self.study.run_id(run)
        evaluation = Evaluation(np.asarray(genome, dtype=np.float64), error, ratios, steps=steps, seconds=seconds,
                                seed=self.config.seed, source=run, extra={"key": key, **(extra or {})})
        evaluation.trial = self.study.count(run_id)
        self.study.record(run_id, evaluation.trial, evaluation)
        return evaluation

    def baselines(self, ratios: list[float], steps: int, baselines: list[str], schedules: list[str],
                  progress: bool = True) -> list[dict]:
        """Global magnitude pruning (and + 8 bits) of the dense model at ``ratios`` (params), trained ``steps``
        with each schedule, as `surrogate_emo.quality` does; returns their rows."""
        setup, config = self.setup, self.config
        names = list(compressible_layers(setup.base))
        rows = []
        for baseline in baselines:
            bits = BASELINES[baseline]
            for schedule in schedules:
                run = f"{baseline}_{schedule}_seed{config.seed}"
                done = self.open(run, {"baseline": baseline, "schedule": schedule, "steps": steps})
                for ratio in sorted({round(float(r), 6) for r in ratios}):
                    if ratio not in done:
                        if progress:
                            print(f"{run}: params ratio {ratio:.4g} ({1 / ratio:.1f}x), {steps} steps",
                                  file=sys.stderr, flush=True)
                        started = time.perf_counter()
                        model = pruned_baseline(setup.base, names, ratio, bits, schedule, setup.data.train, steps,
                                                config.finetune_learning_rate, config.batch_size, config.seed + 1)
                        done[ratio] = self.record(run, ratio, model, steps, time.perf_counter() - started, {})
                    rows.append(self.row(done[ratio], "global magnitude pruning" + (f" + {bits}-bit" if bits else ""),
                                         schedule))
        return rows

    def row(self, evaluation: Evaluation, method: str, schedule: str) -> dict:
        """A model as a row of the table and plot (`surrogate_emo.quality.write_quality`)."""
        extra = {k: v for k, v in evaluation.extra.items() if k not in ("key", "test_error")}
        return {"method": method, "schedule": schedule, "seed": evaluation.seed, **evaluation.ratios,
                "val_error": evaluation.error, "test_error": evaluation.extra["test_error"],
                "dense_test_error": self.setup.dense_test_error, "finetune_steps": evaluation.steps,
                "seconds": round(evaluation.seconds, 2), **extra}


def write_outcome(folder: Path, rows: list[dict], intro: str) -> dict:
    """``summary.md``, ``summary.png`` and ``models.csv`` of the recipe's rows; returns the best compression in
    params and bytes at +1 and +2 points per method and schedule."""
    write_quality(folder, rows, intro, stem="summary")
    best = {}
    for method, schedule in dict.fromkeys((r["method"], r["schedule"]) for r in rows):
        mine = [r for r in rows if r["method"] == method and r["schedule"] == schedule]
        best[f"{method} ({schedule})"] = {f"{ratio}_at_{points:g}pt": best_compression(mine, points, ratio)
                                          for points in (1.0, 2.0) for ratio in ("params", "bytes")}
    return best
