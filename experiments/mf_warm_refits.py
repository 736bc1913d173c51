"""Warm refits of the multi-fidelity GP along a stored loop: the same optimum in fewer seconds?

Along the trials of the shared-base study's gp-mf loop with warm refits (``surrogate_gp_mf_design_joint_short4_
list24_warm``, seed 0 by default), every fit the loop made is made again on its own data, two ways:

- warm, as the loop made it: each iteration's first fit (the archive, and the short fine-tunes of the archive and
  of the shortlists before) from the hyperparameters of the iteration before, the refit with the iteration's
  shortlist from that first fit;
- cold, from the defaults, as the cold loops fit (``refit = "cold"``).

Each fit's negative log marginal likelihood per observation on its data (BoTorch's ``ExactMarginalLogLikelihood``,
lower is better) and seconds on one thread; and how far each replayed iteration ends from the hyperparameters the
run stored with its trials (``fit_state``): zero when the replay is exact.

    python experiments/mf_warm_refits.py [SEED]     (default 0)

Writes results/lenet300_shared_base/mf_warm_refits_seed<SEED>.md. The short fine-tunes of the run are made again
(deterministic per genome), then about 40 cold fits on up to 670 observations: 10 to 15 minutes. Its seconds are
compared within one run: run it alone on the machine.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch
from multifidelity_compare import STUDIES  # this folder's: python experiments/mf_warm_refits.py
from warm_refit_drift import negative_log_likelihood

from surrogate_emo.exporting import run_config
from surrogate_emo.pipeline import prepare
from surrogate_emo.search.surrogate import LOG_FLOOR, iteration_seed, short_observations
from surrogate_emo.surrogates import Cheaper, make_surrogate

STUDY = STUDIES["shared"]["new"]
LOOP = "surrogate_gp_mf_design_joint_short4_list24_warm"


def state_distance(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[name]) - np.asarray(b[name])))) for name in a)


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # as the runs do
    config, evaluations, _ = run_config(STUDY / "lenet-300-100_fashion-mnist" / f"{LOOP}_seed{seed}")
    short = prepare(config).short
    X = np.array([e.genome for e in evaluations])
    errors = np.array([e.error if e.ok else 1.0 for e in evaluations])
    Y = np.log(np.maximum(errors, LOG_FLOOR))[:, None]
    iterations = {}
    for e in evaluations:  # per iteration: its archive size, shortlist and the state stored with its trials
        if "iteration" in e.extra:
            iterations.setdefault(e.extra["iteration"], (e.extra["archive"], e.extra["shortlisted"],
                                                         e.extra["fit_state"]))
    started = time.perf_counter()
    listed_all = np.vstack([X] + [np.array(listed) for _, listed, _ in iterations.values()])
    short.errors(listed_all)  # every short fine-tune of the run, made again once (deterministic per genome)
    short_seconds = time.perf_counter() - started
    rows, state, shortlists = [], None, []

    def data(archive: int) -> Cheaper:
        return short_observations(short, X[:archive], shortlists, log_scale=True)

    for iteration, (archive, listed, stored) in sorted(iterations.items()):
        fit_seed = iteration_seed(config.seed, archive)
        row = {"iteration": iteration, "archive": archive}
        for step in ("first", "refit"):
            if step == "refit":
                shortlists.append(np.array(listed))
            cheaper = data(archive)
            row[f"{step} observations"] = archive + len(cheaper.X)
            for way in ("warm", "cold"):
                began = time.perf_counter()
                fitted = make_surrogate("gp-mf", seed=fit_seed, cheaper=cheaper).fit(
                    X[:archive], Y[:archive], start=state if way == "warm" else None)
                row[f"{step} {way} s"] = time.perf_counter() - began
                row[f"{step} {way} nll"] = negative_log_likelihood(fitted._gp)
                if way == "warm":
                    warm_state = fitted.state()
            state = warm_state
        row["off stored"] = state_distance(state, stored["gp-mf"])
        rows.append(row)
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)

    total = {key: sum(row[key] for row in rows) for key in rows[0] if key.endswith(" s")}
    worse = [row[f"{step} warm nll"] - row[f"{step} cold nll"] for row in rows for step in ("first", "refit")]
    lines = [f"# Warm refits of the multi-fidelity GP along `{LOOP}_seed{seed}` (LeNet-300-100)", "",
             f"Command: `python experiments/mf_warm_refits.py {seed}` (alone on the machine, one thread). Every fit "
             "the loop made, made again on its data: warm as the loop made it (the first fit of an iteration from the "
             "iteration before, the refit with the shortlist's short fine-tunes from the first fit) and cold from "
             "the defaults. Negative log marginal likelihood per observation (lower is better) and seconds; 'off "
             "stored': the largest difference between the replayed warm chain's hyperparameters after each iteration "
             "and those the run stored with its trials.", "",
             f"Short fine-tunes of the run made again first: {len(data(len(X)).X)} genomes, {short_seconds:.0f} s.", "",
             f"Seconds in all: cold {total['first cold s'] + total['refit cold s']:.0f} "
             f"({total['first cold s']:.0f} first fits, {total['refit cold s']:.0f} refits), warm "
             f"{total['first warm s'] + total['refit warm s']:.0f} ({total['first warm s']:.0f}, "
             f"{total['refit warm s']:.0f}). Warm NLL minus cold NLL per fit: median {np.median(worse):+.4f}, largest "
             f"{max(worse):+.4f}, smallest {min(worse):+.4f}.", "",
             "| iteration | archive | observations (first, refit) | first: cold NLL | s | warm NLL | s | refit: cold NLL"
             " | s | warm NLL | s | off stored |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['iteration']} | {row['archive']} | {row['first observations']}, "
                     f"{row['refit observations']} | " + " | ".join(
                         f"{row[f'{step} {way} nll']:.4f} | {row[f'{step} {way} s']:.1f}"
                         for step in ("first", "refit") for way in ("cold", "warm")) + f" | {row['off stored']:.1e} |")
    out = STUDY / f"mf_warm_refits_seed{seed}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
