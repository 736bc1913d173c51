"""Why warm GP refits start each lengthscale at most at 3: chains of warm fits along a stored LeNet-300-100 archive.

Refits gp-f0 every 8 trials along the archive of study ``lenet300_multifidelity``'s cold ``surrogate_gp_f0_design``
run (seed 0 by default) three ways: cold (from the defaults, as that run did), warm with each fit started from the
last one's hyperparameters as they were (uncapped, as the code before the cap), and warm as the package does it now
(lengthscales capped at the start, `surrogate_emo.surrogates.gp.WARM_LENGTHSCALE_CAP`). Each fit's negative log
marginal likelihood on its data (lower is better) and seconds. Beside it, the two whole runs made with uncapped
warm refits before the cap (``uncapped_runs/``, commit a9ff3a4, `surrogate-emo experiment
experiments/lenet300_multifidelity.toml` with method ``surrogate_gp_f0_design_warm``), against the cold runs of the
same seeds: validation hypervolume at 100 (log params axis, error reference 1) and how many of the 80 loop
evaluations scored at chance (error above 0.85).

    python experiments/warm_refit_drift.py [--seed 0]

Writes results/warm_refit_drift/drift.md. Its seconds are compared within one run: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from gpytorch.mlls import ExactMarginalLogLikelihood

from surrogate_emo.compare import load_run
from surrogate_emo.config import RunConfig
from surrogate_emo.evaluate import cheap_objective
from surrogate_emo.front import hypervolume
from surrogate_emo.pipeline import prepare
from surrogate_emo.surrogates import gp, make_surrogate

OUT = Path("results/warm_refit_drift")
COLD_RUNS = Path("results/lenet300_multifidelity/lenet-300-100_fashion-mnist")
CHANCE = 0.85  # a 10-class model at or above this validation error has learnt next to nothing


def config(seed: int) -> RunConfig:
    """The study's base configuration (experiments/lenet300_multifidelity.toml): the same data, base model, zero-shot."""
    return RunConfig(dataset="fashion-mnist", model="lenet-300-100", base_epochs=20.0, finetune_epochs=1.0, lr=0.001,
                     batch_size=128, objectives=["params"], objective_scale="log", error_scale="log",
                     warm_start=False, screen_size=1000, seed=seed, progress=False)


def negative_log_likelihood(model) -> float:
    """A fitted GP's (BoTorch model) negative log marginal likelihood on its training data, per observation."""
    model.train()
    try:
        with torch.no_grad():
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            return float(-mll(model(*model.train_inputs), model.train_targets).sum())
    finally:
        model.eval()


def chain(X: np.ndarray, Y: np.ndarray, features, sizes) -> list[dict]:
    rows, states = [], {"warm, uncapped": None, "warm, capped": None}
    cap = gp.WARM_LENGTHSCALE_CAP
    for n in sizes:
        row = {"archive": n}
        for way in ("cold", *states):
            gp.WARM_LENGTHSCALE_CAP = float("inf") if way == "warm, uncapped" else cap
            started = time.perf_counter()
            fitted = make_surrogate("gp-f0", seed=0, features=features).fit(X[:n], Y[:n], start=states.get(way))
            row[way] = (negative_log_likelihood(fitted._inner.model()), time.perf_counter() - started)
            if way in states:
                states[way] = fitted.state()
        gp.WARM_LENGTHSCALE_CAP = cap
        rows.append(row)
        print(row, flush=True)
    return rows


def whole_run(folder: Path, name: str) -> tuple[float, int]:
    """(validation HV at 100 on the log params axis, reference error 1; loop evaluations at chance)."""
    evaluations = load_run(folder, name)[:100]
    F = np.array([[e.error if e.ok else 1.0, cheap_objective(e.ratios["params"], "log")] for e in evaluations])
    return hypervolume(F, [1.0, 1.0]), int(np.sum(F[20:, 0] > CHANCE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    setup = prepare(config(args.seed))
    name = f"surrogate_gp_f0_design_seed{args.seed}"
    evaluations = load_run(COLD_RUNS / name, name)
    X = np.array([e.genome for e in evaluations])
    Y = np.log(np.maximum([[e.error if e.ok else 1.0] for e in evaluations], 1e-3))  # as the loop models it
    rows = chain(X, Y, setup.zero_shot.features, range(20, len(X), 8))
    ways = ("cold", "warm, uncapped", "warm, capped")
    lines = [f"# Chains of gp-f0 fits along `{name}`'s archive (LeNet-300-100), every 8 trials", "",
             "Negative log marginal likelihood of each fit on its data (lower is better), and its seconds. Command: "
             f"`python experiments/warm_refit_drift.py --seed {args.seed}`.", "",
             "| archive | " + " | ".join(f"{w}: NLL | s" for w in ways) + " |", "|---|" + "---|---|" * len(ways)]
    for row in rows:
        lines.append(f"| {row['archive']} | " + " | ".join(f"{row[w][0]:.3f} | {row[w][1]:.2f}" for w in ways) + " |")
    lines += ["", "## Whole runs: uncapped warm refits (before the cap) against cold", "",
              "Validation hypervolume of the first 100 evaluations (log params axis, error reference 1) and the loop's "
              f"evaluations (of 80) at chance (validation error > {CHANCE}).", "",
              "| seed | cold: HV | cold: at chance | uncapped warm: HV | uncapped warm: at chance |", "|---|---|---|---|---|"]
    for folder in sorted((OUT / "uncapped_runs").glob("surrogate_gp_f0_design_warm_seed*")):
        seed = int(folder.name.rsplit("seed", 1)[1])
        cold_name = f"surrogate_gp_f0_design_seed{seed}"
        cold, warm = whole_run(COLD_RUNS / cold_name, cold_name), whole_run(folder, folder.name)
        lines.append(f"| {seed} | {cold[0]:.4f} | {cold[1]} | {warm[0]:.4f} | {warm[1]} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "drift.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
