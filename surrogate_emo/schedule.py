"""Gradual compression: from the dense model to a genome over a fine-tune, on the cubic schedule of Zhu and Gupta
("To prune, or not to prune", 2017).

A search can afford to compress each candidate in one shot and fine-tune it; the model a user keeps deserves
better. Here each gene's kept share ``s`` (of weights, rank, channels or bit levels: `Scheme.toward`) goes from 1
(nothing removed) to the genome's own ``s_f`` as ``s_t = s_f + (1 - s_f) (1 - t / T)^3`` over the first
``ramp`` (three quarters by default) of the fine-tuning steps, tightened ``updates`` times at equal intervals; the
rest of the steps fine-tune the final structure. Each tightening re-compresses the current model (a warm start:
the larger structure holds the smaller), so what training learnt is kept; each segment starts a fresh Adam.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from surrogate_emo.data import Split
from surrogate_emo.errors import ConfigError
from surrogate_emo.schemes import Scheme
from surrogate_emo.train import fit


def cubic_share(final: np.ndarray, done: float) -> np.ndarray:
    """``s_f + (1 - s_f) (1 - done)^3``: 1 at ``done = 0``, ``s_f`` at ``done = 1``.

    Example:
        >>> cubic_share(np.array([0.1]), 0.5).round(4).tolist()
        [0.2125]
    """
    if not 0.0 <= done <= 1.0:
        raise ConfigError(f"schedule progress must be in [0, 1], got {done!r}")
    return final + (1.0 - final) * (1.0 - done) ** 3


def segments(steps: int, updates: int, ramp: float) -> list[tuple[float, int]]:
    """The schedule as ``(progress at the end of the interval, steps)`` per segment: ``updates`` equal intervals
    over the first ``ramp`` of the steps, then the rest at the final structure (progress 1).

    Example:
        >>> segments(10, 2, 0.8)
        [(0.5, 4), (1.0, 4), (1.0, 2)]
    """
    ramp_steps = round(ramp * steps)
    bounds = [round(ramp_steps * k / updates) for k in range(updates + 1)] + [steps]
    return [(min(1.0, (k + 1) / updates), bounds[k + 1] - bounds[k]) for k in range(updates + 1)]


def gradual_finetune(scheme: Scheme, base: nn.Module, genome, data: Split, steps: int, lr: float,
                     batch_size: int, seed: int, updates: int = 20, ramp: float = 0.75) -> nn.Module:
    """Compress ``base`` (left untouched) to ``genome`` gradually while fine-tuning for ``steps`` in all.

    Raises:
        ConfigError: ``updates < 1`` or ``ramp`` outside ``(0, 1]``.
    """
    if updates < 1 or not 0.0 < ramp <= 1.0:
        raise ConfigError(f"expected updates >= 1 and ramp in (0, 1], got updates={updates}, ramp={ramp}")
    vector = scheme.validate(genome)
    model = base
    for k, (done, segment) in enumerate(segments(steps, updates, ramp)):
        # each segment trains the structure of the end of its interval
        model = scheme.compress(model, scheme.toward(vector, done))
        if segment > 0:
            fit(model, data, segment, lr=lr, batch_size=batch_size, seed=seed + k,
                on_step=lambda step, m=model: scheme.during_finetune(m, vector, step))
    scheme.after_finetune(model, vector)
    return model
