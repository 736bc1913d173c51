"""A tiny, fast configuration shared by the end-to-end tests (digits, small MLP, a few fine-tuning steps)."""

from __future__ import annotations

from surrogate_emo.config import RunConfig


def tiny_config(tmp_path, **overrides) -> RunConfig:
    values = dict(name="tiny", output_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"),
                  budget=12, pop_size=6, base_epochs=3.0, finetune_steps=4, progress=False,
                  warm_start=False)  # each fine-tune from the dense base; the warm-start tests ask for it
    values.update(overrides)
    return RunConfig(**values)
