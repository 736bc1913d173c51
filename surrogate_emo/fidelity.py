"""The cheap fidelities of a genome's error, below the full fine-tune (fidelity 2, `surrogate_emo.evaluate`).

Fidelity 0 (`ZeroShot`): the compressed model's error with no fine-tuning at all, milliseconds per genome. A full
evaluation fine-tunes for an epoch (seconds); the compressed model before any fine-tuning already ranks
candidates well (Spearman 0.93 to 0.94 against the 1-epoch error on 1,000 genomes of each of three LeNet-300-100
runs, results/fidelity/surrogates_offline.md), worse far out (0.40 above 100x). Surrogates read it as an input
(`surrogate_emo.surrogates.features`), always available for any candidate of a pool, as OLMP and EMOMC score their
candidates with one forward pass.

Fidelity 1 (`ShortFineTune`): the error after a short fine-tune (a fraction of the full one's steps), for the few
candidates of each iteration's shortlist (`surrogate_emo.search.SurrogateSearch`'s ``shortlist``).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import torch
from torch import nn

from surrogate_emo.data import Split
from surrogate_emo.errors import ConfigError, FineTuneDiverged
from surrogate_emo.schemes import Scheme
from surrogate_emo.train import error_rate

ERROR_FLOOR = 1e-3  # zero-shot errors below this are read as this on the log scale


def _first(split: Split, size: int) -> Split:
    """The first ``size`` samples of ``split``, where each cheap fidelity counts its errors."""
    return Split(split.x[:size], split.y[:size]) if size < len(split) else split


def _log_errors(errors: np.ndarray) -> np.ndarray:
    """What a surrogate reads of a cheap fidelity: the log of its errors (floored at `ERROR_FLOOR`), `n x 1`."""
    return np.log(np.maximum(errors, ERROR_FLOOR))[:, None]


class ZeroShot:
    """Scores genomes at fidelity 0: compress the dense ``base`` to each genome and count the misclassified of the
    first ``size`` validation samples, with no training. Deterministic; each genome is scored once (remembered by
    its bytes), and the scores and seconds spent are counted.

    Example:
        >>> from surrogate_emo.data import load_dataset
        >>> from surrogate_emo.models import mlp
        >>> from surrogate_emo.schemes import scheme_class
        >>> data = load_dataset("digits")
        >>> base = mlp(data.input_shape, data.n_classes)
        >>> screen = ZeroShot(scheme_class("prune")(base, data.input_shape), base, data.val, size=100)
        >>> screen.errors(np.ones((2, screen.scheme.dim))).shape
        (2,)
    """

    def __init__(self, scheme: Scheme, base: nn.Module, val: Split, size: int = 1000) -> None:
        if size < 1:
            raise ConfigError(f"the zero-shot screen needs at least 1 validation sample, got size={size}")
        self.scheme, self.base = scheme, base
        self.val = _first(val, size)
        self._memo: dict[bytes, float] = {}
        self.n_scored = 0
        self.seconds = 0.0

    @torch.no_grad()
    def errors(self, X) -> np.ndarray:
        """Zero-shot validation errors of genomes ``X`` (`n x d`), shape `n`."""
        X = self.scheme.validate_matrix(X)
        out = np.empty(len(X))
        for i, genome in enumerate(X):
            key = genome.tobytes()
            if key not in self._memo:
                started = time.perf_counter()
                self._memo[key] = error_rate(self.scheme.compress(self.base, genome), self.val)
                self.seconds += time.perf_counter() - started
                self.n_scored += 1
            out[i] = self._memo[key]
        return out

    def features(self, X) -> np.ndarray:
        """What a surrogate reads: the log of the zero-shot error (floored at `ERROR_FLOOR`), `n x 1`."""
        return _log_errors(self.errors(X))


class ShortFineTune:
    """Scores genomes at fidelity 1: fine-tune the compressed model for ``steps`` steps (`Evaluator.finetune`, from
    the dense base model) and count the misclassified of the first ``size`` validation samples. A fine-tune that
    diverges scores the worst error, 1. Deterministic: each genome's seed comes from the run's ``seed`` and the
    genome's bytes, so a resumed run that scores it again gets the same error. Each genome is scored once per
    process (remembered by its bytes); the scores, steps and seconds spent are counted.

    Example:
        >>> from surrogate_emo.data import load_dataset
        >>> from surrogate_emo.evaluate import Evaluator
        >>> from surrogate_emo.models import mlp
        >>> from surrogate_emo.schemes import scheme_class
        >>> data = load_dataset("digits")
        >>> base = mlp(data.input_shape, data.n_classes)
        >>> evaluator = Evaluator(base, data, scheme_class("prune")(base, data.input_shape), steps=40)
        >>> short = ShortFineTune(evaluator, steps=5, size=100)
        >>> short.errors(np.ones((2, evaluator.scheme.dim))).shape, short.steps_spent
        ((2,), 5)
    """

    def __init__(self, evaluator, steps: int, size: int = 1000, seed: int = 0) -> None:
        if steps < 1:
            raise ConfigError(f"a short fine-tune needs at least 1 step, got steps={steps}")
        if size < 1:
            raise ConfigError(f"the short fine-tune's score needs at least 1 validation sample, got size={size}")
        self.evaluator, self.steps, self.seed = evaluator, steps, seed
        self.val = _first(evaluator.data.val, size)
        self._memo: dict[bytes, float] = {}
        self.n_scored = 0
        self.steps_spent = 0
        self.seconds = 0.0

    @property
    def fidelity(self) -> float:
        """Its share of the full fine-tune's steps: where it stands between none (0) and the full fine-tune (1)."""
        return self.steps / self.evaluator.steps

    def genome_seed(self, genome: np.ndarray) -> int:
        """The fine-tune's seed for ``genome``: the run seed and the genome's bytes, nothing else."""
        digest = hashlib.sha256(np.asarray(genome, dtype=np.float64).tobytes()).digest()
        return int(np.random.SeedSequence([self.seed, int.from_bytes(digest[:8], "little")]).generate_state(1)[0])

    def errors(self, X) -> np.ndarray:
        """Short-fine-tune validation errors of genomes ``X`` (`n x d`), shape `n`."""
        X = self.evaluator.scheme.validate_matrix(X)
        out = np.empty(len(X))
        for i, genome in enumerate(X):
            key = genome.tobytes()
            if key not in self._memo:
                started = time.perf_counter()
                try:
                    model, taken = self.evaluator.finetune(genome, self.genome_seed(genome), steps=self.steps)
                    self._memo[key] = error_rate(model, self.val)
                except (FineTuneDiverged, RuntimeError):  # as a failed full evaluation: the worst error
                    self._memo[key], taken = 1.0, self.steps
                self.seconds += time.perf_counter() - started
                self.steps_spent += taken
                self.n_scored += 1
            out[i] = self._memo[key]
        return out

    def features(self, X) -> np.ndarray:
        """What a surrogate reads: the log of the short-fine-tune error (floored at `ERROR_FLOOR`), `n x 1`."""
        return _log_errors(self.errors(X))
