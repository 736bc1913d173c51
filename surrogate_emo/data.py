"""Data sets held in memory as tensors, with a fixed train / validation / test split.

Nothing here downloads: the default is scikit-learn's bundled digits; Fashion-MNIST comes from the Debian
package ``dataset-fashion-mnist``; any folder of MNIST-format IDX files works through ``data_dir``, and so does
CIFAR-10's binary version (``data_batch_1.bin`` ... ``test_batch.bin``).

Every split is standardised per channel with the mean and standard deviation of that channel over the training
images (one channel, as in the grey-scale sets: one mean and one deviation over all training pixels).
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
DATASETS = ("digits", "fashion-mnist", "idx", "cifar10")
CIFAR10_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
CIFAR10_SUBDIR = "cifar-10-batches-bin"  # the folder cifar-10-binary.tar.gz unpacks into
CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then 3 x 32 x 32 pixels, channel-major


@dataclass(frozen=True)
class Split:
    """Inputs `N x C x H x W` (float32, standardised per channel with train statistics) and labels `N` (int64)."""

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
            ``idx`` (any MNIST-format folder given by ``data_dir``: MNIST, Fashion-MNIST, KMNIST), or ``cifar10``
            (CIFAR-10's binary batches in ``data_dir`` or in its ``cifar-10-batches-bin`` subfolder; the five
            training batches are the pool split into train and validation, ``test_batch.bin`` is the test split).
        data_dir: folder of IDX files (``train-images-idx3-ubyte[.gz]`` and friends) or of CIFAR-10's batches.
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
    elif name == "cifar10":
        if not data_dir:
            raise ConfigError("data set 'cifar10' needs data_dir (--data-dir): a folder holding CIFAR-10's binary "
                              "batches data_batch_1.bin ... data_batch_5.bin and test_batch.bin")
        x_pool, y_pool, x_test, y_test = _read_cifar10(Path(data_dir))
    else:
        raise ConfigError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    x_train, y_train, x_val, y_val = _holdout(x_pool, y_pool, val_size, seed + 1)
    mean, std = _channel_stats(x_train)
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


def _channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation (1 where it is 0) of each channel of `N x C x H x W` (`N x H x W`: one)."""
    channels = [x] if x.ndim == 3 else [x[:, channel] for channel in range(x.shape[1])]
    return [float(c.mean()) for c in channels], [float(c.std()) or 1.0 for c in channels]


def _to_split(x: np.ndarray, y: np.ndarray, mean: list[float], std: list[float]) -> Split:
    images = x[:, None] if x.ndim == 3 else x  # N x H x W (grey) -> N x 1 x H x W
    scaled = np.empty(images.shape, dtype=np.float32)
    for channel, (m, s) in enumerate(zip(mean, std)):
        scaled[:, channel] = (images[:, channel] - m) / s
    return Split(x=torch.from_numpy(scaled), y=torch.from_numpy(y.astype(np.int64)))


def _read_cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10's binary batches in ``folder`` or in ``folder/cifar-10-batches-bin``.

    Returns:
        ``(x_pool, y_pool, x_test, y_test)``: the five training batches and the test batch, images
        `N x 3 x 32 x 32` float32 in `[0, 1]`, labels `N` int64.

    Raises:
        DataError: no batch file is there (the message says what to get and where to put it), some are
            missing, or one is not a whole number of 3073-byte records.
    """
    source = (f"the 'CIFAR-10 binary version' archive, cifar-10-binary.tar.gz from "
              f"https://www.cs.toronto.edu/~kriz/cifar.html, unpacked into {folder}")
    for candidate in (folder, folder / CIFAR10_SUBDIR):
        present = [name for name in CIFAR10_FILES if (candidate / name).is_file()]
        if present:
            missing = [name for name in CIFAR10_FILES if name not in present]
            if missing:
                raise DataError(f"CIFAR-10 in {candidate} is incomplete: {', '.join(missing)} missing; expected "
                                f"data_batch_1.bin ... data_batch_5.bin and test_batch.bin ({source})")
            batches = [_read_cifar10_batch(candidate / name) for name in CIFAR10_FILES]
            x_pool = np.concatenate([x for x, _ in batches[:-1]])
            y_pool = np.concatenate([y for _, y in batches[:-1]])
            return x_pool, y_pool, *batches[-1]
    archive = folder / "cifar-10-binary.tar.gz"
    unpack = f"; {archive} is there: unpack it with `tar xzf {archive} -C {folder}`" if archive.is_file() else ""
    raise DataError(f"CIFAR-10 not found in {folder}: expected data_batch_1.bin ... data_batch_5.bin and "
                    f"test_batch.bin, there or in {folder / CIFAR10_SUBDIR} ({source}){unpack}")


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: records of one label byte (0..9) and 3072 pixel bytes, channel-major (R, G, B planes)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path} could not be read: {error}") from error
    if not raw or len(raw) % CIFAR10_RECORD:
        raise DataError(f"{path}: expected a positive multiple of {CIFAR10_RECORD} bytes (records of 1 label byte "
                        f"and 3072 pixel bytes), got {len(raw)} bytes")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        first = int(np.argmax(labels > 9))
        raise DataError(f"{path}: expected labels 0..9, got {labels[first]} in record {first}")
    return records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


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
