"""Every bad input answered: one line on stderr saying what was expected and what was given, exit code 2, and
nothing already stored lost or overwritten; soft problems (a damaged cache) warned about and repaired."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogate_emo import pipeline
from surrogate_emo.cache import ModelCache
from surrogate_emo.cli import main
from surrogate_emo.compress import CostModel, measure
from surrogate_emo.errors import ConfigError, OutputError, SearchSpaceError, StudyError, SurrogateEMOWarning
from surrogate_emo.models import mlp
from surrogate_emo.space import CompressionSpace
from surrogate_emo.store import Study

from tiny import tiny_config

REPO = Path(__file__).parent.parent
TINY = ["--base-epochs", "0.5", "--budget", "4", "--pop-size", "4", "--finetune-steps", "2", "--no-progress",
        "--no-final-test"]


def _run(tmp_path, *argv: str) -> list[str]:
    return ["run", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *TINY, *argv]


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("surrogate-emo: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _base_models(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "base").glob("*.pt")) if (cache_dir / "base").exists() else []


# --- config files and names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["budget: [1, 2\n", "search: nsga2\n  pop_size: 3\n", "a: b: c\n"])
def test_malformed_yaml_is_one_line(tmp_path, capsys, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(_run(tmp_path, "--config", str(path))) == 2
    _one_line_error(capsys, f"{path} is not valid YAML")


def test_a_config_file_of_binary_bytes_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe\x00garbage\x9c")
    assert main(_run(tmp_path, "--config", str(path))) == 2
    _one_line_error(capsys, f"{path} must be a UTF-8 text file")


@pytest.mark.parametrize("field, value, message", [
    ("search", "nsga3", "unknown search 'nsga3'; known: botorch, nsga2, random, surrogate"),
    ("search", "collections:OrderedDict", "must name a subclass of surrogate_emo.search.Search"),
    ("surrogate", "gpp", "unknown surrogate 'gpp'; known: gp, gp-f0, gp-mf, rf, rf-f0"),
    ("surrogate", "gp-f0+rff0", "unknown surrogate 'rff0'; known: gp, gp-f0, gp-mf, rf, rf-f0"),
    ("infill", "ehvi-lazzy", "unknown infill criterion 'ehvi-lazzy'"),
    ("model", "resnet", "unknown model 'resnet'; known: lenet-300-100, lenet-5, mlp, vgg-small"),
    ("model", "collections:OrderedDict", "model factory 'collections:OrderedDict' must be callable as "
                                         "factory(input_shape, n_classes) -> torch.nn.Module"),
    ("model", "math:pi", "model factory 'math:pi' must be callable"),
    ("dataset", "cifar", "unknown data set 'cifar'; expected one of digits, fashion-mnist, idx, cifar10"),
    ("objectives", ["params", "flops"], "objectives must be a non-empty list from ['params', 'bytes', 'macs', 'energy']"),
])
def test_unknown_names_fail_before_any_data_is_loaded_or_model_trained(tmp_path, monkeypatch, field, value,
                                                                      message):
    def never(*args, **kwargs):
        raise AssertionError("a misspelt name must be rejected before loading data or training")

    monkeypatch.setattr(pipeline, "load_dataset", never)
    monkeypatch.setattr(pipeline, "base_model", never)
    config = tiny_config(tmp_path, **{field: value})
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        pipeline.run(config)
    assert time.perf_counter() - started < 2.0  # resolving names only: milliseconds
    assert message in str(caught.value)
    assert _base_models(tmp_path / "cache") == [] and not (tmp_path / "results").exists()


def test_a_misspelt_search_through_the_cli_trains_and_caches_nothing(tmp_path, capsys):
    assert main(_run(tmp_path, "--search", "nsga-2")) == 2
    _one_line_error(capsys, "unknown search 'nsga-2'; known: botorch, nsga2, random, surrogate")
    assert _base_models(tmp_path / "cache") == []


def test_polishing_a_compression_problem_is_one_line(tmp_path, capsys):
    # its cheap objectives are exact step functions of the genome: no gradient to climb
    assert main(_run(tmp_path, "--search", "surrogate", "--polish-steps", "3")) == 2
    _one_line_error(capsys, "polish_steps must be 0, or > 0 with every objective modelled", "cheap objectives: given")


def test_a_shortlist_no_bigger_than_the_batch_or_without_features_is_one_line(tmp_path, capsys):
    assert main(_run(tmp_path, "--search", "surrogate", "--shortlist", "4")) == 2
    _one_line_error(capsys, "shortlist must be 0 or an integer > q (4), got 4")
    assert main(_run(tmp_path, "--search", "surrogate", "--shortlist", "8")) == 2  # the plain GP reads no features
    _one_line_error(capsys, "shortlist must be 0, or more than q (4)", "surrogate=gp")


def test_an_error_reference_outside_the_error_range_is_one_line(tmp_path, capsys):
    assert main(_run(tmp_path, "--search", "surrogate", "--error-reference", "1.5")) == 2
    _one_line_error(capsys, "error_reference must be a number in (0, 1], got 1.5")
    assert main(_run(tmp_path, "--problem", "zdt1", "--error-reference", "0.5")) == 2
    _one_line_error(capsys, "error_reference must be 1 with --problem (a test problem's reference point is its own), "
                            "got 0.5")


def test_a_whole_range_share_without_an_aimed_reference_is_one_line(tmp_path, capsys):
    assert main(_run(tmp_path, "--search", "surrogate", "--whole-range-share", "0.5")) == 2
    _one_line_error(capsys, "whole_range_share must be 0 while error_reference is 1 (the whole range already), got 0.5")
    assert main(_run(tmp_path, "--search", "botorch", "--error-reference", "0.3", "--whole-range-share", "0.5")) == 2
    _one_line_error(capsys, "whole_range_share must be 0 with search botorch (its acquisition takes one reference "
                            "point), got 0.5")
    assert main(_run(tmp_path, "--search", "surrogate", "--error-reference", "0.3", "--whole-range-share", "1")) == 2
    _one_line_error(capsys, "whole_range_share must be a fraction in [0, 1), got 1.0")


def test_an_error_weight_without_its_useful_error_or_outside_the_loop_is_one_line(tmp_path, capsys):
    assert main(_run(tmp_path, "--search", "surrogate", "--useful-weight", "4")) == 2
    _one_line_error(capsys, "useful_error must be set exactly when useful_weight is above 0, got None")
    assert main(_run(tmp_path, "--search", "surrogate", "--useful-error", "0.2")) == 2
    _one_line_error(capsys, "useful_error must be set exactly when useful_weight is above 0, got 0.2")
    assert main(_run(tmp_path, "--search", "surrogate", "--error-reference", "0.5", "--useful-error", "0.6",
                     "--useful-weight", "4")) == 2
    _one_line_error(capsys, "useful_error must be a number in (0, error_reference = 0.5), got 0.6")
    assert main(_run(tmp_path, "--search", "nsga2", "--useful-error", "0.2", "--useful-weight", "4")) == 2
    _one_line_error(capsys, "useful_weight must be 0 unless search is surrogate (the loop's acquisition alone weighs "
                            "errors), got 4.0")
    assert main(_run(tmp_path, "--search", "surrogate", "--infill", "parego", "--useful-error", "0.2",
                     "--useful-weight", "4")) == 2
    _one_line_error(capsys, "an error weight (useful error, weight) needs", "infill parego")


def test_a_model_factory_that_raises_is_a_config_error(tmp_path, capsys):
    assert main(_run(tmp_path, "--model", "math:sqrt")) == 2
    _one_line_error(capsys, "model factory 'math:sqrt' must be callable as factory(input_shape, n_classes) -> "
                            "torch.nn.Module; calling it with ((1, 8, 8), 10) raised TypeError")


def test_a_model_factory_that_returns_no_module_is_a_config_error(tmp_path, capsys, monkeypatch):
    module = tmp_path / "plain_factories.py"
    module.write_text("def table(input_shape, n_classes):\n    return {'rows': n_classes}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(_run(tmp_path, "--model", "plain_factories:table")) == 2
    _one_line_error(capsys, "model factory 'plain_factories:table' must be callable", "it returned dict")


USER_SEARCH = '''
import numpy as np
from surrogate_emo.search import Search


class Sweep(Search):
    """A search written as the README describes: subclass Search, implement ask and tell."""

    def ask(self, n_max):
        told = getattr(self, "told", 0)
        return np.random.default_rng([self.seed, told]).random((min(n_max, 3), self.dim))

    def tell(self, X, F):
        self.told = getattr(self, "told", 0) + len(X)
'''


def test_a_user_search_written_as_the_readme_says_runs_through_the_cli(tmp_path):
    (tmp_path / "my_search.py").write_text(USER_SEARCH)
    command = [sys.executable, "-m", "surrogate_emo.cli", *_run(tmp_path, "--search", "my_search:Sweep",
                                                              "--name", "user", "--budget", "5")]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "out" / "user" / "evaluations.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and all(r["status"] == "ok" for r in rows)


# --- studies ---------------------------------------------------------------------------------------------------

def _committed_study_bytes() -> bytes:
    return (REPO / "results" / "quickstart" / "study.sqlite").read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "truncated at a page"])
def test_an_unreadable_study_is_named_and_left_untouched(tmp_path, capsys, damage):
    whole = _committed_study_bytes()
    data = {"garbage": np.random.default_rng(0).bytes(20_000), "truncated": whole[: len(whole) // 2 + 123],
            "truncated at a page": whole[:8192]}[damage]
    path = tmp_path / "out" / "damaged" / "study.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    with pytest.raises(StudyError, match="is not a readable SQLite study"):
        Study(path)
    assert main(_run(tmp_path, "--name", "damaged")) == 2
    _one_line_error(capsys, f"{path} is not a readable SQLite study", "left as it is")
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == ["study.sqlite"]  # no -wal, -shm, nothing else
    assert _base_models(tmp_path / "cache") == []  # found before the base model is trained


# --- output locations ------------------------------------------------------------------------------------------

def test_an_output_dir_inside_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(["run", "--output-dir", str(blocker / "sub"), "--cache-dir", str(tmp_path / "cache"), *TINY])
    assert code == 2
    _one_line_error(capsys, f"cannot write to {blocker / 'sub'}", "Not a directory")
    assert blocker.read_text() == "not a folder" and _base_models(tmp_path / "cache") == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_output_dir_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(_run(tmp_path)) == 2
    finally:
        out.chmod(0o755)
    _one_line_error(capsys, "cannot write to", "Permission denied")


def test_a_cache_dir_inside_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(["run", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(blocker), *TINY])
    assert code == 2
    _one_line_error(capsys, "cannot write to", "Not a directory")


def test_extending_a_run_whose_folder_cannot_be_written_is_one_line_and_keeps_the_study(tmp_path, capsys):
    assert main(_run(tmp_path, "--name", "grow")) == 0
    run_dir = tmp_path / "out" / "grow"
    # root ignores permission bits, so the folder is made unwritable the way root also hits: the summary's path
    # is taken by a folder
    (run_dir / "summary.json").unlink()
    (run_dir / "summary.json").mkdir()
    capsys.readouterr()
    assert main(_run(tmp_path, "--name", "grow", "--budget", "8")) == 2
    _one_line_error(capsys, f"cannot write to {run_dir / 'summary.json'}", "Is a directory")
    with sqlite3.connect(run_dir / "study.sqlite") as db:  # the new evaluations were stored before the report
        assert db.execute("SELECT COUNT(*) FROM evaluations WHERE status = 'ok'").fetchone()[0] == 8


# --- caches: warned about, repaired, the run goes on -----------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_an_unreadable_base_model_file_is_warned_about_retrained_and_replaced(tmp_path, damage):
    config = tiny_config(tmp_path)
    first = pipeline.prepare(config)
    [path] = _base_models(tmp_path / "cache")
    whole = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": whole[: len(whole) // 2],
                      "garbage": np.random.default_rng(1).bytes(3000)}[damage])
    with pytest.warns(SurrogateEMOWarning, match=f"base model cache file {path} is unreadable .*training it again"):
        again = pipeline.prepare(config)
    assert not again.base_from_cache and again.dense_val_error == first.dense_val_error
    assert path.read_bytes() == whole  # replaced by the same weights, retrained from the same seed
    assert pipeline.prepare(config).base_from_cache  # and read back next time


def test_a_garbage_model_cache_index_is_moved_aside_and_the_cache_starts_afresh(tmp_path):
    directory = tmp_path / "model_cache"
    cache = ModelCache(directory)
    cache.put(np.array([0.5, 0.5]), {"w": torch.ones(3)}, label="trial 0")
    cache.close()
    garbage = np.random.default_rng(2).bytes(5000)
    (directory / "index.sqlite").write_bytes(garbage)
    with pytest.warns(SurrogateEMOWarning, match="model cache index .* is unreadable .*index.sqlite.bad"):
        cache = ModelCache(directory)
    assert (directory / "index.sqlite.bad").read_bytes() == garbage  # kept, not deleted
    assert cache.entries() == [] and cache.load(np.array([0.5, 0.5])) is None
    cache.put(np.array([0.25, 0.5]), {"w": torch.zeros(2)}, label="trial 1")
    assert torch.equal(cache.load(np.array([0.25, 0.5]))["w"], torch.zeros(2))


def test_a_run_with_a_garbage_model_cache_index_goes_on(tmp_path):
    config = tiny_config(tmp_path, warm_start=True, budget=4, pop_size=4)
    index = config.run_dir / "model_cache" / "index.sqlite"
    index.parent.mkdir(parents=True)
    index.write_bytes(b"\x00garbage" * 100)
    with pytest.warns(SurrogateEMOWarning, match="model cache index"):
        result = pipeline.run(config)
    assert result.summary["true_evaluations"] == 4 and result.summary["failed"] == 0


# --- costs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, shown", [(float("nan"), "1.rank=nan"), (1.5, "1.rank=1.5"), (-0.1, "1.rank=-0.1"),
                                          (float("inf"), "1.rank=inf")])
def test_costs_of_genes_outside_the_unit_cube_are_an_error(value, shown):
    base = mlp((1, 8, 8), 10)
    costs = CostModel(CompressionSpace.from_model(base, (1, 8, 8)), measure(base, (1, 8, 8)))
    genome = [value] + [0.5] * 5
    for call in (costs.of, costs.ratios):
        with pytest.raises(SearchSpaceError, match=shown):
            call(genome)
    X = np.array([[0.5] * 6, genome])
    with pytest.raises(SearchSpaceError, match=f"genome 1: genes must be finite numbers in \\[0, 1\\], got {shown}"):
        costs.ratio_matrix(X, ("params", "bytes"))
    with pytest.raises(SearchSpaceError, match=r"shape \(n, 6\)"):
        costs.ratio_matrix(np.zeros((2, 5)), ("params",))


# --- the catch-all ---------------------------------------------------------------------------------------------

def _explode(config):
    raise RuntimeError("something nobody planned for\non two lines")


def test_an_unexpected_error_is_one_line_pointing_to_debug(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "run", _explode)
    assert main(_run(tmp_path)) == 1
    line = _one_line_error(capsys, "RuntimeError: something nobody planned for on two lines")
    assert line.endswith("(run with --debug for the traceback)")


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, monkeypatch, where):
    monkeypatch.setattr(pipeline, "run", _explode)
    argv = ["--debug", *_run(tmp_path)] if where == "before" else [*_run(tmp_path), "--debug"]
    with pytest.raises(RuntimeError, match="something nobody planned for"):
        main(argv)


def test_a_bad_experiment_output_dir_is_one_line(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text('name = "small"\nseeds = [0]\nproblems = ["zdt1"]\n[base]\nbudget = 4\n'
                    '[methods.nsga2]\nsearch = "nsga2"\npop_size = 2\n')
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["experiment", str(path), "--no-progress", "--output-dir", str(blocker)]) == 2
    _one_line_error(capsys, f"cannot write to {blocker / 'small'}")


def test_study_error_and_output_error_are_also_builtin_errors():
    assert issubclass(StudyError, ValueError) and issubclass(OutputError, OSError)
    assert str(OutputError.writing("/x", PermissionError(13, "Permission denied"))) == \
        "cannot write to /x: Permission denied"

