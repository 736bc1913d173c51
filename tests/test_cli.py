"""The command line end to end on a tiny budget, and its answers to bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from surrogate_emo.cli import main

TINY = ["--budget", "10", "--pop-size", "5", "--base-epochs", "3", "--finetune-steps", "5", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    code = main(["run", "--name", "e2e", "--output-dir", str(root / "results"), "--cache-dir", str(root / "cache"), *TINY])
    return code, root / "results" / "e2e"


def test_run_writes_every_output(finished_run):
    code, run_dir = finished_run
    assert code == 0
    for name in ("evaluations.csv", "front.csv", "pareto_front.png", "convergence.png", "summary.json", "study.sqlite"):
        assert (run_dir / name).stat().st_size > 0, name
    with open(run_dir / "evaluations.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["trial"]) for r in rows] == list(range(10))
    assert all(r["status"] == "ok" and 0 <= float(r["val_error"]) <= 1 for r in rows)


def test_summary_and_front_are_consistent(finished_run):
    _, run_dir = finished_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["true_evaluations"] == 10 and summary["failed"] == 0
    assert summary["finetune_steps_total"] == 10 * 5
    with open(run_dir / "front.csv") as handle:
        front = list(csv.DictReader(handle))
    assert summary["front_size"] == len(front) >= 1
    # the front is non-dominated in (val error, compression) and every member was rebuilt to the same val error
    for a in front:
        assert float(a["val_error"]) == float(a["val_error_rebuilt"])
        assert 0 <= float(a["test_error"]) <= 1
        assert not any(float(b["val_error"]) <= float(a["val_error"]) and float(b["compression"]) >= float(a["compression"])
                       and (b["val_error"], b["compression"]) != (a["val_error"], a["compression"]) for b in front)
    assert summary["front_val_errors_reproduced"] is True


def test_a_run_where_every_fine_tune_diverges_still_finishes(tmp_path, capsys):
    code = main(["run", "--name", "nan", "--output-dir", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
                 "--budget", "4", "--pop-size", "4", "--base-epochs", "1", "--finetune-steps", "20", "--finetune-lr", "1e12",
                 "--no-progress"])
    assert code == 0
    summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert summary["failed"] == 4
    with open(tmp_path / "nan" / "evaluations.csv") as handle:
        assert all(row["status"] == "failed" and "FineTuneDiverged" in row["reason"] for row in csv.DictReader(handle))


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "unknown model 'resnet'; known: lenet-300-100, lenet-5, mlp, vgg-small"),
    (["--search", "cmaes"], "unknown search 'cmaes'; known: botorch, nsga2, random, surrogate"),
    (["--model", "lenet-5"], "lenet-5 needs inputs of at least 16x16 pixels (28x28 intended), got 8x8"),
    (["--layers", "9"], "layers ['9'] are not Linear/Conv2d layers of the model"),
    (["--budget", "0"], "budget must be an integer >= 1, got 0"),
    (["--lr", "1e12", "--base-epochs", "1"], "training the dense base model diverged"),
    (["--dataset", "idx"], "data set 'idx' needs data_dir"),
    (["--dataset", "cifar10"], "data set 'cifar10' needs data_dir"),
    (["--config", "nowhere.toml"], "config file 'nowhere.toml' does not exist"),
])
def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys, argv, message):
    code = main(["run", "--output-dir", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), "--base-epochs", "0.1",
                 "--budget", "2", "--pop-size", "2", "--finetune-steps", "1", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("surrogate-emo: error: ") and message in err


def test_installed_entry_point_shows_help():
    out = subprocess.run([sys.executable, "-m", "surrogate_emo.cli", "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "--finetune-epochs" in out.stdout and "--config" in out.stdout


def test_user_surrogate_from_a_file_outside_the_package_runs_through_the_cli(tmp_path):
    from pathlib import Path

    examples = Path(__file__).parent.parent / "examples"
    command = [sys.executable, "-m", "surrogate_emo.cli", "run", "--search", "surrogate",
               "--surrogate", "my_surrogate:KNNSurrogate", "--name", "user", "--output-dir", str(tmp_path),
               "--cache-dir", str(tmp_path / "cache"), "--budget", "10", "--n-init", "4", "--q", "3",
               "--pool-size", "20", "--pool-generations", "3", "--base-epochs", "2", "--finetune-steps", "3",
               "--no-progress", "--no-final-test"]
    import os

    env = {**os.environ, "PYTHONPATH": str(examples)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "user" / "evaluations.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and all(r["status"] == "ok" for r in rows)
    from surrogate_emo.compare import load_run

    predicted = [e.extra.get("predicted") for e in load_run(tmp_path / "user", "user")]
    assert predicted[:4] == [None] * 4 and all(p is not None and len(p) == 1 for p in predicted[4:])


def test_the_most_compressed_genome_is_reported_without_dividing_by_zero(tmp_path):
    import numpy as np

    from surrogate_emo.config import RunConfig
    from surrogate_emo.pipeline import prepare
    from surrogate_emo.report import write_report

    config = RunConfig(output_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), base_epochs=1.0, finetune_steps=2,
                       objectives=["params", "macs"])
    setup = prepare(config)
    evaluation = setup.evaluator(np.zeros(setup.scheme.dim), seed=0)
    evaluation.trial = 0
    assert evaluation.ratios["macs"] == 0.0  # only biases are left, and they cost no multiply-accumulate
    write_report(tmp_path / "zero", config, setup, [evaluation], [], {})
    with open(tmp_path / "zero" / "evaluations.csv") as handle:
        assert next(csv.DictReader(handle))["macs_reduction"] == "inf"


def test_rerunning_a_finished_run_says_it_was_resumed(finished_run, capsys):
    _, run_dir = finished_run
    code = main(["run", "--name", "e2e", "--output-dir", str(run_dir.parent), "--cache-dir",
                 str(run_dir.parent.parent / "cache"), *TINY])
    assert code == 0
    assert "resumed: 10 evaluations came from the study" in capsys.readouterr().out


@pytest.mark.parametrize("argv, option", [(["--dataset", "cifar"], "--dataset"),
                                          (["--objectives", "params", "flops"], "--objectives"),
                                          (["--error-scale", "sqrt"], "--error-scale")])
def test_enumerated_options_are_choices_refused_in_one_line(capsys, argv, option):
    from surrogate_emo.cli import build_parser

    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(["run", *argv])
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"surrogate-emo run: error: argument {option}: invalid choice")


def _help(capsys, *argv) -> str:
    from surrogate_emo.cli import build_parser

    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([*argv, "--help"])
    assert exit.value.code == 0
    return capsys.readouterr().out


def test_run_help_shows_groups_in_order_and_each_default_once(capsys):
    import dataclasses

    from surrogate_emo.config import GROUPS, RunConfig

    text = _help(capsys, "run")
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert [h for h in headings if h in GROUPS] == list(GROUPS) and "other" not in headings
    flat = " ".join(text.split())
    assert "(default: none)" not in flat.lower() and "``" not in flat
    assert flat.count("(default:") == len(dataclasses.fields(RunConfig))  # once per option, none doubled
    assert "--dataset {digits,fashion-mnist,idx,cifar10}" in flat and "(default: 300)" in flat
    assert "--search {nsga2,random,surrogate,botorch}" in flat and "package.module:Class" in flat


def test_top_level_and_experiment_help_are_plain_text_and_the_experiment_keys_are_explained(capsys):
    from surrogate_emo.experiment import EXPERIMENT_KEYS

    assert "``" not in _help(capsys)
    text = _help(capsys, "experiment")
    assert "``" not in text and 'README.md, section "Experiments"' in text
    assert all(f"  {key} " in text or f" {key} (" in text for key in EXPERIMENT_KEYS), text
    assert '[methods.nsga2]\n  search = "nsga2"' in text  # the example keeps its lines


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"surrogate-emo {version('surrogate-emo')}\n"


def test_printed_results_have_four_significant_digits(finished_run, capsys):
    _, run_dir = finished_run
    main(["run", "--name", "e2e", "--output-dir", str(run_dir.parent), "--cache-dir",
          str(run_dir.parent.parent / "cache"), *TINY])
    out = capsys.readouterr().out
    printed = json.loads(out[:out.index("}") + 1])
    summary = json.loads((run_dir / "summary.json").read_text())  # the file keeps full precision
    for key, value in printed.items():
        if isinstance(value, float):
            assert value == float(f"{summary[key]:.4g}"), key


def test_a_corrupt_cache_entry_is_one_warning_line(tmp_path, capsys):
    import sqlite3

    argv = ["run", "--name", "warm", "--output-dir", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
            "--budget", "6", "--pop-size", "3", "--base-epochs", "1", "--finetune-steps", "3", "--no-progress"]
    assert main(argv) == 0
    cache = tmp_path / "warm" / "model_cache"
    with sqlite3.connect(cache / "index.sqlite") as db:
        key = db.execute("SELECT key FROM entries WHERE kept = 1").fetchone()[0]  # a front model, re-scored below
    (cache / f"{key}.pt").write_bytes(b"not a model")
    capsys.readouterr()
    assert main(argv) == 0  # resumed: the front is re-scored from the cache, and this entry is skipped
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line for line in lines if key in line] == [f"surrogate-emo: warning: skipping cache entry {key}.pt: "
                                                       "checksum mismatch"]
    assert not any("warnings.warn" in line or "UserWarning" in line for line in lines)
