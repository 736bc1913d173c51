"""Data sets: the digits split, IDX reading (raw and gzipped), helpful errors, and Fashion-MNIST if installed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogate_emo import data as data_module
from surrogate_emo.data import load_dataset, read_idx
from surrogate_emo.errors import ConfigError, DataError, SurrogateEMOError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of unsigned bytes: two zero bytes, type 0x08, the number of dims, then big-endian sizes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def fake_mnist(folder: Path, n_train: int = 40, n_test: int = 10, size: int = 6, n_classes: int = 4,
               gz: bool = True) -> tuple[np.ndarray, ...]:
    """A tiny MNIST-format folder with balanced labels (the split is stratified)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = (np.arange(n) % n_classes).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        arrays += [images, labels]
    return tuple(arrays)


def raw_pixels(split, mean: float, std: float) -> np.ndarray:
    """Undo the standardisation and return the digits' original 0..16 pixel values as integer rows."""
    return np.rint((split.x.numpy().reshape(len(split), -1) * std + mean) * 16.0).astype(np.int64)


def rows_multiset(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_digits_split_sizes_add_up(digits):
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1149, 288, 360)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert digits.input_shape == (1, 8, 8)
    assert digits.n_classes == 10
    assert digits.train.x.dtype == torch.float32 and digits.train.y.dtype == torch.int64


def test_digits_splits_partition_the_data_set(digits):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    splits = (digits.train, digits.val, digits.test)
    y_all = torch.cat([s.y for s in splits]).numpy()
    # x = (pixel / 16 - mean) / std with one mean and one std: pixel 0 maps to the minimum, 16 to the maximum
    low, high = min(s.x.min().item() for s in splits), max(s.x.max().item() for s in splits)
    std = 1.0 / (high - low)
    mean = -low * std
    combined = np.hstack([np.vstack([raw_pixels(s, mean, std) for s in splits]), y_all[:, None]])
    original = np.hstack([bunch.images.reshape(1797, -1).astype(np.int64), bunch.target[:, None]])
    # every sample appears exactly as often as in the data set: with the sizes adding up, the splits are disjoint
    np.testing.assert_array_equal(rows_multiset(combined), rows_multiset(original))


def test_digits_train_inputs_are_standardised(digits):
    assert digits.train.x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert digits.train.x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    # validation and test use the train statistics, so they are only close to standard
    assert abs(digits.test.x.mean().item()) < 0.1


def test_digits_same_seed_same_split(digits):
    again = load_dataset("digits", seed=0)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(again, name).x, getattr(digits, name).x)
        assert torch.equal(getattr(again, name).y, getattr(digits, name).y)


def test_digits_different_seed_different_split(digits):
    other = load_dataset("digits", seed=1)
    assert len(other.test) == len(digits.test)
    assert not torch.equal(other.test.x, digits.test.x)
    assert not torch.equal(other.val.x, digits.val.x)


def test_digits_splits_are_stratified(digits):
    counts = torch.bincount(digits.test.y, minlength=10).numpy()
    assert counts.min() >= 34 and counts.max() <= 37  # 360 test samples over ten roughly equal classes


@pytest.mark.parametrize("option", ["val_size", "test_size"])
@pytest.mark.parametrize("value", [0.0, 1.0, -0.2])
def test_split_fractions_must_be_in_open_unit_interval(option, value):
    with pytest.raises(ConfigError, match=option):
        load_dataset("digits", **{option: value})


def test_unknown_data_set_lists_known_names():
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar-10")
    message = str(info.value)
    assert "cifar-10" in message
    assert all(name in message for name in ("digits", "fashion-mnist", "idx", "cifar10"))


# ---------------------------------------------------------------- IDX files


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_images_and_labels(tmp_path, suffix):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 5
    labels = np.array([7, 0, 255], dtype=np.uint8)
    image_path = write_idx(tmp_path / f"images-idx3-ubyte{suffix}", images)
    label_path = write_idx(tmp_path / f"labels-idx1-ubyte{suffix}", labels)

    raw = gzip.decompress(image_path.read_bytes()) if suffix else image_path.read_bytes()
    assert raw[:4] == bytes([0x00, 0x00, 0x08, 0x03])
    raw = gzip.decompress(label_path.read_bytes()) if suffix else label_path.read_bytes()
    assert raw[:4] == bytes([0x00, 0x00, 0x08, 0x01])

    np.testing.assert_array_equal(read_idx(image_path), images)
    np.testing.assert_array_equal(read_idx(str(label_path)), labels)
    assert read_idx(image_path).dtype == np.uint8


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_folder(tmp_path, gz):
    train_images, train_labels, test_images, test_labels = fake_mnist(tmp_path / "mnist", gz=gz)
    data = load_dataset("idx", data_dir=str(tmp_path / "mnist"), seed=0)
    assert data.input_shape == (1, 6, 6)
    assert (len(data.train), len(data.val), len(data.test)) == (32, 8, 10)
    assert data.n_classes == 4
    # the test split is the t10k files, in order, scaled to [0, 1] and standardised with train statistics
    torch.testing.assert_close(data.test.y, torch.from_numpy(test_labels.astype(np.int64)))
    scaled = test_images.astype(np.float32) / 255.0
    pool = train_images.astype(np.float32) / 255.0
    recovered = data.test.x.numpy()[:, 0]
    # affine in the pixel values, increasing: same ordering of pixels as the raw file
    slope, intercept = np.polyfit(scaled.ravel(), recovered.ravel(), 1)
    np.testing.assert_allclose(recovered, slope * scaled + intercept, atol=1e-5)
    assert slope > 0 and 1.0 / slope == pytest.approx(pool.std(), rel=0.1)
    assert data.train.x.mean().item() == pytest.approx(0.0, abs=1e-5)


def test_load_idx_accepts_dotted_file_names(tmp_path):
    folder = tmp_path / "dotted"
    fake_mnist(folder)
    for path in folder.iterdir():  # train-images-idx3-ubyte.gz -> train-images.idx3-ubyte.gz
        path.rename(folder / path.name.replace("-idx", ".idx"))
    assert len(load_dataset("idx", data_dir=str(folder)).test) == 10


def test_missing_folder_names_folder_and_remedy(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_dataset("idx", data_dir=str(missing))
    assert str(missing) in str(info.value)
    assert "--data-dir" in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, SurrogateEMOError)


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "FASHION_MNIST_DIRS", (str(tmp_path / "absent"),))
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    assert str(tmp_path / "absent") in str(info.value)
    assert "apt-get install -y dataset-fashion-mnist" in str(info.value)


def test_idx_without_data_dir_is_a_config_error():
    with pytest.raises(ConfigError, match="data_dir"):
        load_dataset("idx")


def test_folder_without_test_files_names_what_is_missing(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k labels"):
        load_dataset("idx", data_dir=str(tmp_path))


@pytest.mark.parametrize("raw, fragment", [
    (b"\x00\x00", "2 bytes"),  # shorter than the magic number
    (b"\x00\x00\x0d\x03" + b"\x00" * 12, "00000d03"),  # float data, not unsigned bytes
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "01000801"),  # magic must start with two zero bytes
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "3 dimensions"),  # header cut off inside the sizes
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "file holds 2"),  # 5 labels announced, 2 present
], ids=["too-short", "not-bytes", "bad-magic", "truncated-header", "truncated-data"])
def test_corrupt_header_raises_data_error(tmp_path, raw, fragment):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=fragment) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [
    b"not gzip at all",
    gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 40, mtime=0)[:-12],
], ids=["not-gzip", "truncated-gzip"])
def test_damaged_gzip_raises_data_error(tmp_path, content):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="could not be read"):
        read_idx(path)


def test_images_and_labels_of_different_lengths_are_rejected(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(39, dtype=np.uint8))
    with pytest.raises(DataError, match=r"\(40, 6, 6\) and \(39,\)"):
        load_dataset("idx", data_dir=str(tmp_path))


# ---------------------------------------------------------------- CIFAR-10 (binary version)


def write_cifar(folder: Path, n: int = 20) -> tuple[np.ndarray, ...]:
    """Six CIFAR-10 batch files of ``n`` records: labels ``i % 10`` (balanced), pixels from a per-batch seed with a
    different range in each channel (R in 0..99, G in 100..179, B in 200..255). Returns pool and test arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = []
    for index, name in enumerate(data_module.CIFAR10_FILES):
        rng = np.random.default_rng(index)
        images = np.stack([rng.integers(low, high, (n, 32, 32)) for low, high in ((0, 100), (100, 180), (200, 256))],
                          axis=1).astype(np.uint8)
        labels = ((np.arange(n) + index) % 10).astype(np.uint8)
        records = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)  # 1 + 3072 bytes each
        (folder / name).write_bytes(records.tobytes())
        arrays.append((images, labels))
    pool_images = np.concatenate([images for images, _ in arrays[:5]])
    pool_labels = np.concatenate([labels for _, labels in arrays[:5]])
    return pool_images, pool_labels, *arrays[5]


def test_read_cifar10_batches(tmp_path):
    pool_images, pool_labels, test_images, test_labels = write_cifar(tmp_path)
    x_pool, y_pool, x_test, y_test = data_module._read_cifar10(tmp_path)
    assert x_pool.shape == (100, 3, 32, 32) and x_test.shape == (20, 3, 32, 32)
    assert x_pool.dtype == np.float32 and y_pool.dtype == np.int64
    np.testing.assert_array_equal(y_pool, pool_labels)
    np.testing.assert_array_equal(y_test, test_labels)
    np.testing.assert_array_equal(x_pool, pool_images.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(x_test, test_images.astype(np.float32) / 255.0)


def test_cifar10_record_is_label_then_channel_major_planes(tmp_path):
    record = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1023 + bytes([40])
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(record * 2)
    images, labels = data_module._read_cifar10_batch(path)
    assert labels.tolist() == [7, 7]
    assert images.shape == (2, 3, 32, 32)
    assert [round(float(images[0, c, 0, 0]) * 255) for c in range(3)] == [10, 20, 30]
    assert round(float(images[1, 2, 31, 31]) * 255) == 40 and round(float(images[1, 2, 31, 30]) * 255) == 30


def test_load_cifar10_splits_and_standardises_per_channel(tmp_path):
    pool_images, pool_labels, test_images, test_labels = write_cifar(tmp_path)
    data = load_dataset("cifar10", data_dir=str(tmp_path), seed=0)
    assert data.name == "cifar10" and data.input_shape == (3, 32, 32) and data.n_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (80, 20, 20)
    # the test split is test_batch.bin, in order; train and validation partition the five training batches
    torch.testing.assert_close(data.test.y, torch.from_numpy(test_labels.astype(np.int64)))
    assert sorted(torch.cat([data.train.y, data.val.y]).tolist()) == sorted(pool_labels.tolist())
    assert torch.bincount(data.val.y, minlength=10).tolist() == [2] * 10  # stratified
    # each channel of the training images has mean 0 and deviation 1 (the channels' raw ranges differ)
    for channel in range(3):
        values = data.train.x[:, channel].double()
        assert values.mean().item() == pytest.approx(0.0, abs=1e-5)
        assert values.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
        # the test images get the train statistics: affine in the raw pixels, increasing
        raw = test_images[:, channel].astype(np.float64).ravel()
        slope, intercept = np.polyfit(raw, data.test.x[:, channel].numpy().ravel(), 1)
        np.testing.assert_allclose(data.test.x[:, channel].numpy().ravel(), slope * raw + intercept, atol=1e-4)
        assert slope > 0
    same = load_dataset("cifar10", data_dir=str(tmp_path), seed=0)
    assert torch.equal(same.val.y, data.val.y) and torch.equal(same.train.x, data.train.x)


def test_load_cifar10_from_the_unpacked_archive_folder(tmp_path):
    write_cifar(tmp_path / data_module.CIFAR10_SUBDIR)
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert (len(data.train) + len(data.val), len(data.test)) == (100, 20)


@pytest.mark.parametrize("where", ["empty", "absent"])
def test_missing_cifar10_says_what_to_get_and_where(tmp_path, where):
    folder = tmp_path / "cifar"
    if where == "empty":
        folder.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=str(folder))
    message = str(info.value)
    assert message.startswith(f"CIFAR-10 not found in {folder}: expected data_batch_1.bin ... data_batch_5.bin "
                              f"and test_batch.bin")
    assert "cifar-10-binary.tar.gz" in message and str(folder / "cifar-10-batches-bin") in message
    assert isinstance(info.value, FileNotFoundError)


def test_packed_cifar10_archive_says_unpack_it(tmp_path):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"not unpacked")
    with pytest.raises(DataError, match="unpack it with `tar xzf"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_incomplete_cifar10_names_the_missing_files(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3.bin").unlink()
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(DataError, match="data_batch_3.bin, test_batch.bin missing"):
        load_dataset("cifar10", data_dir=str(tmp_path))


@pytest.mark.parametrize("cut", [1, 20 * 3073], ids=["one-byte-short", "empty"])
def test_cifar10_file_of_wrong_size_names_file_and_sizes(tmp_path, cut):
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert str(info.value) == (f"{path}: expected a positive multiple of 3073 bytes (records of 1 label byte and "
                               f"3072 pixel bytes), got {20 * 3073 - cut} bytes")


def test_cifar10_label_out_of_range(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[3 * 3073] = 12  # the label byte of record 3
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"expected labels 0..9, got 12 in record 3"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_cifar10_run_with_vgg_small_end_to_end(tmp_path):
    from tiny import tiny_config

    from surrogate_emo.pipeline import run

    write_cifar(tmp_path / "cifar")
    result = run(tiny_config(tmp_path, dataset="cifar10", data_dir=str(tmp_path / "cifar"), model="vgg-small",
                             search="random", budget=2, pop_size=2, base_epochs=1.0, finetune_steps=1))
    assert len(result.evaluations) == 2 and all(e.ok for e in result.evaluations)
    assert result.front


def test_cifar10_without_data_dir_is_a_config_error():
    with pytest.raises(ConfigError, match="data set 'cifar10' needs data_dir"):
        load_dataset("cifar10")


# ---------------------------------------------------------------- Fashion-MNIST (Debian package)


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist", seed=0)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"{FASHION_DIR} absent (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_loads(fashion):
    assert len(fashion.train) + len(fashion.val) == 60_000
    assert len(fashion.val) == 12_000
    assert len(fashion.test) == 10_000
    assert fashion.input_shape == (1, 28, 28)
    assert fashion.n_classes == 10
    assert torch.bincount(fashion.test.y, minlength=10).tolist() == [1000] * 10
    assert fashion.train.x.mean().item() == pytest.approx(0.0, abs=1e-4)
