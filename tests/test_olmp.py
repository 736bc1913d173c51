"""OLMP: the crate problem, the prune-and-adjust pipeline, its exact resume, and the recipe from its file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogate_emo.cli import main
from surrogate_emo.compress.masks import magnitude_stats, mask_model, masked_layers
from surrogate_emo.errors import ConfigError
from surrogate_emo.recipes.base import RecipeFile
from surrogate_emo.recipes.olmp import CrateProblem, Settings, prune_and_adjust

TINY = dict(iterations=120, prune_until=60, ncs_every=40, ncs_evaluations=60, ncs_pop=5)


def test_crate_problem_scores_the_kept_fraction_under_the_bound(trained):
    net, data = trained
    model = mask_model(net, {"1": 1.0, "3": 1.0}, recovery=True)
    stats = {name: magnitude_stats(layer.weight) for name, layer in masked_layers(model).items()}
    images, labels = data.train.x[:64], data.train.y[:64]
    problem = CrateProblem(model, ["1"], stats, images, labels, floor=0.0, infeasible=1.1, crate_max=10.0)
    out = {}
    problem._evaluate(np.array([[0.0], [10.0]]), out)
    weight = masked_layers(model)["1"].weight.abs()
    mu, _ = stats["1"]
    by_hand = (int((weight > 0.9 * mu).sum()) + 320) / (2048 + 320)  # DNS from a full mask: dropped at <= 0.9 t
    assert out["F"][0, 0] == pytest.approx(by_hand)
    assert out["F"][1, 0] == pytest.approx(320 / 2368)  # nothing of layer 1 survives crate 10: only layer 3
    problem.restore()
    assert masked_layers(model)["1"].kept == 2048  # evaluating leaves the masks as they were
    strict = CrateProblem(model, ["1"], stats, images, labels, floor=1.01, infeasible=1.1, crate_max=10.0)
    strict._evaluate(np.array([[0.0]]), out)
    assert out["F"][0, 0] == 1.1  # an accuracy above 100% cannot be met


def test_prune_and_adjust_prunes_within_delta_and_fixes_the_masks(trained):
    net, data = trained
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model, info = prune_and_adjust(net, data, Settings(deltas=[0.05], **TINY), 0.05, 1e-3, 64, seed=0)
    layers = masked_layers(model)
    assert all(not layer.recovery for layer in layers.values())
    assert all(torch.all(layer.weight[~layer.mask] == 0) for layer in layers.values())
    kept = sum(layer.kept for layer in layers.values()) / sum(layer.mask.numel() for layer in layers.values())
    assert kept < 0.6  # crates >= 0: at least the weights below 0.9 mu go
    assert info["ncs_calls"] >= 1 and len(info["crates"]) == 2
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the dense model untouched


def test_prune_and_adjust_resumes_to_the_same_model(trained, tmp_path):
    net, data = trained
    settings = Settings(**TINY)
    whole, info = prune_and_adjust(net, data, settings, 0.05, 1e-3, 64, seed=3, checkpoint=tmp_path / "a.pt")

    def stop(step):
        if step == 95:  # after the checkpoints at 0, 40 and 80, and after prune_until
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prune_and_adjust(net, data, settings, 0.05, 1e-3, 64, seed=3, checkpoint=tmp_path / "b.pt", progress=stop)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 80
    resumed, resumed_info = prune_and_adjust(net, data, settings, 0.05, 1e-3, 64, seed=3, checkpoint=tmp_path / "b.pt")
    assert resumed_info["crates"] == info["crates"] and resumed_info["ncs_calls"] == info["ncs_calls"]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def _recipe(tmp_path: Path, **olmp) -> Path:
    settings = {**TINY, "deltas": [0.05], "baseline_ratios": [0.2], "schedules": ["one-shot"], **olmp}
    lines = ['name = "olmp_tiny"', 'recipe = "olmp"', "[base]", 'dataset = "digits"', 'model = "mlp"',
             "base_epochs = 3", f'cache_dir = "{tmp_path / "cache"}"', "[olmp]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path = tmp_path / "olmp.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_recipe_writes_its_study_and_report_and_resumes(tmp_path, capsys):
    path = _recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["recipe", str(path), "--output-dir", str(out), "--no-progress"]) == 0
    best = json.loads(capsys.readouterr().out.split("report written")[0])
    assert set(best) == {"OLMP (prune and adjust)", "global magnitude pruning (one-shot)"}
    folder = out / "olmp_tiny"
    rows = (folder / "models.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + 2  # OLMP at one delta; global pruning at its ratio and at 0.2
    assert (folder / "summary.md").is_file() and (folder / "summary.png").is_file()
    assert len(list((folder / "models").glob("*.safetensors"))) == 3
    assert not list((folder / "checkpoints").glob("*.pt"))  # a finished pipeline leaves no checkpoint
    assert main(["recipe", str(path), "--output-dir", str(out), "--no-progress"]) == 0
    assert (folder / "models.csv").read_text().splitlines() == rows  # nothing run again


def test_recipe_killed_mid_pipeline_resumes_to_the_same_models(tmp_path):
    path = _recipe(tmp_path, iterations=1000, prune_until=500, ncs_every=50, baselines=[])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "surrogate_emo.cli", "recipe", str(path), "--no-progress", "--output-dir"]
    assert main(["recipe", str(path), "--no-progress", "--output-dir", str(tmp_path / "whole")]) == 0
    killed = subprocess.Popen(command + [str(tmp_path / "killed")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoint = tmp_path / "killed" / "olmp_tiny" / "checkpoints" / "olmp_seed0-delta0.05.pt"
    deadline, first = time.monotonic() + 120, None
    while time.monotonic() < deadline:  # the checkpoint of step 0, then a later one: killed inside the pipeline
        stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        if first is None:
            first = stamp
        elif stamp != first:
            break
        time.sleep(0.01)
    killed.send_signal(signal.SIGTERM)
    _, err = killed.communicate(timeout=120)
    assert killed.returncode == 143, err.decode()
    assert b"rerun the same command to resume" in err
    assert torch.load(checkpoint, weights_only=True)["step"] > 0
    subprocess.run(command + [str(tmp_path / "killed")], check=True, env=env, capture_output=True)

    def table(folder):  # every column but the seconds each model took
        lines = (tmp_path / folder / "olmp_tiny" / "models.csv").read_text().splitlines()
        header = lines[0].split(",")
        keep = [i for i, name in enumerate(header) if name != "seconds"]
        return [[cells[i] for i in keep] for cells in (line.split(",") for line in lines)]

    assert table("killed") == table("whole")


@pytest.mark.parametrize("text, message", [
    ('name = "x"\nrecipe = "nope"\n', "recipe must be one of"),
    ('name = "x"\nrecipe = "olmp"\n[olmp]\ndeltaz = [0.1]\n', "its keys are"),
    ('name = "x"\nrecipe = "olmp"\n[olmp]\ndeltas = [1.5]\n', "deltas must be accuracy drops"),
    ('name = "x"\nrecipe = "olmp"\n[base]\nmodel = 3\n', "model"),
    ('recipe = "olmp"\n', "needs \\['name'\\]"),
    ('name = "x"\nrecipe = "olmp"\n[dee]\n', "unknown keys \\['dee'\\]"),
])
def test_bad_recipe_files_say_what_was_expected(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        RecipeFile.from_file(path)


def test_the_readme_recipe_example_is_a_valid_file(tmp_path):
    text = Path(__file__).parent.parent.joinpath("README.md").read_text()
    example = text.split("## Published methods as recipes")[1].split("```toml\n")[1].split("```")[0]
    path = tmp_path / "mine.toml"
    path.write_text(example)
    file = RecipeFile.from_file(path)
    assert file.recipe == "olmp" and file.recipe_settings().deltas == [0.02, 0.08]
    assert file.run_config().model == "mlp"
