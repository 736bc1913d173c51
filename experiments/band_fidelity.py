"""Do the cheap fidelities tell models of one size apart where the loops trail NSGA-II (30x to 300x)?

For every genome NSGA-II@1000 evaluated between 30x and 300x on one seed of the shared-base study: the fidelity-0
error (no fine-tuning, the loops' feature), the validation error after an eighth and after a quarter of the
1-epoch fine-tune (same seed as the full one), against the recorded 1-epoch validation error. Spearman over the
whole band mixes in size, which every fidelity follows; within narrow bands of compression it does not.

    python experiments/band_fidelity.py [SEED]     (default 0)

Writes results/lenet300_shared_base/band_fidelity_seed<SEED>.md. About 270 genomes, 3 to 4 minutes on one core.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.stats import spearmanr

from multifidelity_compare import STUDIES  # this folder's: python experiments/band_fidelity.py
from surrogate_emo.exporting import run_config
from surrogate_emo.pipeline import prepare
from surrogate_emo.train import error_rate

STUDY = STUDIES["shared"]["new"]
BANDS = (30, 60, 100, 170, 300)  # narrow bands of the params ratio inside 30x to 300x
FRACTIONS = (0.125, 0.25)  # short fine-tunes, as fractions of the full one's steps


def in_band(evaluations) -> list:
    """The successful evaluations compressed between ``BANDS[0]``x and ``BANDS[-1]``x."""
    return [e for e in evaluations if e.ok and BANDS[0] <= 1 / e.ratios["params"] < BANDS[-1]]


def band_counts(compression: np.ndarray) -> list[str]:
    """Genomes per narrow band of compression (table cells)."""
    return [str(int(((compression >= a) & (compression < b)).sum())) for a, b in zip(BANDS, BANDS[1:])]


def band_spearman(values: np.ndarray, truth: np.ndarray, compression: np.ndarray) -> list[str]:
    """Spearman of ``values`` with ``truth`` within each narrow band of compression (table cells; '–' under 5
    genomes): size, which every fidelity follows, does not count within a band."""
    cells = []
    for a, b in zip(BANDS, BANDS[1:]):
        inside = (compression >= a) & (compression < b)
        cells.append(f"{spearmanr(values[inside], truth[inside]).statistic:.2f}" if inside.sum() > 4 else "–")
    return cells


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    run = STUDY / "lenet-300-100_fashion-mnist" / f"nsga2_seed{seed}"
    config, evaluations, _ = run_config(run)
    setup = prepare(config)
    chosen = in_band(evaluations)
    compression = np.array([1 / e.ratios["params"] for e in chosen])
    full = np.array([e.error for e in chosen])
    columns = {"fidelity 0 (no fine-tuning)": setup.zero_shot.errors(np.array([e.genome for e in chosen]))}
    for fraction in FRACTIONS:
        steps = max(1, round(fraction * setup.evaluator.steps))
        errors = []
        for e in chosen:
            model, _ = setup.evaluator.finetune(e.genome, e.seed, steps=steps)
            errors.append(error_rate(model, setup.data.val))
        columns[f"{steps} steps ({fraction:g} of the fine-tune)"] = np.array(errors)
    bands = list(zip(BANDS, BANDS[1:]))
    lines = [f"# Cheap fidelities against the 1-epoch error, 30x to 300x (NSGA-II@1000 seed {seed}, LeNet-300-100)", "",
             f"Command: python experiments/band_fidelity.py {seed}", "",
             f"{len(chosen)} genomes NSGA-II evaluated between {BANDS[0]}x and {BANDS[-1]}x; Spearman rank correlation "
             "of each cheap error with the recorded 1-epoch validation error, over the whole band and within narrower "
             "bands of compression (genomes in each). Short fine-tunes start from the dense base with the full "
             "fine-tune's seed.", "",
             "| cheap error | whole band | " + " | ".join(f"{a}-{b}x" for a, b in bands) + " |",
             "|---|---|" + "---|" * len(bands),
             "| genomes | " + f"{len(chosen)} | " + " | ".join(band_counts(compression)) + " |"]
    for name, cheap in columns.items():
        cells = [f"{spearmanr(cheap, full).statistic:.2f}", *band_spearman(cheap, full, compression)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out = STUDY / f"band_fidelity_seed{seed}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
