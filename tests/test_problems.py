"""Problems beyond the four: any pymoo test problem by spec, a user's problem by import path, their reference
points, and bad specs refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pymoo.util.remote import Remote

from surrogate_emo.cli import main
from surrogate_emo.config import RunConfig, config_from_dict
from surrogate_emo.errors import ConfigError
from surrogate_emo.experiment import Experiment
from surrogate_emo.pipeline import run
from surrogate_emo.problems import SyntheticEvaluator, parse_problem, problem_folder, problem_label

ROOT = Path(__file__).resolve().parents[1]

USER_MODULE = '''
import numpy as np
from pymoo.core.problem import Problem


class Bowls(Problem):
    """Two shifted bowls on [-1, 1]^n: an "expensive" function of a user's own."""

    def __init__(self, n_var=3, shift=0.5):
        super().__init__(n_var=n_var, n_obj=2, xl=-1.0, xu=1.0)
        self.shift = shift

    def _evaluate(self, x, out, *args, **kwargs):
        out["F"] = np.column_stack([(x**2).sum(axis=1), ((x - self.shift) ** 2).sum(axis=1)])


def make(n_var=3, shift=0.5):
    return Bowls(n_var, shift)


def not_a_problem():
    return "bowls"
'''


@pytest.fixture
def offline(monkeypatch):
    """pymoo downloads some Pareto fronts (DTLZ7 with 3 objectives): here, as offline, none can be fetched."""
    def refuse(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(Remote, "load", refuse)


def _tiny_problem_config(tmp_path, problem: str, **overrides) -> RunConfig:
    values = dict(name="p", output_dir=str(tmp_path), problem=problem, budget=12, pop_size=6, progress=False,
                  n_init=6, q=3, pool_size=12, pool_generations=3, surrogate="rf", error_scale="linear")
    return RunConfig(**{**values, **overrides})


def test_specs_are_read_as_numbers_flags_words_and_lists():
    assert parse_problem("zdt6") == ("zdt6", {})
    assert parse_problem("DTLZ7  n_obj=3 scale=0.5 strict=false tag=a ref_point=1,1.5,7") == (
        "dtlz7", {"n_obj": 3, "scale": 0.5, "strict": False, "tag": "a", "ref_point": [1, 1.5, 7]})
    table = {"name": "dtlz7", "ref_point": [1, 1.5, 7], "n_obj": 3}
    assert parse_problem(table) == ("dtlz7", {"ref_point": [1, 1.5, 7], "n_obj": 3})
    assert problem_label(table) == problem_label("dtlz7 n_obj=3 ref_point=1,1.5,7") == "dtlz7 n_obj=3 ref_point=1,1.5,7"
    assert problem_folder(table) == "dtlz7-n_obj-3-ref_point-1-1.5-7"
    assert problem_folder("zdt1") == "zdt1"  # the committed studies' folders
    assert parse_problem("mine.mod:Make k=2") == ("mine.mod:Make", {"k": 2})  # an import path keeps its case
    # a table in a config file becomes the same spec
    assert config_from_dict({"problem": table}).problem == "dtlz7 ref_point=1,1.5,7 n_obj=3"


def test_the_four_classic_problems_keep_their_settings_and_reference_points():
    for name, n_obj in [("zdt1", 2), ("zdt2", 2), ("zdt3", 2), ("dtlz2", 3)]:
        evaluator = SyntheticEvaluator(name)
        assert (evaluator.name, evaluator.dim, evaluator.n_obj) == (name, 6, n_obj)
        assert evaluator.ref_point.tolist() == [1.1] * n_obj
    assert SyntheticEvaluator("zdt1 n_var=10").dim == 10
    assert SyntheticEvaluator("zdt1 n_var=10").ref_point.tolist() == [1.1, 1.1]


def test_a_reference_point_comes_from_the_option_or_from_the_known_front(offline):
    zdt6 = SyntheticEvaluator("zdt6")  # front: f1 in [0.2808, 1], f2 in [0, 0.9212]
    assert zdt6.ref_point == pytest.approx([1 + 0.1 * (1 - 0.2807753191), 0.9211652 * 1.1], abs=1e-4)
    assert SyntheticEvaluator("zdt6 ref_point=2,3").ref_point.tolist() == [2.0, 3.0]
    assert SyntheticEvaluator("zdt6 ref_point=2").ref_point.tolist() == [2.0, 2.0]
    with pytest.raises(ConfigError, match=r"no Pareto front known here.*'dtlz7 n_obj=3 ref_point=1.1,1.1,1.1'"):
        SyntheticEvaluator("dtlz7 n_obj=3")


@pytest.mark.parametrize("search", ["nsga2", "surrogate"])
@pytest.mark.parametrize("problem", ["zdt6", "dtlz7 n_obj=3 ref_point=1,1,7"])
def test_any_pymoo_problem_runs_through_run(tmp_path, offline, problem, search):
    result = run(_tiny_problem_config(tmp_path, problem, search=search))
    n_obj = 3 if "dtlz7" in problem else 2
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["problem"] == problem and summary["true_evaluations"] == 12
    assert summary["final_hypervolume"] == result.summary["final_hypervolume"] >= 0  # 12 points may all miss
    assert len(summary["hypervolume_reference_point"]) == n_obj
    assert (summary["true_front_hypervolume"] is None) == ("dtlz7" in problem)  # offline: no front to fetch
    header = (result.run_dir / "evaluations.csv").read_text().splitlines()[0].split(",")
    assert [f"f{i}" for i in range(1, n_obj + 1)] == [c for c in header if c in ("f1", "f2", "f3")]
    assert "x10" in header  # the problem's own variables (10 by pymoo's default for both)
    assert result.front and all(set(row) >= {"f1", "f2", "trial"} for row in result.front)
    for plot in ("pareto_front.png", "convergence.png"):
        assert (result.run_dir / plot).stat().st_size > 0
    if search == "surrogate":
        assert any("predicted" in e.extra for e in result.evaluations)  # the loop's infill points


def test_lower_bounds_of_a_problem_reach_the_loop_and_never_pymoo(tmp_path, monkeypatch):
    from surrogate_emo.search import SurrogateSearch

    evaluator = SyntheticEvaluator("zdt1 lower_bounds=0,-1")
    assert evaluator.lower_bounds.tolist() == [0.0, -1.0] and evaluator.ref_point.tolist() == [1.1, 1.1]
    assert SyntheticEvaluator("zdt1").lower_bounds is None
    told = []
    original = SurrogateSearch.__init__

    def spy(self, *args, **kwargs):
        told.append(kwargs.get("lower_bounds"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(SurrogateSearch, "__init__", spy)
    result = run(_tiny_problem_config(tmp_path, "zdt1 lower_bounds=0", search="surrogate"))
    assert told[-1].tolist() == [0.0, 0.0]
    assert result.summary["problem"] == "zdt1 lower_bounds=0" and len(result.evaluations) == 12


def test_a_user_problem_by_import_path_runs_from_the_command_line(tmp_path):
    (tmp_path / "userproblems.py").write_text(USER_MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    spec = "userproblems:make n_var=4 shift=0.25 ref_point=5,5"
    done = subprocess.run([sys.executable, "-m", "surrogate_emo.cli", "run", "--problem", spec, "--budget", "8",
                           "--pop-size", "4", "--name", "mine", "--output-dir", str(tmp_path / "out"),
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert printed["problem"] == "userproblems:make n_var=4 ref_point=5,5 shift=0.25"
    assert printed["true_evaluations"] == 8 and printed["true_front_hypervolume"] is None
    rows = (tmp_path / "out" / "mine" / "evaluations.csv").read_text().splitlines()
    header, first = rows[0].split(","), dict(zip(rows[0].split(","), rows[1].split(",")))
    x = np.array([float(first[f"x{i}"]) for i in range(1, 5)])
    assert "x5" not in header and np.all(np.abs(x) <= 1)  # the unit cube mapped onto [-1, 1]^4
    assert float(first["f1"]) == pytest.approx(float((x**2).sum()))
    assert float(first["f2"]) == pytest.approx(float(((x - 0.25) ** 2).sum()))


@pytest.mark.parametrize("spec, message", [
    ("zdt9", "unknown problem 'zdt9'; expected a pymoo test problem (zdt1 ... zdt6"),
    ("zdt1 n_var", "expected key=value options after the name, got 'n_var'"),
    ("zdt1 n_vars=8", "pymoo problem 'zdt1' has no options ['n_vars']; expected some of ['lower_bounds', 'n_var', "
                      "'ref_point']"),
    ("zdt1 lower_bounds=0,0,0", "lower_bounds must be a number or 2 numbers (one per objective, e.g. "
                                "lower_bounds=0,0), got [0, 0, 0]"),
    ("zdt1 lower_bounds=2", "lower_bounds must lie below the reference point [1.1, 1.1], got [2.0, 2.0]"),
    ("bnh", "constrained problems are not supported yet"),
    ("sphere", "expected a multi-objective problem"),
    ("zdt1 ref_point=1,2,3", "ref_point must be a number or 2 numbers"),
    ("kursawe", "give it as an option, e.g. 'kursawe ref_point=1.1,1.1'"),
    ("userproblems:not_a_problem", "must return a pymoo.core.problem.Problem, got str"),
    ("userproblems:nothing", "module 'userproblems' has no attribute 'nothing'"),
    ("nomodule_here:make", "cannot import module 'nomodule_here'"),
])
def test_bad_specs_are_one_line_errors(tmp_path, monkeypatch, capsys, offline, spec, message):
    (tmp_path / "userproblems.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "--problem", spec, "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("study.sqlite"))


def test_experiment_files_take_specs_and_tables(tmp_path, offline):
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(f"""
        name = "more"
        output_dir = "{tmp_path}"
        seeds = [0]
        problems = ["zdt6", {{name = "dtlz7", n_obj = 3, ref_point = [1, 1, 7]}}]
        [methods.nsga2]
        search = "nsga2"
    """))
    experiment = Experiment.from_file(path)
    assert experiment.problem_names() == ["zdt6", "dtlz7 n_obj=3 ref_point=1,1,7"]
    folders = [spec.run_dir.parent.name for spec in experiment.runs()]
    assert folders == ["zdt6", "dtlz7-n_obj-3-ref_point-1-1-7"]
    assert [spec.config.problem for spec in experiment.runs()] == experiment.problem_names()
    path.write_text(path.read_text().replace('search = "nsga2"', 'search = "nsga2"\nproblem = "zdt1"'))
    with pytest.raises(ConfigError, match="expected no 'problem' key in \\['nsga2'\\]"):
        Experiment.from_file(path)
