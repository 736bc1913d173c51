"""Does warm-starting from cached fine-tuned models pay? LeNet-300-100 on Fashion-MNIST.

A cache is filled with the fine-tuned models (1 epoch) of a Latin-hypercube design; then each target genome of a
second design is fine-tuned for k steps from the dense base (cold) and, where the cache holds a model whose
structure contains the target's, from that nearest cached model (warm), with the same seed. The validation error
after k steps is compared: the cache pays if warm at half the steps is at least as good as cold at all of them.

    python experiments/bench_warm_start.py [--sources 40] [--targets 30]

Writes results/warm_start/warm_start.csv and warm_start.md.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from surrogate_emo.report import write_csv
from surrogate_emo.cache import ModelCache
from surrogate_emo.config import RunConfig
from surrogate_emo.pipeline import prepare
from surrogate_emo.train import error_rate

OUT = Path("results/warm_start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=40)
    parser.add_argument("--targets", type=int, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    config = RunConfig(dataset="fashion-mnist", model="lenet-300-100", base_epochs=20.0, finetune_epochs=1.0, seed=0)
    setup = prepare(config)
    evaluator = setup.evaluator
    full = evaluator.steps
    fractions = [0, 0.125, 0.25, 0.5, 1.0]
    evaluator.cache = ModelCache(tempfile.mkdtemp(prefix="warm_start_"), max_bytes=2**31)
    for i, genome in enumerate(qmc.LatinHypercube(d=setup.space.dim, seed=1).random(args.sources)):
        evaluator(genome, seed=1000 + i)  # fine-tunes 1 epoch from the base and caches the result
    rows = []
    for j, target in enumerate(qmc.LatinHypercube(d=setup.space.dim, seed=2).random(args.targets)):
        warm = evaluator.warm_source(target)
        if warm is None:
            rows.append({"target": j, "warm_source": "none"})
            continue
        row = {"target": j, "warm_source": warm[1]}
        for fraction in fractions:
            steps = int(round(fraction * full))
            for name, source in (("cold", None), ("warm", warm[0])):
                model, _ = evaluator.finetune(target, seed=j, source=source, steps=steps)
                row[f"{name}@{steps}"] = error_rate(model, setup.data.val)
        rows.append(row)
        print(row, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "warm_start.csv", rows)
    paired = [r for r in rows if r["warm_source"] != "none"]
    lines = [f"{len(paired)} of {len(rows)} targets had a cached model containing their structure "
             f"(cache of {args.sources} fine-tuned models); full fine-tune = {full} steps (1 epoch).", "",
             "| steps | cold: mean val error | warm: mean val error |", "|---|---|---|"]
    for fraction in fractions:
        steps = int(round(fraction * full))
        cold = np.mean([r[f"cold@{steps}"] for r in paired])
        warm = np.mean([r[f"warm@{steps}"] for r in paired])
        lines.append(f"| {steps} | {100 * cold:.2f}% | {100 * warm:.2f}% |")
    half, whole = int(round(0.5 * full)), full
    pays = np.mean([r[f"warm@{half}"] for r in paired]) <= np.mean([r[f"cold@{whole}"] for r in paired])
    lines += ["", f"Warm at {half} steps {'<=' if pays else '>'} cold at {whole} steps: the cache "
              f"{'pays' if pays else 'does not pay'} by the issue's rule."]
    (OUT / "warm_start.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
