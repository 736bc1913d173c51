"""Surrogate loop (GP, RF; 100 true evaluations) against full-evaluation NSGA-II (500) and BoTorch's qLogNEHVI
(100) on LeNet-300-100 / Fashion-MNIST, 3 seeds. Each run is the CLI on one of the configs beside this file, resumable on its own.

    python experiments/compare_lenet300.py [--jobs 2] [--seeds 0 1 2]

Writes results/lenet300_surrogate_vs_nsga2/: one folder per run, comparison.csv, comparison.md, hypervolume.png.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from joblib import Parallel, delayed

HERE = Path(__file__).parent
OUT = Path("results/lenet300_surrogate_vs_nsga2")
METHODS = {"nsga2": "lenet300_fashion_nsga2.toml", "surrogate_gp": "lenet300_fashion_surrogate_gp.toml",
           "surrogate_rf": "lenet300_fashion_surrogate_rf.toml", "botorch": "lenet300_fashion_botorch.toml"}


def command(method: str, seed: int) -> list[str]:
    return [sys.executable, "-m", "surrogate_emo.cli", "run", "--config", str(HERE / METHODS[method]), "--seed",
            str(seed), "--name", f"{method}_seed{seed}", "--output-dir", str(OUT), "--no-progress"]


def run_one(method: str, seed: int) -> tuple[str, int, int]:
    # one thread per run: two single-threaded runs on 2 cores beat one run on two threads
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = OUT / f"{method}_seed{seed}.log"
    with log.open("w") as handle:
        code = subprocess.run(command(method, seed), stdout=handle, stderr=subprocess.STDOUT, env=env).returncode
    return method, seed, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    runs = [(m, s) for s in args.seeds for m in args.methods]
    for method, seed, code in Parallel(n_jobs=args.jobs)(delayed(run_one)(m, s) for m, s in runs):
        print(f"{method} seed {seed}: exit {code}" + ("" if code == 0 else f" (see {OUT}/{method}_seed{seed}.log)"))
    from surrogate_emo.compare import write_comparison

    write_comparison(OUT, list(METHODS), args.seeds, baseline="nsga2", checkpoints=[100, 500])


if __name__ == "__main__":
    main()
