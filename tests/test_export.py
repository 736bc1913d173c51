"""What a user takes away: packed models that compute what the trained ones computed, files that load without the
package, and ``surrogate-emo export`` end to end on a tiny run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from surrogate_emo.cli import main
from surrogate_emo.compress.masks import mask_model
from surrogate_emo.compress.quant import quantize_model
from surrogate_emo.deploy import PackedLayer, export, pack, unpack
from surrogate_emo.errors import ConfigError, SurrogateEMOWarning
from surrogate_emo.exporting import export_run
from surrogate_emo.pipeline import run
from surrogate_emo.schemes import PruneQuantScheme

from tiny import retrain_elsewhere, tiny_config


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.ReLU(),
                         nn.Linear(8, 3))


X = torch.randn(5, 1, 6, 6)


@pytest.mark.parametrize("compress", [
    lambda m: mask_model(m, {"0": 0.3, "3": 0.1}),
    lambda m: quantize_model(m, {"0": 4, "3": 3, "5": 8}),
    lambda m: PruneQuantScheme(m, (1, 6, 6)).compress(m, [0.8, 0.3, 0.7, 0.5, 1.0, 0.0]),
], ids=["masked", "quantised", "pruned-and-quantised"])
def test_a_packed_model_stores_only_what_is_kept_and_computes_the_same(compress):
    model = compress(net()).eval()
    packed = pack(model)
    layers = [m for m in packed.modules() if isinstance(m, PackedLayer)]
    assert layers and all(layer.values.numel() <= int(np.prod(layer.shape)) for layer in layers)
    with torch.no_grad():
        torch.testing.assert_close(packed(X), model(X), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(unpack(packed)(X), model(X), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(unpack(packed, {"3": "csr"})(X), model(X), rtol=1e-5, atol=1e-5)
    quantised = [layer for layer in layers if layer.scale.numel()]
    assert all(layer.values.dtype == torch.int8 for layer in quantised)


def test_the_exported_file_loads_with_torch_alone_at_any_batch_size(tmp_path):
    model = mask_model(net(), {"0": 0.5, "3": 0.05}).eval()
    files = export(model, X[:2], tmp_path, onnx=False)
    torch.save(X, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(X), tmp_path / "expected.pt")
    script = ("import sys, torch; m = torch.export.load(sys.argv[1]).module(); x = torch.load(sys.argv[2]); "
              "assert 'surrogate_emo' not in sys.modules; "
              "torch.testing.assert_close(m(x), torch.load(sys.argv[3]), rtol=1e-5, atol=1e-5); "
              "assert m(x[:1]).shape == (1, 3); print('ok')")
    done = subprocess.run([sys.executable, "-c", script, str(files["pt2"]), str(tmp_path / "x.pt"),
                           str(tmp_path / "expected.pt")], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "ok", done.stderr
    from safetensors import safe_open

    with safe_open(files["safetensors"], "pt") as handle:
        assert handle.get_tensor("3.values").numel() == int(0.05 * 8 * 144)
        assert "packed_layers" in handle.metadata()


def test_export_of_a_run_reproduces_its_test_error_and_measures_it(tmp_path):
    config = tiny_config(tmp_path, scheme="prune-quant", objectives=["bytes"])
    result = run(config)
    exported = export_run(result.run_dir, within=100.0)
    assert exported.loaded_test_error == pytest.approx(exported.test_error, abs=1e-12)
    assert {"pt2", "safetensors"} <= set(exported.files)
    labels = [row["model"] for row in exported.table]
    assert labels[0] == "dense base (torch)" and any("as exported" in label for label in labels)
    for row in exported.table:
        assert row["ms_batch1_threads1"] > 0 and row["safetensors_bytes"] > 0
    compressed = [row for row in exported.table if row["model"].startswith("compressed")]
    assert all(row["test_error"] == pytest.approx(exported.test_error, abs=1 / 360) for row in compressed)
    assert compressed[0]["safetensors_bytes"] < exported.table[0]["safetensors_bytes"]
    assert (exported.folder / "deployment.md").read_text().count("|") > 20
    # a trial by number, from the command line
    assert main(["export", str(result.run_dir), "--trial", "0", "--no-onnx", "--out", str(tmp_path / "t0")]) == 0
    assert (tmp_path / "t0" / "model.pt2").is_file()


def test_export_of_an_experiment_run_uses_the_experiment_base_and_says_when_it_differs(tmp_path, monkeypatch):
    """An experiment keeps its base models in its folder: export finds them there (not in the user's cache), and
    a base that is not the one the run compressed is warned about."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the user's cache, where export must not look
    experiment = tmp_path / "study"
    result = run(tiny_config(tmp_path, output_dir=str(experiment / "mlp_digits"), cache_dir=str(experiment),
                             budget=4, final_test=False))
    retrain_elsewhere(experiment)
    with pytest.warns(SurrogateEMOWarning, match=f"expected weights digest {result.summary['base_digest']}, got"):
        export_run(result.run_dir, trial=0, onnx=False)
    assert not (tmp_path / "home" / ".cache").exists()


def test_export_says_what_it_expected(tmp_path, capsys):
    with pytest.raises(ConfigError, match="expected exactly one of --trial N or --within POINTS"):
        export_run(tmp_path, trial=1, within=1.0)
    with pytest.raises(ConfigError, match="expected a run folder with a study.sqlite"):
        export_run(tmp_path / "nowhere", trial=1)
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(tmp_path)])
    assert stopped.value.code == 2
    assert "one of the arguments --trial --within is required" in capsys.readouterr().err
