"""First contact: a new user's ``surrogate-emo run`` on a fresh clone, each command's own folder, and resuming
with other output locations and running settings."""

from __future__ import annotations

import json
from pathlib import Path

from surrogate_emo.cli import main
from surrogate_emo.config import RESUMABLE_FIELDS, RunConfig
from surrogate_emo.experiment import Experiment

REPO = Path(__file__).parent.parent


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_first_readme_command_on_a_fresh_clone_runs_its_own_quickstart(tmp_path, monkeypatch, capsys):
    # a fresh clone: the committed quickstart study under results/, an empty home directory
    committed = tmp_path / "results" / "quickstart"
    committed.mkdir(parents=True)
    for name in ("study.sqlite", "summary.json"):
        (committed / name).write_bytes((REPO / "results" / "quickstart" / name).read_bytes())
    before = _tree(tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # `surrogate-emo run`, with a budget of 2 (a setting that does not change what a trial computes) to stay short
    assert main(["run", "--budget", "2", "--no-progress"]) == 0
    assert "outputs written to runs/quickstart/" in capsys.readouterr().out
    summary = json.loads((tmp_path / "runs" / "quickstart" / "summary.json").read_text())
    assert summary["run"] == "quickstart" and summary["evaluated_now"] == 2 and summary["replayed_from_study"] == 0
    assert list((tmp_path / "home" / ".cache" / "surrogate_emo" / "base").glob("*.pt"))
    assert _tree(tmp_path / "results") == before  # the committed study neither resumed nor touched


def test_each_configuration_gets_its_own_folder_and_the_same_command_finds_it_again():
    assert RunConfig().name == "quickstart" and RunConfig().run_dir == Path("runs") / "quickstart"
    loop = RunConfig(search="surrogate", surrogate="rf", infill="parego", budget=60)
    assert loop.name.startswith("digits-mlp-surrogate-") and len(loop.name) == len("digits-mlp-surrogate-") + 8
    assert RunConfig(search="surrogate", surrogate="rf", infill="parego").name == loop.name  # budget: resumable
    assert RunConfig(search="surrogate", surrogate="gp", infill="parego").name != loop.name
    assert RunConfig(seed=1).name != RunConfig(seed=2).name != "quickstart"
    # settings that do not change what a trial computes keep the quickstart's name
    resumable = dict(budget=5, time_limit=60.0, progress=False, output_dir="elsewhere", final_test=False, n_jobs=2,
                     cache_dir="/tmp/c", study="/tmp/s.sqlite")
    assert set(resumable) <= set(RESUMABLE_FIELDS) and RunConfig(**resumable).name == "quickstart"
    assert RunConfig(name="mine", seed=3).name == "mine"
    assert RunConfig(model="my_models:factory").name.startswith("digits-my_models-factory-nsga2-")  # a folder name


TINY = ["--base-epochs", "0.5", "--budget", "4", "--pop-size", "4", "--finetune-steps", "2", "--no-final-test"]


def test_a_run_resumes_with_another_cache_dir_n_jobs_progress_and_time_limit(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["run", "--name", "again", "--output-dir", out, "--cache-dir", str(tmp_path / "a"), "--no-progress",
                 *TINY]) == 0
    capsys.readouterr()
    assert main(["run", "--name", "again", "--output-dir", out, "--cache-dir", str(tmp_path / "b"), "--n-jobs", "2",
                 "--progress", "--time-limit", "600", *TINY]) == 0
    assert "resumed: 4 evaluations came from the study" in capsys.readouterr().out


def test_experiments_write_under_runs_unless_told_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Experiment(name="e", seeds=[0], methods={"nsga2": {}}).out_dir == Path("runs") / "e"
    path = tmp_path / "small.toml"
    path.write_text('name = "small"\nseeds = [0]\nproblems = ["zdt1"]\n[base]\nbudget = 4\n'
                    '[methods.nsga2]\nsearch = "nsga2"\npop_size = 2\n')
    assert main(["experiment", str(path), "--no-progress", "--output-dir", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "small" / "summary.md").exists() and not (tmp_path / "runs").exists()
