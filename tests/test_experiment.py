"""The experiment harness: synthetic problems, every method x seed run once and skipped after, failures kept
visible, interrupted runs resumed, and a report whose numbers are those of the studies."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3

import numpy as np
import pytest
import torch

from threadpoolctl import threadpool_info

from surrogate_emo.cli import main
from surrogate_emo.config import RunConfig
from surrogate_emo.errors import ConfigError
from surrogate_emo.experiment import Experiment, run_experiment
from surrogate_emo.front import hypervolume
from surrogate_emo.pipeline import run
from surrogate_emo.problems import SyntheticEvaluator
from surrogate_emo.search.base import Search
from surrogate_emo.store import Study
from surrogate_emo.train import weights_digest
from tiny import retrain_elsewhere

TINY = """
name = "tiny"
output_dir = "{out}"
seeds = [0, 1]
problems = ["zdt1", "dtlz2"]
baselines = ["nsga2"]
[base]
budget = 16
error_scale = "linear"
n_init = 8
q = 4
pool_size = 12
pool_generations = 3
pop_size = 8
[methods.surrogate_rf]
search = "surrogate"
surrogate = "rf"
[methods.nsga2]
search = "nsga2"
[methods.broken]
search = "surrogate"
surrogate = "no-such-surrogate"
seeds = [0]
budget = 12
"""


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    path = root / "tiny.toml"
    path.write_text(TINY.format(out=root / "results"))
    experiment = Experiment.from_file(path)
    outcomes = run_experiment(experiment, jobs=1, progress=False)
    return experiment, outcomes, path


def test_synthetic_evaluator_maps_the_unit_cube_and_knows_its_front():
    zdt1 = SyntheticEvaluator("zdt1")
    assert zdt1.objectives(zdt1(np.zeros(6), seed=0)).tolist() == [0.0, 1.0]
    # the dense true front's hypervolume approaches the exact 1.1 * 1.1 - 1/3 - 0 area: 0.8767
    assert hypervolume(zdt1.true_front(), zdt1.ref_point) == pytest.approx(0.8767, abs=1e-3)
    dtlz2 = SyntheticEvaluator("dtlz2")
    values = dtlz2.objectives(dtlz2(np.full(6, 0.5), seed=0))
    assert values.shape == (3,) and np.sum(values**2) == pytest.approx(1.0)  # x_M = 0.5 puts it on the sphere
    with pytest.raises(ConfigError, match="known"):
        SyntheticEvaluator("zdt9")


def test_every_run_is_made_and_a_broken_one_is_reported(finished):
    experiment, outcomes, _ = finished
    statuses = {o["run"]: o["status"] for o in outcomes}
    assert len(statuses) == 2 * (2 + 2 + 1)
    assert all(s == "ran" for run, s in statuses.items() if "broken" not in run)
    broken = [s for run, s in statuses.items() if "broken" in run]
    assert len(broken) == 2 and all(s.startswith("failed: ConfigError") and "no-such-surrogate" in s for s in broken)
    assert (experiment.out_dir / "zdt1" / "broken_seed0" / "error.txt").exists()
    summary = (experiment.out_dir / "summary.md").read_text()
    assert "broken (seed 0: failed (see error.txt))" in summary
    assert "| HV at 12 (median) |" in summary  # budgets differ: every method is also shown at the smallest


def test_report_numbers_are_those_of_the_studies(finished):
    experiment, _, _ = finished
    runs = _rows(experiment.out_dir / "runs.csv")
    row = next(r for r in runs if r["problem"] == "dtlz2" and r["method"] == "surrogate_rf" and r["seed"] == "1")
    assert row["status"] == "finished" and int(row["true_evaluations"]) == 16
    study = Study(experiment.out_dir / "dtlz2" / "surrogate_rf_seed1" / "study.sqlite")
    evaluator = SyntheticEvaluator("dtlz2")
    stored = list(study.evaluations(study.run_id("surrogate_rf_seed1")).values())
    study.close()
    F = np.array([evaluator.objectives(e) for e in stored])
    assert float(row["hv_final"]) == pytest.approx(hypervolume(F, evaluator.ref_point))
    trace = [r for r in _rows(experiment.out_dir / "trace.csv")
             if r["problem"] == "dtlz2" and r["method"] == "surrogate_rf" and r["seed"] == "1"]
    assert [int(r["evaluation"]) for r in trace] == list(range(1, 17))
    hv = [float(r["hv"]) for r in trace]
    assert hv == sorted(hv) and hv[-1] == pytest.approx(float(row["hv_final"]))
    assert all(float(r["igd"]) >= 0 for r in trace)
    # the surrogate's optimizer time is stored with each proposed trial; the initial design cost none of it
    assert float(trace[-1]["optimizer_seconds"]) > 0
    # prediction errors exist for the infill points only, not for the initial design
    assert [r["prediction_abs_error"] != "" for r in trace] == [False] * 8 + [True] * 8
    summary = {(r["problem"], r["method"]): r for r in _rows(experiment.out_dir / "summary.csv")}
    assert float(summary["dtlz2", "surrogate_rf"]["optimizer_seconds_per_iteration"]) > 0
    assert summary["zdt1", "broken"]["finished"] == "0"
    for name in ("hv_vs_evaluations.png", "hv_vs_wallclock.png", "fronts.png"):
        assert (experiment.out_dir / name).stat().st_size > 0


def test_finished_runs_are_skipped_and_an_interrupted_one_resumes(finished):
    experiment, _, _ = finished
    run_dir = experiment.out_dir / "zdt1" / "nsga2_seed1"
    before = _rows(experiment.out_dir / "runs.csv")
    # interrupt: the summary never got written and the last 5 evaluations were lost
    (run_dir / "summary.json").unlink()
    with sqlite3.connect(run_dir / "study.sqlite") as db:
        db.execute("DELETE FROM evaluations WHERE trial >= 11")
    outcomes = run_experiment(experiment, jobs=1, progress=False)
    statuses = {o["run"]: o["status"] for o in outcomes}
    assert statuses["zdt1/nsga2_seed1"] == "ran"
    assert all(s.startswith("skipped") for run, s in statuses.items() if run != "zdt1/nsga2_seed1"
               and "broken" not in run)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["replayed_from_study"] == 11 and summary["evaluated_now"] == 5
    after = _rows(experiment.out_dir / "runs.csv")
    assert [r["hv_final"] for r in after] == [r["hv_final"] for r in before]  # the same archive, rebuilt


def test_the_cli_writes_the_report(finished, capsys):
    _, _, path = finished
    assert main(["experiment", str(path), "--report-only"]) == 0
    assert "summary.md" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ('problems = ["zdt9"]', "unknown problem 'zdt9'"),
    ('baselines = ["nsga3"]', "not among the methods"),
    ('budgett = 3', "unknown experiment keys"),
])
def test_bad_experiment_files_are_refused(tmp_path, extra, message):
    text = TINY.format(out=tmp_path).replace('baselines = ["nsga2"]', "").replace('problems = ["zdt1", "dtlz2"]', "")
    path = tmp_path / "bad.toml"
    path.write_text(extra + "\n" + text)
    with pytest.raises(ConfigError, match=message):
        Experiment.from_file(path)


def test_a_bad_run_option_is_refused_before_anything_runs(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.format(out=tmp_path).replace("pop_size = 8", "pop_size = 1"))
    with pytest.raises(ConfigError, match="pop_size"):
        Experiment.from_file(path)
    assert not (tmp_path / "tiny").exists()


class ThreadRecordingSearch(Search):
    """Random proposals that record the native thread pools' sizes seen while the run searches."""

    seen: list[int] = []

    def __init__(self, dim: int, n_obj: int, seed: int = 0, **_) -> None:
        super().__init__(dim, n_obj, seed)
        self.rng = np.random.default_rng(seed)

    def ask(self, n_max):
        ThreadRecordingSearch.seen.extend(pool["num_threads"] for pool in threadpool_info())
        return self.rng.random((min(4, n_max), self.dim))

    def tell(self, X, F):
        pass


def test_a_run_holds_blas_and_openmp_to_its_thread_count(tmp_path, monkeypatch):
    monkeypatch.setattr("surrogate_emo.pipeline.search_class", lambda config: ThreadRecordingSearch)
    before = [pool["num_threads"] for pool in threadpool_info()]
    ThreadRecordingSearch.seen = []
    run(RunConfig(name="threads", output_dir=str(tmp_path), budget=8, progress=False, threads=1, problem="zdt1"))
    assert ThreadRecordingSearch.seen and set(ThreadRecordingSearch.seen) == {1}
    assert [pool["num_threads"] for pool in threadpool_info()] == before  # restored after the run


def _zdt1(x: np.ndarray) -> tuple[float, float]:
    """ZDT1 by its definition: f1 = x1, g = 1 + 9 mean(x2..xn), f2 = g (1 - sqrt(f1 / g))."""
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    return float(x[0]), g * (1.0 - np.sqrt(x[0] / g))


def _hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` inside the box up to ``ref``: a sweep over f1."""
    area, best_f2 = 0.0, ref[1]
    for f1, f2 in sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1]):
        if f2 < best_f2:
            area += (ref[0] - f1) * (best_f2 - f2)
            best_f2 = f2
    return area


def test_report_only_rewrites_the_summary_from_the_studies(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text(f'name = "small"\noutput_dir = "{tmp_path / "results"}"\nseeds = [0]\nproblems = ["zdt1"]\n'
                    '[base]\nbudget = 6\n[methods.nsga2]\nsearch = "nsga2"\npop_size = 3\n')
    assert main(["experiment", str(path), "--no-progress"]) == 0
    out_dir = tmp_path / "results" / "small"
    (out_dir / "summary.md").unlink()
    (out_dir / "summary.csv").unlink()
    assert main(["experiment", str(path), "--report-only"]) == 0
    study = Study(out_dir / "zdt1" / "nsga2_seed0" / "study.sqlite")
    genomes = [e.genome for e in study.evaluations(study.run_id("nsga2_seed0")).values()]
    study.close()
    assert len(genomes) == 6
    points = [_zdt1(x) for x in genomes]
    expected = _hypervolume_2d(points, (1.1, 1.1))
    # the true front f2 = 1 - sqrt(f1) at 1,000 evenly spaced f1; IGD: mean distance from it to the found front
    f1 = np.linspace(0.0, 1.0, 1000)
    true_front = np.column_stack([f1, 1.0 - np.sqrt(f1)])
    found = np.array([p for p in points if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)])
    igd = float(np.mean(np.min(np.linalg.norm(true_front[:, None, :] - found[None, :, :], axis=2), axis=1)))
    rows = _rows(out_dir / "summary.csv")
    assert [(r["problem"], r["method"], r["runs"], r["finished"], r["budget"]) for r in rows] == [
        ("zdt1", "nsga2", "1", "1", "6")]
    assert float(rows[0]["hv_median"]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(rows[0]["igd_median"]) == pytest.approx(igd, rel=1e-9)
    assert float(rows[0]["true_front_hv"]) == pytest.approx(_hypervolume_2d(list(map(tuple, true_front)),
                                                                           (1.1, 1.1)), rel=1e-9)
    summary = (out_dir / "summary.md").read_text()
    assert f"| nsga2 | 1/1 | 6 | {expected:.4f} [{expected:.4f}, {expected:.4f}] |" in summary


def test_a_compression_report_gives_the_hypervolume_on_both_scales(tmp_path):
    path = tmp_path / "scales.toml"
    path.write_text(f'name = "scales"\noutput_dir = "{tmp_path / "results"}"\nseeds = [0]\n'
                    f'[base]\nbudget = 6\nbase_epochs = 3.0\nfinetune_steps = 4\nprogress = false\n'
                    f'cache_dir = "{tmp_path / "cache"}"\n[methods.nsga2]\nsearch = "nsga2"\npop_size = 3\n')
    assert main(["experiment", str(path), "--no-progress"]) == 0
    out_dir = tmp_path / "results" / "scales"
    run_dir = next(out_dir.glob("*/nsga2_seed0"))
    study = Study(run_dir / "study.sqlite")
    stored = list(study.evaluations(study.run_id("nsga2_seed0")).values())
    study.close()
    linear = [(e.error, e.ratios["params"]) for e in stored]
    log = [(error, 1 + np.log10(ratio) / 3) for error, ratio in linear]
    row = _rows(out_dir / "summary.csv")[0]
    assert float(row["hv_linear_median"]) == pytest.approx(_hypervolume_2d(linear, (1.0, 1.0)), rel=1e-9)
    assert float(row["hv_log_median"]) == pytest.approx(_hypervolume_2d(log, (1.0, 1.0)), rel=1e-9)
    assert float(row["hv_median"]) == pytest.approx(float(row["hv_log_median"]), rel=1e-12)  # the default scale
    assert "| HV, log scale (median) | HV, linear scale (median) |" in (out_dir / "summary.md").read_text()


def test_an_experiment_keeps_its_base_models_in_its_own_folder(tmp_path):
    """Committed with the study, the base model per seed is the one every method and later session compresses."""
    path = tmp_path / "bases.toml"
    path.write_text(f'name = "bases"\noutput_dir = "{tmp_path / "results"}"\nseeds = [0]\n'
                    f'[base]\nbudget = 3\nbase_epochs = 3.0\nfinetune_steps = 4\nfinal_test = false\n'
                    f'[methods.nsga2]\nsearch = "nsga2"\npop_size = 3\n[methods.random]\nsearch = "random"\n'
                    f'pop_size = 3\n[methods.elsewhere]\nsearch = "random"\npop_size = 3\n'
                    f'cache_dir = "{tmp_path / "cache"}"\n')
    experiment = Experiment.from_file(path)
    assert {spec.method: spec.config.cache_dir for spec in experiment.runs()} == {
        "nsga2": str(experiment.out_dir), "random": str(experiment.out_dir), "elsewhere": str(tmp_path / "cache")}
    assert main(["experiment", str(path), "--no-progress"]) == 0
    (base,) = (experiment.out_dir / "base").glob("*.pt")
    digests = {spec.method: json.loads((spec.run_dir / "summary.json").read_text())["base_digest"]
               for spec in experiment.runs()}
    assert digests["nsga2"] == digests["random"] == weights_digest(torch.load(base, weights_only=True))
    summary = (experiment.out_dir / "summary.md").read_text()
    assert f"every run of a seed compressed the same dense model (weights digest per seed: seed 0 {digests['nsga2']})" in summary

    retrain_elsewhere(tmp_path / "cache")  # the other method's base, from another session
    shutil.rmtree(next(spec.run_dir for spec in experiment.runs() if spec.method == "elsewhere"))
    assert main(["experiment", str(path), "--no-progress"]) == 0
    assert "**not one per seed**" in (experiment.out_dir / "summary.md").read_text()
    assert "Base models per seed: seed 0: 2." in (experiment.out_dir / "summary.md").read_text()


RECIPE_EXPERIMENT = """
name = "recipes"
output_dir = "{out}"
seeds = [0]
[base]
dataset = "digits"
model = "mlp"
base_epochs = 3
cache_dir = "{out}/cache"
[recipes.olmp]
recipe = "olmp"
deltas = [0.05]
iterations = 60
prune_until = 30
ncs_every = 20
ncs_evaluations = 20
ncs_pop = 4
baselines = []
"""


def _written(path, text):
    path.write_text(text)
    return path


def test_an_experiment_runs_its_recipes_and_reports_them(tmp_path):
    path = tmp_path / "recipes.toml"
    path.write_text(RECIPE_EXPERIMENT.format(out=tmp_path))
    experiment = Experiment.from_file(path)
    outcomes = run_experiment(experiment, jobs=1, progress=False)
    assert {o["run"]: o["status"] for o in outcomes} == {"recipe olmp_seed0": "ran"}
    summary = (experiment.out_dir / "summary.md").read_text()
    assert "## Published methods (recipes)" in summary and "| olmp | 0 | OLMP | prune and adjust | 1 |" in summary
    table = (experiment.out_dir / "mlp_digits" / "olmp_seed0" / "models.csv").read_text()
    run_experiment(experiment, jobs=1, progress=False)
    assert (experiment.out_dir / "mlp_digits" / "olmp_seed0" / "models.csv").read_text() == table
    without = Experiment.from_file(_written(tmp_path / "own.toml", RECIPE_EXPERIMENT.format(out=tmp_path).replace(
        f'cache_dir = "{tmp_path}/cache"\n', "")))
    assert without.recipe_files()[0].run_config().cache_dir == str(without.out_dir)  # beside the methods' bases
    path.write_text(RECIPE_EXPERIMENT.format(out=tmp_path).replace('recipe = "olmp"', 'recipe = "nope"'))
    with pytest.raises(ConfigError, match="needs recipe = one of"):
        Experiment.from_file(path)


def test_a_run_stopped_by_its_time_limit_is_done_until_the_file_changes_the_limit(tmp_path):
    path = tmp_path / "timed.toml"
    text = (f'name = "timed"\noutput_dir = "{tmp_path / "results"}"\nseeds = [0]\nproblems = ["zdt1"]\n'
            '[base]\nbudget = 12\n[methods.nsga2]\nsearch = "nsga2"\npop_size = 4\ntime_limit = {limit}\n')
    path.write_text(text.format(limit="1e-9"))  # stopped before its first batch
    first = run_experiment(Experiment.from_file(path), jobs=1, progress=False)
    summary_path = tmp_path / "results" / "timed" / "zdt1" / "nsga2_seed0" / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert first[0]["status"] == "ran" and summary["stopped_by"] == "time_limit" and summary["time_limit"] == 1e-9
    assert summary["true_evaluations"] == 0
    again = run_experiment(Experiment.from_file(path), jobs=1, progress=False)
    assert again[0]["status"].startswith("skipped")  # the same limit: this session's share was spent
    path.write_text(text.format(limit="600"))  # a longer limit carries it on to its budget
    carried = run_experiment(Experiment.from_file(path), jobs=1, progress=False)
    summary = json.loads(summary_path.read_text())
    assert carried[0]["status"] == "ran" and summary["stopped_by"] == "budget"
    assert summary["true_evaluations"] == 12 and summary["time_limit"] == 600
