"""Training loops: the progress they report, and what a run says on stderr before its first evaluation."""

from __future__ import annotations

import re

import pytest
import torch

from torch import nn

from surrogate_emo.data import load_dataset
from surrogate_emo.train import fit, weights_digest
from tests.tiny import tiny_config


def test_fit_reports_progress_about_every_percent_and_at_the_end():
    data = load_dataset("digits").train
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    seen = []
    assert fit(model, data, 250, seed=0, progress=seen.append) == 250
    assert seen[0] == 1 and seen[-1] == 250 and seen == sorted(set(seen))
    assert len(seen) <= 102  # about every 1%: the loop is not slowed by its reporting


def test_a_run_says_each_stage_before_its_first_evaluation_and_nothing_without_progress(tmp_path, capsys):
    from surrogate_emo.pipeline import prepare

    prepare(tiny_config(tmp_path, progress=False))  # trains and caches the base model, silently
    assert capsys.readouterr().err == ""
    prepare(tiny_config(tmp_path, progress=True))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "loading data set digits ..."
    assert re.fullmatch(r"dense base model loaded from the cache \(.+\.pt\)", lines[1])
    prepare(tiny_config(tmp_path, progress=True, base_epochs=2.0))  # another base model: trained, with a bar
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[:2] == ["loading data set digits ...", "training the dense base model: mlp, 2 epochs (18 steps)"]
    assert "base model: 100%" in err and "18/18" in err


def test_the_device_is_resolved_or_refused_in_one_line():
    import torch

    from surrogate_emo.errors import ConfigError
    from surrogate_emo.train import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device 'cuda' was asked for but torch sees no GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="device must be cpu, cuda or auto, got 'tpu'"):
        resolve_device("tpu")


def test_the_weights_digest_tells_models_apart_by_their_values_alone():
    """Names, dtypes, shapes and bytes count; memory layout does not (a strided view hashes as its values), and
    buffers of any dtype, 0-dim tensors, empty ones and a module's extra state do not break it."""
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = {"w": base, "steps": torch.tensor(7), "mask": torch.ones(3, dtype=torch.bool), "empty": torch.zeros(0),
             "half": torch.ones(2, dtype=torch.bfloat16), "_extra_state": {"bits": 4}}
    digest = weights_digest(state)
    assert len(digest) == 16 and weights_digest(dict(reversed(list(state.items())))) == digest
    assert weights_digest({**state, "w": base.t().contiguous().t()}) == digest  # another layout, the same values
    strided = torch.arange(24, dtype=torch.float32)[::2]
    assert weights_digest({**state, "w": strided}) == weights_digest({**state, "w": strided.clone()})
    changed = base.clone()
    changed[1, 2] = torch.nextafter(changed[1, 2], torch.tensor(100.0))  # the last bit of one weight
    for other in ({**state, "w": changed}, {**state, "w": base.double()}, {**state, "w": base.reshape(4, 3)},
                  {**state, "steps": torch.tensor(8)}, {**state, "_extra_state": {"bits": 8}}):
        assert weights_digest(other) != digest
