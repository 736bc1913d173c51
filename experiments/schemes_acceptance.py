"""Two measurements of the compression schemes, written as Markdown to stdout (run alone: latencies):

1. ``filters`` keeping half the output channels of every prunable layer of ``vgg-small`` (1 x 28 x 28, 10 classes):
   bytes counted, bytes on disk (safetensors, model.pt2, model.onnx) and median CPU latency of the dense and the
   filtered model at batch 1 and 256, one thread and two. Size and latency do not depend on the weights' values, so
   the model is not trained here.
2. ``quant`` at 4 bits in every layer of LeNet-300-100 on Fashion-MNIST: the dense base model (30 epochs, cached
   like any run's), then 4-bit quantisation without fine-tuning and with a quantisation-aware fine-tune of 3
   epochs; test errors; bytes as the scheme counts them, as the built model measures them, and on disk.

    python experiments/schemes_acceptance.py > results/schemes/acceptance.md
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from surrogate_emo.compress import measure
from surrogate_emo.config import RunConfig
from surrogate_emo.deploy import OnnxModel, export, latency, load
from surrogate_emo.models import vgg_small
from surrogate_emo.pipeline import prepare
from surrogate_emo.schemes import FiltersScheme
from surrogate_emo.train import error_rate, fit, steps_for


def sizes(files: dict) -> dict:
    return {name: path.stat().st_size for name, path in files.items()}


def timing_rows(label: str, model, onnx_path: Path, shape: tuple[int, ...]) -> list[str]:
    rows = []
    for runtime, runner in (("torch", model), ("ONNX Runtime", None)):
        cells = []
        for batch in (1, 256):
            x = torch.randn(batch, *shape)
            for threads in (1, 2):
                net = runner if runner is not None else OnnxModel(onnx_path, threads)
                cells.append(1000 * latency(net, x, threads, repeats=50))
        rows.append(f"| {label} | {runtime} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return rows


def filters_half() -> None:
    shape = (1, 28, 28)
    torch.manual_seed(0)
    dense = vgg_small(shape, 10).eval()
    scheme = FiltersScheme(dense, shape)
    channels = scheme._channels  # noqa: SLF001 - the gene's C, to aim at exactly half
    genome = np.log(channels / 2) / np.log(channels) + 1e-9
    assert scheme.decode(genome) == [int(c) // 2 for c in channels]
    small = scheme.compress(dense, genome).eval()
    costs = scheme.costs(genome)
    assert measure(small, shape, scheme.pricing) == costs
    print("## filters: half the channels of vgg-small\n")
    print(f"Genes: {dict(zip(scheme.gene_names, scheme.decode(genome)))} kept channels (of "
          f"{[int(c) for c in channels]}); the classifier keeps its 10 outputs.\n")
    with tempfile.TemporaryDirectory() as folder:
        dense_files = export(dense, torch.zeros(2, *shape), Path(folder) / "dense")
        small_files = export(small, torch.zeros(2, *shape), Path(folder) / "small")
        d, s = sizes(dense_files), sizes(small_files)
        print("| model | params | bytes counted | safetensors | model.pt2 | model.onnx | MACs |")
        print("|---|---|---|---|---|---|---|")
        print(f"| dense | {scheme.dense.params:,} | {scheme.dense.bytes:,} | {d['safetensors']:,} | {d['pt2']:,} | "
              f"{d['onnx']:,} | {scheme.dense.macs:,} |")
        print(f"| half the channels | {costs.params:,} | {costs.bytes:,} | {s['safetensors']:,} | {s['pt2']:,} | "
              f"{s['onnx']:,} | {costs.macs:,} |")
        print(f"| ratio dense / filtered | {scheme.dense.params / costs.params:.2f} | "
              f"{scheme.dense.bytes / costs.bytes:.2f} | {d['safetensors'] / s['safetensors']:.2f} | "
              f"{d['pt2'] / s['pt2']:.2f} | {d['onnx'] / s['onnx']:.2f} | {scheme.dense.macs / costs.macs:.2f} |\n")
        print("Median latency in ms (50 runs after 5 warm-up runs):\n")
        print("| model | runtime | batch 1, 1 thread | batch 1, 2 threads | batch 256, 1 thread | batch 256, 2 threads |")
        print("|---|---|---|---|---|---|")
        rows = timing_rows("dense", dense, dense_files["onnx"], shape) + timing_rows(
            "half the channels", load(small_files["pt2"]), small_files["onnx"], shape)
        print("\n".join(rows) + "\n")
        ratios = []
        for dense_row, small_row in zip(rows[:2], rows[2:]):
            a = [float(c) for c in dense_row.split("|")[3:7]]
            b = [float(c) for c in small_row.split("|")[3:7]]
            ratios.append(dense_row.split("|")[2].strip() + ": " + ", ".join(f"{x / y:.2f}x" for x, y in zip(a, b)))
        print("Speed-up dense / filtered (same four columns): " + "; ".join(ratios) + ".\n")


def quant_4bit() -> None:
    config = RunConfig(dataset="fashion-mnist", model="lenet-300-100", scheme="quant", progress=False,
                       objectives=["bytes"])
    setup = prepare(config)
    scheme, data = setup.scheme, setup.data
    genome = np.full(scheme.dim, (4 - 2 + 0.5) / 7)
    assert [s.bits for s in scheme.decode(genome)] == [4] * scheme.dim
    costs = scheme.costs(genome)
    steps = steps_for(3.0, len(data.train), config.batch_size)
    torch.manual_seed(0)
    quantised = scheme.compress(setup.base, genome)
    no_finetune = error_rate(quantised, data.test)
    fit(quantised, data.train, steps, lr=config.finetune_learning_rate, batch_size=config.batch_size, seed=0)
    tuned = error_rate(quantised, data.test)
    built = measure(quantised, data.input_shape, scheme.pricing)
    with tempfile.TemporaryDirectory() as folder:
        files = sizes(export(quantised, data.test.x[:2], Path(folder), onnx=False))
        reloaded = error_rate(load(Path(folder) / "model.pt2"), data.test)
    print("## quant: 4 bits in every layer of LeNet-300-100 on Fashion-MNIST\n")
    print("| model | test error | bytes counted | bytes of the built model | safetensors | model.pt2 |")
    print("|---|---|---|---|---|---|")
    print(f"| dense (30 epochs) | {100 * setup.dense_test_error:.2f}% | {scheme.dense.bytes:,} | | | |")
    print(f"| 4 bits, no fine-tune | {100 * no_finetune:.2f}% | {costs.bytes:,} | {built.bytes:,} | | |")
    print(f"| 4 bits, 3 epochs quantisation-aware ({steps} steps) | {100 * tuned:.2f}% (model.pt2 reloaded: "
          f"{100 * reloaded:.2f}%) | {costs.bytes:,} | {built.bytes:,} | {files['safetensors']:,} | "
          f"{files['pt2']:,} |\n")
    per_layer = [(spec.name, spec.rows * spec.cols, spec.rows) for spec in scheme.layers]
    hand = sum(-(-(n * 4 + 32 * rows + 32 * rows) // 8) for _, n, rows in per_layer)
    print(f"By hand: each layer `ceil((4 N + 32 C_out (scales) + 32 C_out (bias)) / 8)` bytes, "
          f"{' + '.join(f'{name}: N={n:,}, C_out={rows}' for name, n, rows in per_layer)}: {hand:,} bytes "
          f"({'equal to' if hand == costs.bytes else 'DIFFERENT from'} the count); {scheme.dense.bytes / costs.bytes:.2f}x "
          "fewer bytes than float32. The files hold int8 integers (no 4-bit packing in safetensors or torch), "
          "so they are about a quarter of the float32 size, not an eighth.\n")


if __name__ == "__main__":
    torch.set_num_threads(2)
    print("# Schemes: filter removal on vgg-small, 4-bit quantisation on LeNet-300-100\n")
    print(f"Command: `python {' '.join(sys.argv)}` on the development machine (2 cores), nothing else running.\n")
    filters_half()
    quant_4bit()
