"""Does warm-starting from cached fine-tuned models pay? LeNet-300-100 on Fashion-MNIST.

A cache is filled with the fine-tuned models (1 epoch) of a Latin-hypercube design; then each target genome of a
second design is fine-tuned for k steps from the dense base (cold) and, where the cache holds a model whose
structure contains the target's, from that nearest cached model (warm), with the same seed. The validation error
after k steps is compared: the cache pays if warm at half the steps is at least as good as cold at all of them.

    python experiments/bench_warm_start.py [--sources 40] [--targets 30]

Writes results/warm_start/warm_start.csv and warm_start.md.

With ``--from-run``, the targets are instead the candidates a real search warm-started (a run made with
``warm_start = true``, e.g. NSGA-II of results/lenet300_loop_variants): every k-th of them is fine-tuned again
cold, from the dense base with all the steps and the evaluation's own seed (what the search would have recorded
without the cache), and compared with the error the search recorded after its warm start with half the steps.

    python experiments/bench_warm_start.py --from-run \
        results/lenet300_loop_variants/lenet-300-100_fashion-mnist/nsga2_warm_seed0 [--targets 60]

Writes results/warm_start/in_search_<run>.csv and .md.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import qmc, wilcoxon

from surrogate_emo.report import write_csv
from surrogate_emo.cache import ModelCache
from surrogate_emo.compare import load_run
from surrogate_emo.config import RunConfig
from surrogate_emo.pipeline import prepare
from surrogate_emo.train import error_rate

OUT = Path("results/warm_start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=40)
    parser.add_argument("--targets", type=int, default=30)
    parser.add_argument("--from-run", type=Path, help="a warm-started run's folder: measure on its candidates")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.from_run is not None:
        in_search(args.from_run, args.targets)
        return
    config = RunConfig(dataset="fashion-mnist", model="lenet-300-100", base_epochs=20.0, finetune_epochs=1.0, seed=0,
                       warm_start=False)  # the cache is made below
    setup = prepare(config)
    evaluator = setup.evaluator
    full = evaluator.steps
    fractions = [0, 0.125, 0.25, 0.5, 1.0]
    evaluator.cache = ModelCache(tempfile.mkdtemp(prefix="warm_start_"), max_bytes=2**31)
    for i, genome in enumerate(qmc.LatinHypercube(d=setup.scheme.dim, seed=1).random(args.sources)):
        evaluator(genome, seed=1000 + i)  # fine-tunes 1 epoch from the base and caches the result
    rows = []
    for j, target in enumerate(qmc.LatinHypercube(d=setup.scheme.dim, seed=2).random(args.targets)):
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


def in_search(run_dir: Path, n_targets: int) -> None:
    """Cold full fine-tunes of the candidates a search warm-started, against what it recorded for them."""
    name = run_dir.name
    evaluations = load_run(run_dir, name)
    seed = int(name.rsplit("_seed", 1)[1])
    config = RunConfig(dataset="fashion-mnist", model="lenet-300-100", base_epochs=20.0, finetune_epochs=1.0,
                       seed=seed, warm_start=False)  # study 2's settings (the base model is the seed's); cold
    setup = prepare(config)
    cold = next(e for e in evaluations if e.source == "base" and e.ok)
    model, _ = setup.evaluator.finetune(cold.genome, cold.seed)
    if error_rate(model, setup.data.val) != cold.error:  # the settings above are not the run's
        raise SystemExit(f"trial {cold.trial} of {run_dir} does not reproduce: not a run with study 2's settings")
    warm = [e for e in evaluations if e.source.startswith("cache:") and e.ok]
    picked = warm[:: max(1, len(warm) // n_targets)][:n_targets]  # spread over the whole run
    rows = []
    for e in picked:
        model, steps = setup.evaluator.finetune(e.genome, e.seed)
        rows.append({"trial": e.trial, "params_ratio": e.ratios["params"], "warm_steps": e.steps,
                     "warm_error": e.error, "cold_steps": steps, "cold_error": error_rate(model, setup.data.val)})
        print(rows[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / f"in_search_{name}.csv", rows)
    warm_errors = np.array([r["warm_error"] for r in rows])
    cold_errors = np.array([r["cold_error"] for r in rows])
    difference = warm_errors - cold_errors
    test = wilcoxon(warm_errors, cold_errors)
    pays = warm_errors.mean() <= cold_errors.mean()
    lines = [f"Run `{run_dir}`: {len(warm)} of its {len(evaluations)} evaluations were warm-started; {len(rows)} of "
             "them (spread over the run) fine-tuned again cold from the dense base with all the steps and their own seed.",
             "", "| | steps | mean val error | median val error |", "|---|---|---|---|",
             f"| warm (as the search recorded it) | {rows[0]['warm_steps']} | {100 * warm_errors.mean():.2f}% | "
             f"{100 * np.median(warm_errors):.2f}% |",
             f"| cold (the same genome and seed) | {rows[0]['cold_steps']} | {100 * cold_errors.mean():.2f}% | "
             f"{100 * np.median(cold_errors):.2f}% |", "",
             f"Warm minus cold: mean {100 * difference.mean():+.2f} points, median {100 * np.median(difference):+.2f}, "
             f"warm better in {int((difference < 0).sum())} of {len(rows)}; Wilcoxon signed-rank p = {test.pvalue:.3g}.",
             f"Warm at half the steps {'<=' if pays else '>'} cold at all of them on average: the cache "
             f"{'pays' if pays else 'does not pay'} by the issue's rule on these candidates."]
    (OUT / f"in_search_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
