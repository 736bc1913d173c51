"""Do short fine-tunes of other genomes, in a multi-fidelity GP, predict the 1-epoch error where the loops trail?

On one seed of the shared-base study: NSGA-II@1000's genomes between 30x and 300x, split in two by alternate
rows. One half gets a quarter-epoch fine-tune (fidelity 1); the other half is held out, its recorded 1-epoch
validation error the truth. Each model is fitted on the ehvi-joint loop's 100 full evaluations (that run's
archive, log errors), and is scored on the held-out genomes: Spearman within narrow bands of compression (size
alone ranks well across bands) and the median miss in error. The models:

- gp and gp-f0, the archive alone (gp-f0 reads the fidelity-0 error too);
- gp-mf with the archive's own quarter-epoch fine-tunes (what a shortlist loop has at its first iteration);
- gp-mf with those and the other half's (what it gathers by shortlisting in the band);
- for scale, gp-f0 told the other half's full errors (an oracle: 1-epoch fine-tunes instead of quarter ones).

    python experiments/mf_probe.py [SEED]     (default 0)

Writes results/lenet300_shared_base/mf_probe_seed<SEED>.md. About 325 quarter-epoch fine-tunes and six GP fits:
3 to 4 minutes on one core.
"""

from __future__ import annotations

import sys

import numpy as np
from band_fidelity import BANDS, band_counts, band_spearman, in_band  # this folder's: python experiments/mf_probe.py
from multifidelity_compare import STUDIES
from surrogate_emo.exporting import run_config
from surrogate_emo.fidelity import ShortFineTune
from surrogate_emo.pipeline import prepare
from surrogate_emo.search.surrogate import LOG_FLOOR
from surrogate_emo.surrogates import Cheaper, make_surrogate

STUDY = STUDIES["shared"]["new"]
LOOP = "surrogate_gp_f0_design_joint"
FRACTION = 0.25  # the short fine-tune's share of the full one's steps


def log_error(errors) -> np.ndarray:
    return np.log(np.maximum(np.asarray(errors, dtype=np.float64), LOG_FLOOR))[:, None]


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    runs = STUDY / "lenet-300-100_fashion-mnist"
    config, loop, _ = run_config(runs / f"{LOOP}_seed{seed}")
    _, nsga2, _ = run_config(runs / f"nsga2_seed{seed}")
    setup = prepare(config)
    archive = [e for e in loop if e.ok]
    X, Y = np.array([e.genome for e in archive]), log_error([e.error for e in archive])
    band = in_band(nsga2)
    genomes = np.array([e.genome for e in band])
    truth = np.array([e.error for e in band])
    compression = np.array([1 / e.ratios["params"] for e in band])
    told, held = np.arange(len(band)) % 2 == 0, np.arange(len(band)) % 2 == 1
    short = ShortFineTune(setup.evaluator, steps=round(FRACTION * setup.evaluator.steps), size=config.screen_size,
                          seed=seed)
    own = Cheaper(X, short.features(X), short.fidelity)
    both = Cheaper(np.vstack([X, genomes[told]]), np.vstack([own.Y, short.features(genomes[told])]), short.fidelity)
    models = {
        "gp, the loop's 100 full evaluations": make_surrogate("gp", seed=0).fit(X, Y),
        "gp-f0, the same": make_surrogate("gp-f0", seed=0, features=setup.zero_shot.features).fit(X, Y),
        "gp-mf, + their quarter-epoch fine-tunes": make_surrogate("gp-mf", seed=0, cheaper=own).fit(X, Y),
        f"gp-mf, + quarter-epoch fine-tunes of {told.sum()} other band genomes":
            make_surrogate("gp-mf", seed=0, cheaper=both).fit(X, Y),
        f"gp-f0 told those {told.sum()} genomes' 1-epoch errors (oracle)":
            make_surrogate("gp-f0", seed=0, features=setup.zero_shot.features).fit(
                np.vstack([X, genomes[told]]), np.vstack([Y, log_error(truth[told])])),
    }
    bands = list(zip(BANDS, BANDS[1:]))
    lines = [f"# Fidelity-1 data in a multi-fidelity GP, 30x to 300x (seed {seed}, LeNet-300-100)", "",
             f"Command: python experiments/mf_probe.py {seed}", "",
             f"Every model is fitted on {LOOP}_seed{seed}'s {len(X)} full evaluations; {held.sum()} of the "
             f"{len(band)} genomes NSGA-II@1000 evaluated between {BANDS[0]}x and {BANDS[-1]}x are held out (alternate "
             f"rows), the other {told.sum()} get a {short.steps}-step fine-tune ({FRACTION:g} of the full one). "
             "Spearman of each model's predicted error with the held-out genomes' recorded 1-epoch validation "
             "error within narrow bands of compression (held-out genomes in each), and the median miss |predicted "
             "- recorded| in error.", "",
             "| model | " + " | ".join(f"{a}-{b}x" for a, b in bands) + " | median miss |",
             "|---|" + "---|" * len(bands) + "---|",
             "| held-out genomes | " + " | ".join(band_counts(compression[held])) + " | |"]
    for name, model in models.items():
        predicted = np.exp(model.predict(genomes[held])[0][:, 0])
        cells = band_spearman(predicted, truth[held], compression[held])
        miss = np.median(np.abs(predicted - truth[held]))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {miss:.3f} |")
    out = STUDY / f"mf_probe_seed{seed}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
