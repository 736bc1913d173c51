"""A recipe: one published method's pipeline, run from a file of its own, resumable like every run.

A recipe file names the method (``recipe = "olmp"``), the run options of the dense base model and its data
(``[base]``, the keys of ``surrogate-emo run``) and the method's settings (a table named after the method):

    name = "olmp_lenet300"
    recipe = "olmp"
    [base]
    dataset = "fashion-mnist"
    model = "lenet-300-100"
    [olmp]
    deltas = [0.02, 0.05, 0.08]

Its outputs go to ``<output_dir>/<name>/``: ``study.sqlite`` (every model the method produced, as evaluations of
the study), ``checkpoints/`` (the pipeline in flight, so that a killed run resumes where it stopped) and the
method's report.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from surrogate_emo.config import RunConfig, config_from_dict, load_config_file
from surrogate_emo.errors import ConfigError, OutputError

RECIPE_KEYS = {"name", "recipe", "description", "output_dir", "base"}


@dataclass
class RecipeFile:
    """A recipe file's contents: which method, on what, with which settings."""

    name: str
    recipe: str
    base: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    description: str = ""
    output_dir: str = "runs"  # the committed recipes are under results/: --output-dir results replays them

    @classmethod
    def from_file(cls, path: str | Path) -> RecipeFile:
        from surrogate_emo.recipes import RECIPES

        values = load_config_file(path)
        missing = [key for key in ("name", "recipe") if key not in values]
        if missing:
            raise ConfigError(f"{path}: a recipe file needs {missing}; e.g. recipe = \"olmp\"")
        recipe = values["recipe"]
        if recipe not in RECIPES:
            raise ConfigError(f"{path}: recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
        unknown = sorted(set(values) - RECIPE_KEYS - {recipe})
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}; a recipe file holds {sorted(RECIPE_KEYS)} and the "
                              f"table [{recipe}]")
        file = cls(name=values["name"], recipe=recipe, base=dict(values.get("base", {})),
                   settings=dict(values.get(recipe, {})), description=values.get("description", ""),
                   output_dir=values.get("output_dir", "runs"))
        file.run_config()
        file.recipe_settings()  # both checked now, not after the base model is trained
        return file

    @property
    def out_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def run_config(self) -> RunConfig:
        """The run options of the base model, data and fine-tuning (the ``[base]`` table)."""
        return config_from_dict({**self.base, "name": self.name, "output_dir": self.output_dir})

    def recipe_settings(self):
        """The method's settings dataclass, built from its table; a wrong key is named with the known ones."""
        from surrogate_emo.recipes import RECIPES

        settings_class = RECIPES[self.recipe].Settings
        try:
            return settings_class(**self.settings)
        except TypeError as error:
            known = [f.name for f in dataclasses.fields(settings_class)]
            raise ConfigError(f"[{self.recipe}]: {error}; its keys are {known}") from None


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` (tensors, numbers, lists) so that a crash never leaves half a file under ``path``."""
    partial = path.with_suffix(".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, partial)
        os.replace(partial, path)
    except OSError as error:
        raise OutputError.writing(error.filename or path, error) from error


def load_checkpoint(path: Path) -> dict | None:
    """The state `save_checkpoint` wrote, or ``None`` where there is none."""
    if not path.is_file():
        return None
    return torch.load(path, weights_only=True, map_location="cpu")
