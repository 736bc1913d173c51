"""A run killed at any moment and started again with the same command resumes without losing or repeating work."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from surrogate_emo.errors import StudyMismatchError, SurrogateEMOWarning
from surrogate_emo.evaluate import Evaluator
from surrogate_emo.pipeline import run
from tiny import retrain_elsewhere, tiny_config


def _stored(results, name="tiny"):
    with sqlite3.connect(results / name / "study.sqlite") as db:
        return db.execute("SELECT trial, genome, error, seed FROM evaluations WHERE status != 'pending' "
                          "ORDER BY trial").fetchall()


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, budget=14, pop_size=6)
    reference = run(tiny_config(tmp_path, name="reference", budget=14, pop_size=6))

    original_call = Evaluator.evaluate
    calls = {"n": 0}

    def interrupted(self, genome, seed, start=None):
        if calls["n"] == 8:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original_call(self, genome, seed, start)

    monkeypatch.setattr(Evaluator, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(config)
    assert len(_stored(tmp_path / "results")) == 8
    with sqlite3.connect(tmp_path / "results" / "tiny" / "study.sqlite") as db:  # the rest of the batch was noted
        assert db.execute("SELECT trial FROM evaluations WHERE status = 'pending'").fetchall() == [(8,), (9,), (10,), (11,)]
    monkeypatch.setattr(Evaluator, "evaluate", original_call)

    resumed = run(config)
    assert resumed.summary["replayed_from_study"] == 8
    assert resumed.summary["evaluated_now"] == 6
    assert [e.error for e in resumed.evaluations] == [e.error for e in reference.evaluations]
    assert all(np.array_equal(a.genome, b.genome) for a, b in zip(resumed.evaluations, reference.evaluations))
    assert [row[0] for row in _stored(tmp_path / "results")] == list(range(14))


def test_a_finished_run_can_be_extended_by_raising_the_budget(tmp_path):
    run(tiny_config(tmp_path, budget=6))
    extended = run(tiny_config(tmp_path, budget=10))
    assert (extended.summary["replayed_from_study"], extended.summary["evaluated_now"]) == (6, 4)


def test_resuming_with_another_seed_is_refused(tmp_path):
    run(tiny_config(tmp_path, budget=4))
    with pytest.raises(StudyMismatchError, match="seed: stored 0, given 1"):
        run(tiny_config(tmp_path, budget=4, seed=1))


def test_a_field_the_search_never_reads_may_change_on_resume(tmp_path):
    run(tiny_config(tmp_path, budget=4))  # NSGA-II never reads the infill criterion
    assert run(tiny_config(tmp_path, budget=4, infill="ehvi")).summary["replayed_from_study"] == 4
    with pytest.raises(StudyMismatchError, match="pop_size: stored 6, given 8"):
        run(tiny_config(tmp_path, budget=4, pop_size=8))


def test_killed_process_resumes_with_the_same_command(tmp_path):
    command = [sys.executable, "-m", "surrogate_emo.cli", "run", "--name", "tiny", "--output-dir",
               str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--budget", "40", "--pop-size", "8",
               "--base-epochs", "3", "--finetune-steps", "25", "--no-progress", "--no-final-test"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = tmp_path / "results" / "tiny" / "study.sqlite"
    deadline = time.time() + 120
    rows = []
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
        if database.exists():
            try:
                rows = _stored(tmp_path / "results")
            except sqlite3.OperationalError:
                continue
            if len(rows) >= 5:
                break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 5 <= len(rows) < 40, "the run should have been killed part-way"
    before = _stored(tmp_path / "results")

    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    after = _stored(tmp_path / "results")
    assert [row[0] for row in after] == list(range(40))
    assert after[: len(before)] == before  # nothing finished before the kill was redone or changed


@pytest.mark.parametrize("surrogate", [dict(surrogate="rf"), dict(surrogate="rf-f0", screen_generations=1),
                                       dict(surrogate="gp-f0", refit="warm"),
                                       dict(surrogate="gp-f0", shortlist=5, refit="warm"),
                                       dict(surrogate="gp-mf", shortlist=5),
                                       dict(surrogate="gp-mf", shortlist=5, refit="warm"),
                                       dict(surrogate="gp-f0+rf-f0"),
                                       dict(surrogate="gp-f0", error_reference=0.5, whole_range_share=0.5),
                                       dict(surrogate="gp-mf", shortlist=5, refit="warm", infill="ehvi-joint",
                                            useful_error=0.5, useful_weight=4.0)],
                         ids=["rf", "rf-f0 screened", "gp-f0 warm refits", "gp-f0 shortlist", "gp-mf shortlist",
                              "gp-mf shortlist warm refits", "portfolio",
                              "two reference points", "gp-mf shortlist weighted errors"])
def test_surrogate_run_interrupted_mid_batch_resumes_to_the_same_archive(tmp_path, monkeypatch, surrogate):
    options = dict(search="surrogate", n_init=4, q=3, budget=13, pool_size=20, pool_generations=3,
                   final_test=False, **surrogate)
    reference = run(tiny_config(tmp_path, name="reference", **options))
    original_call = Evaluator.evaluate
    calls = {"n": 0}

    def interrupted(self, genome, seed, start=None):
        if calls["n"] == 8:  # trials 0-3 design, 4-6 first batch, 7 done; killed during trial 8 of batch 7-9
            raise KeyboardInterrupt
        calls["n"] += 1
        return original_call(self, genome, seed, start)

    monkeypatch.setattr(Evaluator, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_config(tmp_path, **options))
    monkeypatch.setattr(Evaluator, "evaluate", original_call)
    resumed = run(tiny_config(tmp_path, **options))
    assert resumed.summary["replayed_from_study"] == 8 and resumed.summary["evaluated_now"] == 5
    assert [e.trial for e in resumed.evaluations] == list(range(13))
    assert all(np.array_equal(a.genome, b.genome) for a, b in zip(resumed.evaluations, reference.evaluations))
    assert [e.error for e in resumed.evaluations] == [e.error for e in reference.evaluations]
    numbered = [e.extra.get("iteration") for e in resumed.evaluations]  # carried on, not restarted, after the kill
    assert numbered == [e.extra.get("iteration") for e in reference.evaluations] and numbered[-1] == 2


def test_a_wall_clock_limit_stops_between_batches_and_says_so(tmp_path):
    result = run(tiny_config(tmp_path, budget=50, pop_size=5, time_limit=1e-9, final_test=False))
    assert result.summary["stopped_by"] == "time_limit"
    assert result.summary["true_evaluations"] == 0
    resumed = run(tiny_config(tmp_path, budget=10, pop_size=5, final_test=False))  # the limit may change on resume
    assert resumed.summary["stopped_by"] == "budget" and resumed.summary["true_evaluations"] == 10


def test_warm_started_run_interrupted_mid_batch_resumes_to_the_same_archive(tmp_path, monkeypatch):
    options = dict(budget=24, pop_size=6, warm_start=True, final_test=False)
    reference = run(tiny_config(tmp_path, name="reference", **options))
    assert any(e.source.startswith("cache:") for e in reference.evaluations[12:16])  # warm starts in the killed batch
    original_call = Evaluator.evaluate
    calls = {"n": 0}

    def interrupted(self, genome, seed, start=None):
        if calls["n"] == 14:  # batch 12-17: trials 12 and 13 done (and cached), killed during 14
            raise KeyboardInterrupt
        calls["n"] += 1
        return original_call(self, genome, seed, start)

    monkeypatch.setattr(Evaluator, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_config(tmp_path, **options))
    monkeypatch.setattr(Evaluator, "evaluate", original_call)
    resumed = run(tiny_config(tmp_path, **options))  # trials 12 and 13 are in the cache now, not at the batch's start
    assert resumed.summary["evaluated_now"] == 10
    assert [e.source for e in resumed.evaluations] == [e.source for e in reference.evaluations]
    assert [e.error for e in resumed.evaluations] == [e.error for e in reference.evaluations]


def test_a_stored_genome_that_differs_from_the_replayed_one_stops_the_resume(tmp_path):
    config = tiny_config(tmp_path, budget=6, pop_size=6, final_test=False)
    run(config)
    database = tmp_path / "results" / "tiny" / "study.sqlite"
    with sqlite3.connect(database) as db:
        genome = json.loads(db.execute("SELECT genome FROM evaluations WHERE trial = 3").fetchone()[0])
        genome[1] += 1e-3 if genome[1] < 0.5 else -1e-3  # a real difference, far beyond float noise
        db.execute("UPDATE evaluations SET genome = ? WHERE trial = 3", (json.dumps(genome),))
    with pytest.raises(StudyMismatchError, match=r"\btrial 3\b"):
        run(config)


def test_another_configuration_is_refused_before_any_data_or_training(tmp_path):
    run(tiny_config(tmp_path, budget=4))
    fresh_cache = tmp_path / "fresh_cache"
    with pytest.raises(StudyMismatchError, match="seed: stored 0, given 1"):
        run(tiny_config(tmp_path, budget=4, seed=1, cache_dir=str(fresh_cache)))
    assert not fresh_cache.exists()  # refused before the base model was trained


def test_a_study_whose_stored_keys_became_resumable_still_resumes(tmp_path):
    """Studies written before cache_dir could change on resume stored it: a key the given configuration no
    longer holds is not compared (the committed quickstart study is such a study)."""
    run(tiny_config(tmp_path, budget=4))
    with sqlite3.connect(tmp_path / "results" / "tiny" / "study.sqlite") as db:
        stored = json.loads(db.execute("SELECT config FROM runs").fetchone()[0])
        stored["cache_dir"] = "~/.cache/surrogate_emo"
        db.execute("UPDATE runs SET config = ?", (json.dumps(stored),))
    assert run(tiny_config(tmp_path, budget=4)).summary["replayed_from_study"] == 4


def test_a_step_limit_counts_every_session_and_stops_between_batches(tmp_path):
    options = dict(budget=50, pop_size=5, finetune_steps=10, warm_start=False, final_test=False)
    first = run(tiny_config(tmp_path, step_limit=25, **options))
    assert first.summary["stopped_by"] == "step_limit" and first.summary["true_evaluations"] == 5  # 50 steps >= 25
    again = run(tiny_config(tmp_path, step_limit=80, **options))  # the 50 stored steps count: one batch more
    assert again.summary["stopped_by"] == "step_limit" and again.summary["true_evaluations"] == 10
    assert again.summary["replayed_from_study"] == 5


def test_a_resume_on_another_base_model_is_warned_and_kept_in_the_run_facts(tmp_path):
    """A base model trained again (its cache lost, another machine) is another model: the run says so, and its
    summary lists both bases with the evaluation at which the second came."""
    first = run(tiny_config(tmp_path, budget=4, final_test=False))
    assert [entry["from_evaluation"] for entry in first.summary["base_history"]] == [0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SurrogateEMOWarning)  # the same base: no warning
        same = run(tiny_config(tmp_path, budget=4, final_test=False))
    assert same.summary["base_history"] == first.summary["base_history"]
    retrain_elsewhere(tmp_path / "cache")
    with pytest.warns(SurrogateEMOWarning, match=rf"another dense base model than its last session's: expected "
                      rf"digest {first.summary['base_digest']}, .*its 4 stored evaluations were made on the other"):
        again = run(tiny_config(tmp_path, budget=6, final_test=False))
    history = again.summary["base_history"]
    assert [entry["from_evaluation"] for entry in history] == [0, 4]
    assert history[0]["digest"] == first.summary["base_digest"] != again.summary["base_digest"] == history[1]["digest"]


def test_a_base_change_before_any_evaluation_or_in_a_run_made_before_bases_were_recorded(tmp_path):
    """Nothing evaluated yet: the new base is simply the run's. A run whose study predates the record (no history)
    is warned about only where its stored dense error differs, and its first evaluations' base stays unknown."""
    config = tiny_config(tmp_path, budget=4, final_test=False)
    run(config)
    database = tmp_path / "results" / "tiny" / "study.sqlite"
    with sqlite3.connect(database) as db:  # as a session that stopped before its first evaluation leaves it
        db.execute("DELETE FROM evaluations")
    retrain_elsewhere(tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SurrogateEMOWarning)
        fresh = run(config)
    assert [entry["from_evaluation"] for entry in fresh.summary["base_history"]] == [0]

    with sqlite3.connect(database) as db:  # as a study written before runs recorded their base
        info = json.loads(db.execute("SELECT info FROM runs").fetchone()[0])
        del info["base_history"], info["base_digest"]
        db.execute("UPDATE runs SET info = ?", (json.dumps(info),))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SurrogateEMOWarning)  # the same dense error: no warning
        old = run(config)
    assert old.summary["base_history"] == [{"digest": None, "dense_val_error": info["dense_val_error"],
                                            "from_evaluation": 0}]
    retrain_elsewhere(tmp_path / "cache", shift=0.5)
    with pytest.warns(SurrogateEMOWarning, match=r"expected digest not recorded, dense validation error"):
        moved = run(tiny_config(tmp_path, budget=6, final_test=False))
    assert [entry["digest"] is None for entry in moved.summary["base_history"]] == [True, False]
