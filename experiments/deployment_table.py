"""One deployment table for several runs: each run's most compressed front model within POINTS of the dense test
error (as `surrogate-emo export RUN_DIR --within POINTS` writes it), bytes on disk and CPU latency beside the dense
base model; then where a sparse CSR kernel pays for a pruned ``Linear``. Run alone (latencies):

    python experiments/deployment_table.py results/schemes_lenet300/lenet-300-100_fashion-mnist/*_seed0 \\
        --within 1 > results/schemes_lenet300/deployment.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from surrogate_emo.compress.masks import mask_model
from surrogate_emo.deploy import CsrLinear, latency, pack, unpack
from surrogate_emo.errors import ConfigError
from surrogate_emo.exporting import export_run

COLUMNS = ("bytes_counted", "safetensors_bytes", "onnx_bytes", "test_error", "ms_batch1_threads1",
           "ms_batch1_threads2", "ms_batch256_threads1", "ms_batch256_threads2")


def runs_table(run_dirs: list[Path], within: float) -> None:
    print(f"## The most compressed front model within {within:g} point(s) of the dense test error, per run\n")
    print("Latency: median ms of 30 forward passes on CPU, batch 1 and 256, one thread and two.\n")
    print("| run | trial | model | " + " | ".join(COLUMNS) + " |")
    print("|---" * (3 + len(COLUMNS)) + "|")
    for run_dir in run_dirs:
        with tempfile.TemporaryDirectory() as folder:
            try:
                exported = export_run(run_dir, within=within, out=folder)
            except ConfigError as error:
                print(f"| {run_dir.name} | – | {error} |" + " |" * len(COLUMNS))
                continue
            for row in exported.table:
                cells = [f"{row.get(c):.4g}" if isinstance(row.get(c), float) else str(row.get(c, "–"))
                         for c in COLUMNS]
                print(f"| {run_dir.name} | {exported.trial} | {row['model']} | " + " | ".join(cells) + " |")
    print()


def csr_table() -> None:
    print("## Where a sparse CSR kernel pays: one pruned Linear(784, 300), one thread\n")
    print("| kept weights | dense kernel, batch 1 (ms) | CSR, batch 1 | dense, batch 256 | CSR, batch 256 |")
    print("|---|---|---|---|---|")
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(784, 300))
    for keep in (0.5, 0.2, 0.1, 0.05, 0.02, 0.01):
        packed = pack(mask_model(layer, {"0": keep}))
        dense, sparse = unpack(packed), unpack(packed, {"0": "csr"})
        assert isinstance(sparse[0], CsrLinear)
        cells = []
        for batch in (1, 256):
            x = torch.randn(batch, 784)
            cells += [1000 * latency(dense, x, 1, repeats=100), 1000 * latency(sparse, x, 1, repeats=100)]
        print(f"| {keep:.0%} | " + " | ".join(f"{c:.4f}" for c in (cells[0], cells[1], cells[2], cells[3])) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--within", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"# Deployment\n\nCommand: `python {' '.join(sys.argv)}` (2 cores, nothing else running).\n")
    runs_table(args.runs, args.within)
    csr_table()


if __name__ == "__main__":
    main()
