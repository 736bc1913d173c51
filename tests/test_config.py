from __future__ import annotations

import argparse
import dataclasses

import pytest

from surrogate_emo.config import RunConfig, add_config_arguments, config_from_dict, load_config_file
from surrogate_emo.errors import ConfigError


def test_every_field_is_a_cli_option_with_help():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    options = {action.dest: action for action in parser._actions if action.dest != "help"}
    assert set(options) == {f.name for f in dataclasses.fields(RunConfig)}
    assert all(action.help and "default:" in action.help for action in options.values())


def test_cli_values_are_typed():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--budget", "7", "--objectives", "params", "macs", "--no-progress", "--lr", "0.01"])
    assert (args.budget, args.objectives, args.progress, args.lr) == (7, ["params", "macs"], False, 0.01)


def test_default_lists_are_not_shared():
    a, b = RunConfig(), RunConfig()
    a.objectives.append("macs")
    assert b.objectives == ["params"]


@pytest.mark.parametrize("values, expected", [
    ({"budgett": 5}, "unknown config keys ['budgett']"),
    ({"budget": "ten"}, "budget must be a int, got 'ten'"),
    ({"budget": True}, "budget must be a int, got True"),
    ({"budget": 0}, "budget must be an integer >= 1, got 0"),
    ({"lr": -1.0}, "lr must be a positive number, got -1.0"),
    ({"objectives": "params"}, "objectives must be a list of str, got 'params'"),
    ({"name": "a/b"}, "name must be a non-empty name without '/'"),
])
def test_malformed_values_say_what_was_expected(values, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        config_from_dict(values)


def test_int_is_accepted_for_float_fields():
    assert config_from_dict({"finetune_epochs": 2}).finetune_epochs == 2.0


def test_toml_and_yaml_files_map_onto_the_dataclass(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('name = "t"\nbudget = 9\nfinetune-epochs = 0.5\nobjectives = ["params", "macs"]\n')
    yaml = tmp_path / "run.yaml"
    yaml.write_text("name: t\nbudget: 9\nfinetune_epochs: 0.5\nobjectives: [params, macs]\n")
    assert config_from_dict(load_config_file(toml)) == config_from_dict(load_config_file(yaml))
    assert config_from_dict(load_config_file(toml)).objectives == ["params", "macs"]


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("budget = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(bad)
    other = tmp_path / "run.json"
    other.write_text("{}")
    with pytest.raises(ConfigError, match=r"must end in \.toml, \.yaml or \.yml"):
        load_config_file(other)


def test_shipped_experiment_configs_are_valid():
    from pathlib import Path

    from surrogate_emo.experiment import Experiment

    configs = sorted((Path(__file__).parent.parent / "experiments").glob("*.toml"))
    assert configs, "experiments/ should hold at least one config"
    for path in configs:
        values = load_config_file(path)
        if "methods" in values or "recipes" in values:  # an experiment file: every run's configuration is checked
            assert Experiment.from_file(path).runs() or Experiment.from_file(path).recipe_files()
        elif "recipe" in values:  # a recipe file: its base options and its method's settings
            from surrogate_emo.recipes.base import RecipeFile

            file = RecipeFile.from_file(path)
            assert file.run_config() and file.recipe_settings()
        else:
            config_from_dict(values)


def test_every_field_has_a_help_group_and_one_readable_default():
    from surrogate_emo.config import GROUPS

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    ungrouped = [f.name for f in dataclasses.fields(RunConfig) if f.metadata.get("group") not in GROUPS]
    assert not ungrouped, f"give these fields a group of {GROUPS}: {ungrouped}"
    for action in parser._actions:
        if action.dest != "help":
            assert action.help.count("default:") == 1 and "(default: None)" not in action.help, action.help
            assert "``" not in action.help, action.help
    helps = {action.dest: action.help for action in parser._actions}
    assert helps["budget"].endswith("(default: 300)") and helps["lr"].endswith("(default: 0.001)")
    assert helps["data_dir"].endswith("(default: unset)") and helps["objectives"].endswith("(default: params)")
    assert helps["warm_start"].endswith("(default: on)")


def test_enumerated_values_match_what_the_package_accepts():
    from surrogate_emo.data import DATASETS
    from surrogate_emo.evaluate import CHEAP_OBJECTIVES
    from surrogate_emo.infill import INFILLS
    from surrogate_emo.models import MODELS
    from surrogate_emo.schemes import SCHEMES
    from surrogate_emo.search import SEARCHES
    from surrogate_emo.surrogates import SURROGATES

    meta = {f.name: f.metadata for f in dataclasses.fields(RunConfig)}
    assert meta["dataset"]["choices"] == DATASETS and meta["objectives"]["choices"] == CHEAP_OBJECTIVES
    for name, registry in (("search", SEARCHES), ("surrogate", SURROGATES), ("infill", INFILLS), ("model", MODELS),
                           ("scheme", SCHEMES)):
        assert set(meta[name]["names"]) == set(registry), name


def test_the_default_scheme_leaves_names_and_study_keys_as_they_were():
    """Runs made before schemes were named keep their folders and resume: the default scheme is not in the
    identity that names a run and keys its study; another scheme is."""
    assert RunConfig().name == "quickstart" and "scheme" not in RunConfig().identity()
    assert RunConfig(scheme="lowrank-sparse", pop_size=20).name == RunConfig(pop_size=20).name
    # as named before schemes had names and the cheap objectives a log scale
    assert RunConfig(pop_size=20, objective_scale="linear").name == "digits-mlp-nsga2-d3fd6021"
    assert RunConfig(pop_size=20).name != "digits-mlp-nsga2-d3fd6021"  # a log-scale run is another run
    other = RunConfig(scheme="mypackage.schemes:Mine", pop_size=20)
    assert other.identity()["scheme"] == "mypackage.schemes:Mine" and other.name != RunConfig(pop_size=20).name

