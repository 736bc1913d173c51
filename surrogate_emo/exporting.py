"""``surrogate-emo export RUN_DIR``: one model of a finished run, written as files a user loads without this
package, checked against its test error, with a deployment table (bytes on disk, CPU latency) beside the dense
base model."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from surrogate_emo.config import LEGACY_VALUES, RunConfig, config_from_dict
from surrogate_emo.deploy import OnnxModel, choose_kernels, export, latency, load, pack, unpack
from surrogate_emo.errors import ConfigError, StudyError, SurrogateEMOWarning
from surrogate_emo.evaluate import Evaluation
from surrogate_emo.pipeline import Setup, final_model, front_evaluations, prepare
from surrogate_emo.store import Study
from surrogate_emo.train import error_rate

BATCHES = (1, 256)


@dataclass
class Exported:
    """What `export_run` wrote and measured."""

    trial: int
    folder: Path
    files: dict[str, Path]
    test_error: float
    loaded_test_error: float
    table: list[dict]


def run_config(run_dir: Path) -> tuple[RunConfig, list[Evaluation], str | None]:
    """The configuration and the evaluations of the run stored in ``run_dir`` (its ``study.sqlite``), and the
    weights digest of the base model it last compressed (None where not recorded). An experiment's run finds its
    base models in the experiment's folder.

    Raises:
        ConfigError: ``run_dir`` holds no study, or its study holds no run of the folder's name.
    """
    path = run_dir / "study.sqlite"
    if not path.is_file():
        raise ConfigError(f"expected a run folder with a study.sqlite (e.g. runs/quickstart), got {run_dir}")
    study = Study(path)
    try:
        names = study.run_names()
        name = run_dir.name if run_dir.name in names else (names[0] if len(names) == 1 else None)
        if name is None:
            raise StudyError(f"{path} holds runs {names}, none named {run_dir.name!r}")
        run_id = study.run_id(name)
        stored = study.config(run_id)
        evaluations = [e for _, e in sorted(study.evaluations(run_id).items())]
        digests = [entry["digest"] for entry in study.info(run_id).get("base_history", []) if entry["digest"]]
    finally:
        study.close()
    if stored.get("problem"):
        raise ConfigError(f"run {name!r} is a test problem, not a compressed network: there is no model to export")
    values = {**LEGACY_VALUES, **stored, "name": name, "output_dir": str(run_dir.parent), "progress": False}
    experiment = run_dir.parent.parent  # <experiment>/<problem>/<run>: its base models are in <experiment>/base
    if (experiment / "base").is_dir():
        values["cache_dir"] = str(experiment)
    return config_from_dict(values), evaluations, (digests[-1] if digests else None)


def choose(setup: Setup, config: RunConfig, evaluations: list[Evaluation], trial: int | None,
           within: float | None) -> tuple[Evaluation, nn.Module, float]:
    """The evaluation asked for (``--trial`` N, or ``--within`` P: the front model with the smallest first cheap
    objective whose test error is at most P points above the dense one) with its model and test error."""
    history = [e for e in evaluations if e.trial is not None]
    if trial is not None:
        found = [e for e in history if e.trial == trial]
        if not found or not found[0].ok:
            ok = [e.trial for e in history if e.ok]
            raise ConfigError(f"expected a trial that finished ok (0..{max(ok) if ok else -1}), got {trial}"
                              + (" (it failed)" if found else ""))
        model, _ = final_model(setup, found[0], config, history=history)
        return found[0], model, error_rate(model, setup.data.test)
    bound = setup.dense_test_error + within / 100 + 1e-12
    cheap = setup.evaluator.objective_names[1]
    best = None
    memo: dict = {}
    for evaluation in sorted(front_evaluations(setup, history), key=lambda e: e.ratios[cheap]):
        model, _ = final_model(setup, evaluation, config, history=history, memo=memo)
        test_error = error_rate(model, setup.data.test)
        if test_error <= bound:
            best = (evaluation, model, test_error)
            break
    if best is None:
        raise ConfigError(f"no front model is within {within} points of the dense test error "
                          f"({100 * setup.dense_test_error:.2f}%); try a larger --within or --trial N")
    return best


def deployment_table(setup: Setup, model: nn.Module, folder: Path, compressed_bytes: int,
                     test_errors: dict[str, float]) -> list[dict]:
    """Bytes on disk and median CPU latency (batch 1 and 256, one thread and all) of the dense base model and the
    compressed one: as exported (``model.pt2`` loaded by torch), in its runtime form (dense weights rebuilt once;
    torch.sparse CSR for a pruned linear layer where measured faster), and under ONNX Runtime where exported."""
    threads = sorted({1, os.cpu_count() or 1})
    dense_folder = folder / "dense"
    dense_files = export(setup.base, setup.data.test.x[:2], dense_folder, onnx="onnx" in test_errors)
    files = {name: folder / f"model.{name}" for name in ("pt2", "safetensors", "onnx")}
    packed = pack(model)
    kernels = choose_kernels(packed, setup.data.test.x[:256], threads=1)
    csr = [name for name, kernel in kernels.items() if kernel == "csr"]
    forms = [("dense base (torch)", setup.base, dense_files, setup.scheme.dense.bytes, test_errors["dense"]),
             ("compressed, as exported (model.pt2 in torch)", load(files["pt2"]), files, compressed_bytes,
              test_errors["loaded"]),
             ("compressed, runtime form (torch" + (f"; CSR kernel in {', '.join(csr)}" if csr else "") + ")",
              unpack(packed, kernels), files, compressed_bytes, test_errors["runtime"])]
    if "onnx" in test_errors:
        forms.insert(1, ("dense base (ONNX Runtime)", dense_files["onnx"], dense_files, setup.scheme.dense.bytes,
                         test_errors["dense"]))
        forms.append(("compressed (ONNX Runtime)", files["onnx"], files, compressed_bytes, test_errors["onnx"]))
    rows = []
    for label, net, written, counted, test_error in forms:
        row = {"model": label, "bytes_counted": counted,
               **{f"{name}_bytes": path.stat().st_size if path.is_file() else "" for name, path in
                  sorted(written.items())}, "test_error": test_error}
        for batch in BATCHES:
            example = setup.data.test.x[:batch]
            for count in threads:
                runner = OnnxModel(net, count) if isinstance(net, Path) else net
                row[f"ms_batch{batch}_threads{count}"] = 1000 * latency(runner, example, count)
        rows.append(row)
    return rows


def onnx_error(path: Path, setup: Setup) -> float:
    """Test error of ``model.onnx`` under ONNX Runtime."""
    session = OnnxModel(path)
    wrong = 0
    for x, y in zip(setup.data.test.x.split(4096), setup.data.test.y.split(4096)):
        wrong += int((session(x).argmax(dim=1) != y).sum())
    return wrong / len(setup.data.test)


def export_run(run_dir: str | Path, trial: int | None = None, within: float | None = None,
               out: str | Path | None = None, onnx: bool = True) -> Exported:
    """Export one model of the run in ``run_dir``; see the module docstring."""
    if (trial is None) == (within is None):
        raise ConfigError("expected exactly one of --trial N or --within POINTS")
    run_dir = Path(run_dir)
    config, evaluations, digest = run_config(run_dir)
    setup = prepare(config)
    if digest is not None and setup.base_digest != digest:  # its cache lost, or another machine
        warnings.warn(f"the dense base model differs from the one run {config.name} compressed: expected weights "
                      f"digest {digest}, got {setup.base_digest} (the model is rebuilt on this one; its errors "
                      "differ from the run's)", SurrogateEMOWarning, stacklevel=2)
    evaluation, model, test_error = choose(setup, config, evaluations, trial, within)
    folder = Path(out) if out is not None else run_dir / "export" / f"trial-{evaluation.trial}"
    files = export(model, setup.data.test.x[:2], folder, onnx=onnx)
    loaded_error = error_rate(load(files["pt2"]), setup.data.test)
    runtime_error = error_rate(unpack(pack(model)), setup.data.test)
    errors = {"dense": setup.dense_test_error, "loaded": loaded_error, "runtime": runtime_error}
    if "onnx" in files:
        errors["onnx"] = onnx_error(files["onnx"], setup)
    table = deployment_table(setup, model, folder, setup.scheme.costs(evaluation.genome).bytes, errors)
    (folder / "deployment.json").write_text(json.dumps({"run": config.name, "trial": evaluation.trial,
                                                        "scheme": config.scheme, "genome": evaluation.genome.tolist(),
                                                        "test_error": test_error, "rows": table}, indent=2) + "\n")
    (folder / "deployment.md").write_text(markdown(table, config, evaluation.trial))
    torch.set_num_threads(config.threads)
    return Exported(evaluation.trial, folder, files, test_error, loaded_error, table)


def markdown(table: list[dict], config: RunConfig, trial: int) -> str:
    columns = list(table[0])
    lines = [f"# Deployment of run {config.name}, trial {trial} ({config.scheme})", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "bytes_counted: the scheme's exact count (each layer in its smallest coding); the files hold the "
              "packed tensors in safetensors/torch dtypes (float32 values and int32 positions of kept weights, int8 "
              "integers and float32 scales), so they are larger than the count where a coding beats those dtypes. "
              "Latency: median of 30 forward passes on CPU."]
    return "\n".join(lines) + "\n"
