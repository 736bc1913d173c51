"""Data sets held in memory as tensors, with a fixed train / validation / test split.

Nothing here downloads: the default is scikit-learn's bundled digits; Fashion-MNIST comes from the Debian
package ``dataset-fashion-mnist``; any folder of MNIST-format IDX files works through ``data_dir``.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from surrogate_emo.errors import ConfigError, DataError

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
DATASETS = ("digits", "fashion-mnist", "idx")


@dataclass(frozen=True)
class Split:
    """Inputs `N x C x H x W` (float32, standardised with train statistics) and labels `N` (int64)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DataSplits:
    """A data set cut once into train (fitting), validation (what the search sees) and test (final report)."""

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def load_dataset(name: str = "digits", data_dir: str | None = None, seed: int = 0,
                 val_size: float = 0.2, test_size: float = 0.2) -> DataSplits:
    """Load a data set by name and split it with ``seed``.

    Args:
        name: ``digits`` (bundled with scikit-learn), ``fashion-mnist`` (Debian package or ``data_dir``),
            or ``idx`` (any MNIST-format folder given by ``data_dir``: MNIST, Fashion-MNIST, KMNIST).
        data_dir: folder of IDX files (``train-images-idx3-ubyte[.gz]`` and friends).
        seed: fixes which samples land in which split.
        val_size: fraction of the training pool held out for validation.
        test_size: fraction held out for test where the data set has no test split of its own (digits).

    Example:
        >>> data = load_dataset("digits", seed=0)
        >>> data.input_shape
        (1, 8, 8)
    """
    for label, value in (("val_size", val_size), ("test_size", test_size)):
        if not 0.0 < value < 1.0:
            raise ConfigError(f"{label} must be a fraction in (0, 1), got {value!r}")
    if name == "digits":
        x, y = _digits()
        x_pool, y_pool, x_test, y_test = _holdout(x, y, test_size, seed)
    elif name in ("fashion-mnist", "idx"):
        folder = _find_idx_dir(name, data_dir)
        x_pool, y_pool = _read_idx_pair(folder, "train")
        x_test, y_test = _read_idx_pair(folder, "t10k")
    else:
        raise ConfigError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    x_train, y_train, x_val, y_val = _holdout(x_pool, y_pool, val_size, seed + 1)
    mean, std = float(x_train.mean()), float(x_train.std()) or 1.0
    return DataSplits(
        name=name,
        train=_to_split(x_train, y_train, mean, std),
        val=_to_split(x_val, y_val, mean, std),
        test=_to_split(x_test, y_test, mean, std),
        n_classes=int(max(y_pool.max(), y_test.max())) + 1,
    )


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def _holdout(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Stratified split: returns (x_keep, y_keep, x_out, y_out)."""
    from sklearn.model_selection import train_test_split

    x_keep, x_out, y_keep, y_out = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y)
    return x_keep, y_keep, x_out, y_out


def _to_split(x: np.ndarray, y: np.ndarray, mean: float, std: float) -> Split:
    images = torch.from_numpy(((x - mean) / std).astype(np.float32)).unsqueeze(1)
    return Split(x=images.contiguous(), y=torch.from_numpy(y.astype(np.int64)))


def _find_idx_dir(name: str, data_dir: str | None) -> Path:
    candidates = [Path(data_dir)] if data_dir else [Path(d) for d in FASHION_MNIST_DIRS] if name == "fashion-mnist" else []
    if not candidates:
        raise ConfigError("data set 'idx' needs data_dir: a folder of MNIST-format IDX files")
    for folder in candidates:
        if _idx_file(folder, "train", "images") is not None:
            return folder
    looked = ", ".join(str(c) for c in candidates)
    hint = ("install it with `apt-get update && apt-get install -y dataset-fashion-mnist`, or pass --data-dir"
            if name == "fashion-mnist" and not data_dir else "pass --data-dir pointing at such a folder")
    raise DataError(f"no MNIST-format IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    f"t10k-...) found in {looked}; {hint}")


def _idx_file(folder: Path, prefix: str, kind: str) -> Path | None:
    dims = "3" if kind == "images" else "1"
    for stem in (f"{prefix}-{kind}-idx{dims}-ubyte", f"{prefix}-{kind}.idx{dims}-ubyte"):
        for suffix in ("", ".gz"):
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def _read_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    paths = {kind: _idx_file(folder, prefix, kind) for kind in ("images", "labels")}
    missing = [kind for kind, path in paths.items() if path is None]
    if missing:
        raise DataError(f"{folder} lacks the {prefix} {' and '.join(missing)} IDX file "
                        f"(expected e.g. {prefix}-{missing[0]}-idx{'3' if missing[0] == 'images' else '1'}-ubyte.gz)")
    images = read_idx(paths["images"]).astype(np.float32) / 255.0
    labels = read_idx(paths["labels"]).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: expected images N x H x W and N labels, got {images.shape} and {labels.shape}")
    return images, labels


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) of unsigned bytes into an array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:  # a damaged .gz: BadGzipFile is an OSError, a truncated one EOFError
        raise DataError(f"{path} could not be read: {error}") from error
    if len(raw) < 4:
        raise DataError(f"{path} is not an IDX file: {len(raw)} bytes")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: expected an IDX file of unsigned bytes (magic 0x0008), got {raw[:4].hex()}")
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: header declares {ndim} dimensions ({4 + 4 * ndim} header bytes), "
                        f"file holds {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says shape {shape}, file holds {data.size} values")
    return data.reshape(shape)
