"""DE layer-wise pruning: the sensitivity analysis, the DE problem, random recovery, resume, and the recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import surrogate_emo.recipes.de_pruning as de
from surrogate_emo.compress.masks import masked_layers
from surrogate_emo.data import Split
from surrogate_emo.errors import ConfigError
from surrogate_emo.recipes.base import RecipeFile
from surrogate_emo.recipes.emomc import uniform_prune
from surrogate_emo.train import error_rate

TINY = dict(rounds=2, round_steps=60, recover_every=25, generations=4, pop_size=6, eval_images=200)


def test_sensitivity_prunes_one_layer_at_a_time(trained):
    net, data = trained
    rows = de.sensitivity(net, ["1", "3"], [0.5, 0.99], data.val)
    assert [(r["layer"], r["pruned_fraction"]) for r in rows] == [("1", 0.5), ("1", 0.99), ("3", 0.5), ("3", 0.99)]
    dense = error_rate(net, data.val)
    alone = uniform_prune(net, ["3"], 0.01)
    assert rows[3]["error_increase"] == pytest.approx(error_rate(alone, data.val) - dense)
    assert rows[1]["error_increase"] > rows[0]["error_increase"]  # 99% of a layer hurts more than half


def test_the_problem_keeps_weights_above_s_std_and_bounds_the_error(trained):
    net, data = trained
    model = uniform_prune(net, ["1", "3"], 1.0)
    images = Split(data.val.x[:200], data.val.y[:200])
    problem = de.SensitivityProblem(model, images, floor=error_rate(net, images), max_drop=1.0, s_max=3.0)
    w1, w3 = net[1].weight.detach(), net[3].weight.detach()
    by_hand = int((w1.abs() > 0.5 * w1.std(correction=0)).sum()) + int((w3.abs() > 1.0 * w3.std(correction=0)).sum())
    out = {}
    problem._evaluate(np.array([0.5, 1.0]), out)
    assert out["F"] == pytest.approx(by_hand / (2048 + 320))
    strict = de.SensitivityProblem(model, images, floor=-1.0, max_drop=0.0, s_max=3.0)  # error below 0: impossible
    strict._evaluate(np.array([0.0, 0.0]), out)
    assert out["F"] > 1.0
    problem.restore()
    assert all(layer.kept == layer.mask.numel() for layer in masked_layers(model).values())


def test_recovery_gives_back_the_asked_share_at_zero(trained):
    net, _ = trained
    model = uniform_prune(net, ["1", "3"], 0.1)
    removed = {name: layer.mask.numel() - layer.kept for name, layer in masked_layers(model).items()}
    before = {name: layer.mask.clone() for name, layer in masked_layers(model).items()}
    de._recover(model, 0.1, torch.Generator().manual_seed(0))
    for name, layer in masked_layers(model).items():
        back = layer.mask & ~before[name]
        assert int(back.sum()) == round(0.1 * removed[name])
        assert torch.all(layer.weight[back] == 0)  # they come back at zero and must grow


def test_de_pruning_prunes_and_resumes_to_the_same_model(trained, tmp_path):
    net, data = trained
    settings = de.Settings(**TINY)
    whole, info = de.de_pruning(net, data, settings, 0.02, 1e-3, 64, seed=0, checkpoint=tmp_path / "a.pt")
    assert len(info["rounds"]) == 2 and info["rounds"][-1]["kept_after_pruning"] < 2048 + 320

    def stop(round_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        de.de_pruning(net, data, settings, 0.02, 1e-3, 64, seed=0, checkpoint=tmp_path / "b.pt", progress=stop)
    resumed, again = de.de_pruning(net, data, settings, 0.02, 1e-3, 64, seed=0, checkpoint=tmp_path / "b.pt")
    assert again == info
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_the_recipe_writes_the_sensitivity_and_resumes(tmp_path):
    path = tmp_path / "de.toml"
    path.write_text(f'name = "de_tiny"\nrecipe = "de"\n[base]\ndataset = "digits"\nmodel = "mlp"\nbase_epochs = 3\n'
                    f'cache_dir = "{tmp_path / "cache"}"\n[de]\nmax_drops = [0.02]\nfractions = [0.5, 0.9]\n'
                    'rounds = 2\nround_steps = 40\nrecover_every = 20\ngenerations = 3\npop_size = 6\n'
                    'schedules = ["one-shot"]\n')
    file = RecipeFile.from_file(path)
    file.output_dir = str(tmp_path / "out")
    best = de.run(file, progress=False)
    assert "DE layer-wise pruning (2 rounds + recovery)" in best
    sensitivity = (file.out_dir / "sensitivity.csv").read_text().splitlines()
    assert len(sensitivity) == 1 + 3 * 2  # three layers of the MLP, two fractions
    assert (file.out_dir / "sensitivity.png").is_file()
    table = (file.out_dir / "models.csv").read_text()
    de.run(file, progress=False)
    assert (file.out_dir / "models.csv").read_text() == table


@pytest.mark.parametrize("table, message", [("max_drops = [2]", "max_drops"), ("fractions = [1.0]", "fractions"),
                                            ("rounds = 0", "rounds >= 1"), ("pop_size = 2", "pop_size >= 4")])
def test_bad_settings_are_named(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\nrecipe = "de"\n[de]\n{table}\n')
    with pytest.raises(ConfigError, match=message):
        RecipeFile.from_file(path)


def test_de_finds_the_known_smallest_model_when_the_bound_is_loose(trained):
    """With no error bound the optimum is every sensitivity at s_max: the weights above s_max std are all kept."""
    from pymoo.algorithms.soo.nonconvex.de import DE
    from pymoo.optimize import minimize

    net, data = trained
    model = uniform_prune(net, ["1", "3"], 1.0)
    images = Split(data.val.x[:100], data.val.y[:100])
    problem = de.SensitivityProblem(model, images, floor=0.0, max_drop=1.0, s_max=2.0)
    best = sum(int((w.abs() > 2.0 * w.std(correction=0)).sum()) for w in (net[1].weight.detach(), net[3].weight.detach()))
    result = minimize(problem, DE(pop_size=10, variant="DE/rand/1/bin", F=0.5, CR=0.9), ("n_gen", 40), seed=0)
    problem.restore()
    assert result.F[0] == pytest.approx(best / (2048 + 320), abs=2 / 2368)
