"""Killed anywhere, a run resumed with the same command ends with the archive of an uninterrupted run.

Each scenario (NSGA-II, the GP loop with warm starts, the loop with two workers, a run whose model cache evicts)
is killed at three places: inside a fine-tune, inside the search's own work (surrogate fitting, or NSGA-II's
proposal step), and between a fine-tune and its commit to the study (the model is already in the cache). The
resumed archive must equal the uninterrupted one trial by trial: genome, error, warm-start source, prediction.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

import surrogate_emo.evaluate
from surrogate_emo.cache import ModelCache
from surrogate_emo.pipeline import run
from surrogate_emo.search.baselines import NSGA2Search
from surrogate_emo.search.surrogate import SurrogateSearch
from surrogate_emo.store import Study
from tiny import tiny_config

LOOP = dict(search="surrogate", n_init=6, q=3, budget=15, pool_size=20, pool_generations=3)
SCENARIOS = {
    "nsga2": dict(search="nsga2", budget=18, pop_size=6, warm_start=True),
    "gp_warm": dict(LOOP, surrogate="gp", warm_start=True),
    "loop_two_workers": dict(LOOP, surrogate="rf", warm_start=True, n_jobs=2),
    # 1 MB holds about 18 of the 60 models: eviction decides what later trials can start from
    "evicting_cache": dict(search="nsga2", budget=60, pop_size=6, warm_start=True, model_cache_mb=1,
                           finetune_steps=2),
}
# (what is patched, which call raises): every kill lands inside a batch, after some of its trials finished
KILLS = {
    "nsga2": {"finetune": 10, "search": 3, "commit": 10},
    "gp_warm": {"finetune": 11, "search": 2, "commit": 11},
    "loop_two_workers": {"finetune": 11, "search": 2, "commit": 11},
    # "uses": after a batch's last commit, before the cache records which models the batch used
    "evicting_cache": {"finetune": 45, "search": 8, "commit": 45, "uses": 8},
}


def _config(root, scenario, name):
    return tiny_config(root, name=name, final_test=False, **SCENARIOS[scenario])


def _archive(evaluations):
    return [(e.trial, e.genome.tolist(), e.error, e.source, e.extra.get("predicted")) for e in evaluations]


def _cache_state(root, name):
    """The model cache's entries, least recently used first, with whether each is kept (the front)."""
    with sqlite3.connect(root / "results" / name / "model_cache" / "index.sqlite") as db:
        return db.execute("SELECT label, kept FROM entries ORDER BY used").fetchall()


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    return root, {}


def _reference(references, scenario):
    root, done = references
    if scenario not in done:
        done[scenario] = run(_config(root, scenario, f"reference_{scenario}"))
    return root, done[scenario]


def _raise_on_call(monkeypatch, owner, name, call, after=False):
    """Make ``owner.name`` raise KeyboardInterrupt on its ``call``-th call (after doing its work, with ``after``)."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call and not after:
            raise KeyboardInterrupt
        result = original(*args, **kwargs)
        if calls["n"] == call:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(owner, name, patched)


@pytest.mark.parametrize("scenario, kill", [(s, k) for s in SCENARIOS for k in KILLS[s]])
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_archive(references, monkeypatch, scenario, kill):
    root, reference = _reference(references, scenario)
    if scenario == "evicting_cache":  # the bound really evicted models the run could have started from
        cache = ModelCache(root / "results" / f"reference_{scenario}" / "model_cache")
        assert len(cache.entries()) < len(reference.evaluations) - 10
    call = KILLS[scenario][kill]
    with monkeypatch.context() as patch:
        if kill == "finetune" and SCENARIOS[scenario].get("n_jobs", 1) == 1:
            _raise_on_call(patch, surrogate_emo.evaluate, "fit", call)
        elif kill == "finetune":  # the workers fine-tune; the search's process is killed while they do
            _raise_on_call(patch, Study, "record", call, after=True)
        elif kill == "commit":
            _raise_on_call(patch, Study, "record", call)
        elif kill == "uses":
            _raise_on_call(patch, ModelCache, "touch", call)
        elif SCENARIOS[scenario]["search"] == "surrogate":
            _raise_on_call(patch, SurrogateSearch, "_fitted", call)
        else:
            _raise_on_call(patch, NSGA2Search, "ask", call)
        with pytest.raises(KeyboardInterrupt):
            run(_config(root, scenario, f"{scenario}_{kill}"))
    study = Study(root / "results" / f"{scenario}_{kill}" / "study.sqlite")
    finished = len(study.evaluations(study.run_id(f"{scenario}_{kill}")))
    study.close()
    assert 0 < finished < len(reference.evaluations)

    resumed = run(_config(root, scenario, f"{scenario}_{kill}"))
    assert _archive(resumed.evaluations) == _archive(reference.evaluations)
    # and the cache the next trials would start from: same models, same least-recently-used order, same front
    assert _cache_state(root, f"{scenario}_{kill}") == _cache_state(root, f"reference_{scenario}")
    assert resumed.summary["replayed_from_study"] == finished
    assert resumed.summary["evaluated_now"] == len(reference.evaluations) - finished


def test_replay_within_float_noise_resumes_and_keeps_the_stored_genomes(tmp_path):
    """Another CPU's floats differ in the last bits: a study whose genomes differ by 1e-12 still resumes, and the
    archive keeps the stored genomes (the search is told them too, so what it proposes next follows them)."""
    config = tiny_config(tmp_path, budget=12, pop_size=6, final_test=False)
    run(config)
    path = tmp_path / "results" / "tiny" / "study.sqlite"
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT trial, genome FROM evaluations").fetchall()
        perturbed = {}
        for trial, genome in rows:
            values = np.clip(np.array(eval(genome)) + 1e-12 * (-1) ** trial, 0, 1)  # noqa: S307 - our own JSON list
            perturbed[trial] = values
            db.execute("UPDATE evaluations SET genome = ? WHERE trial = ?", (str(values.tolist()), trial))
    extended = run(tiny_config(tmp_path, budget=18, pop_size=6, final_test=False))
    assert extended.summary["replayed_from_study"] == 12 and extended.summary["evaluated_now"] == 6
    assert all(np.array_equal(e.genome, perturbed[e.trial]) for e in extended.evaluations[:12])


def _stored_rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT trial, genome, error, source FROM evaluations WHERE status != 'pending' "
                          "ORDER BY trial").fetchall()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_cleanly_and_the_rerun_finishes_the_same_archive(tmp_path, signum, code):
    psutil = pytest.importorskip("psutil")
    options = dict(budget=24, pop_size=8, base_epochs=3.0, finetune_steps=30, warm_start=True, final_test=False)
    command = [sys.executable, "-m", "surrogate_emo.cli", "run", "--name", "tiny", "--output-dir",
               str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--budget", "24", "--pop-size", "8",
               "--base-epochs", "3", "--finetune-steps", "30", "--n-jobs", "2", "--no-progress", "--no-final-test"]
    # its own process group, so Ctrl-C reaches the workers too, and SIGINT at its default even where this test was
    # started with it ignored (as a non-interactive shell starts a background job)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    database = tmp_path / "results" / "tiny" / "study.sqlite"
    deadline, rows, workers = time.time() + 180, [], []
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
        try:
            rows = _stored_rows(database) if database.exists() else []
        except sqlite3.OperationalError:
            continue
        if len(rows) >= 10:  # inside the second batch, with the workers fine-tuning
            workers = psutil.Process(process.pid).children(recursive=True)
            break
    assert workers, "the run should have been stopped while its workers were alive"
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # as a terminal's Ctrl-C does
    else:
        process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("surrogate-emo: interrupted after ") and \
        lines[0].endswith("evaluations; rerun the same command to resume"), err
    psutil.wait_procs(workers, timeout=10)
    alive = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [(w.pid, w.cmdline()) for w in alive]

    before = _stored_rows(database)
    assert len(before) < 24
    if signum == signal.SIGINT:
        return  # the rerun after a kill is the same whatever the signal: checked once, after SIGTERM
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    after = _stored_rows(database)
    # workers finish out of order, so the stored trials before the kill may have a gap (10 done, 9 still pending):
    # what must hold is that every stored row survives unchanged and the gaps are filled
    assert [row[0] for row in after] == list(range(24)) and set(before) <= set(after)
    # the uninterrupted run, in this process and on one core: the same archive
    run(tiny_config(tmp_path, name="reference", **options))
    assert _stored_rows(tmp_path / "results" / "reference" / "study.sqlite") == after
