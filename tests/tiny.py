"""A tiny, fast configuration shared by the end-to-end tests (digits, small MLP, a few fine-tuning steps)."""

from __future__ import annotations

from pathlib import Path

import torch

from surrogate_emo.config import RunConfig


def tiny_config(tmp_path, **overrides) -> RunConfig:
    values = dict(name="tiny", output_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"),
                  budget=12, pop_size=6, base_epochs=3.0, finetune_steps=4, progress=False,
                  warm_start=False)  # each fine-tune from the dense base; the warm-start tests ask for it
    values.update(overrides)
    return RunConfig(**values)


def retrain_elsewhere(cache_dir: Path, shift: float = 1e-3) -> None:
    """What a retrain in another session does to the base model cached under ``cache_dir`` in its last bits, made
    visible; a large ``shift`` changes its dense error too."""
    (path,) = (cache_dir / "base").glob("*.pt")
    weights = torch.load(path, weights_only=True)
    torch.save({name: tensor + shift if tensor.is_floating_point() else tensor for name, tensor in weights.items()},
               path)
