"""True evaluation: compress the base model to a genome, fine-tune, score on validation; count what it cost."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from surrogate_emo.compress import CostModel, compress_model
from surrogate_emo.data import DataSplits
from surrogate_emo.errors import ConfigError, FineTuneDiverged
from surrogate_emo.train import error_rate, fit

CHEAP_OBJECTIVES = ("params", "bytes", "macs")
FAILED_ERROR = 1.0  # what the search is told for a failed evaluation: the worst possible error rate


@dataclass
class Evaluation:
    """One true evaluation. ``error`` is the validation error (NaN when ``status == "failed"``)."""

    genome: np.ndarray
    error: float
    ratios: dict[str, float]
    status: str = "ok"
    reason: str = ""
    steps: int = 0
    seconds: float = 0.0
    seed: int = 0
    source: str = "base"
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def trial_seed(run_seed: int, trial: int) -> int:
    """A seed for one trial that depends only on the run seed and the trial number (so resumes replay exactly)."""
    return int(np.random.SeedSequence([run_seed, trial]).generate_state(1)[0])


class Evaluator:
    """Turns a genome into objectives `[val_error, *cheap ratios]` (all minimized) by fine-tuning a compressed copy.

    Counts true evaluations, fine-tuning steps and seconds. A fine-tune that diverges (NaN or infinite loss or
    weights) or raises a runtime error is returned as a failed `Evaluation` with its reason; the caller goes on.
    """

    def __init__(self, base: nn.Module, data: DataSplits, cost_model: CostModel, steps: int, lr: float = 1e-3,
                 batch_size: int = 128, objectives: tuple[str, ...] = ("params",)) -> None:
        unknown = [name for name in objectives if name not in CHEAP_OBJECTIVES]
        if unknown or not objectives:
            raise ConfigError(f"objectives must be a non-empty list from {list(CHEAP_OBJECTIVES)}, got {list(objectives)}")
        if steps < 0:
            raise ConfigError(f"fine-tuning steps must be >= 0, got {steps}")
        self.base, self.data, self.cost_model = base, data, cost_model
        self.steps, self.lr, self.batch_size = steps, lr, batch_size
        self.objective_names = ("error", *objectives)
        self.n_evaluations = 0
        self.total_steps = 0
        self.total_seconds = 0.0

    @property
    def space(self):
        return self.cost_model.space

    def finetune(self, genome, seed: int) -> tuple[nn.Module, int]:
        """Compressed and fine-tuned model for ``genome``; deterministic in ``seed``. Returns (model, steps)."""
        torch.manual_seed(seed)
        model = compress_model(self.base, self.space, genome)
        steps = fit(model, self.data.train, self.steps, lr=self.lr, batch_size=self.batch_size, seed=seed)
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise FineTuneDiverged("weights became non-finite during fine-tuning")
        return model, steps

    def __call__(self, genome, seed: int) -> Evaluation:
        vector = self.space.validate(genome)
        ratios = self.cost_model.ratios(vector)
        start = time.perf_counter()
        try:
            model, steps = self.finetune(vector, seed)
            error, status, reason = error_rate(model, self.data.val), "ok", ""
        except (FineTuneDiverged, RuntimeError) as failure:
            steps, error, status, reason = self.steps, math.nan, "failed", f"{type(failure).__name__}: {failure}"
        seconds = time.perf_counter() - start
        self.n_evaluations += 1
        self.total_steps += steps
        self.total_seconds += seconds
        return Evaluation(vector, error, ratios, status, reason, steps, seconds, seed)

    def objectives(self, evaluation: Evaluation) -> np.ndarray:
        """`[error, *ratios]` as float64, minimized; a failed evaluation gets the worst error, `FAILED_ERROR`."""
        error = evaluation.error if evaluation.ok else FAILED_ERROR
        return np.array([error] + [evaluation.ratios[name] for name in self.objective_names[1:]], dtype=np.float64)
