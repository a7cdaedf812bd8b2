"""Data loaders: MNIST split, digits, and the CIFAR-10 loader on small generated batch files."""

import pickle

import numpy as np
import pytest

from binaccel.sw.data import DataError, load, load_cifar10, load_mnist


def test_mnist_split_fixed_and_disjoint():
    a, b = load_mnist(), load_mnist()
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert a.x_train.dtype == np.uint8 and a.x_train.max() == 255
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert set(np.unique(a.y_test)) == set(range(10))
    train_rows = {r.tobytes() for r in a.x_train.reshape(4000, -1)}
    assert sum(r.tobytes() in train_rows for r in a.x_test.reshape(1000, -1)) < 5  # (MNIST has few duplicates)


def _write_batch(path, n, seed, labels=None, data=None):
    rng = np.random.default_rng(seed)
    d = {b"data": rng.integers(0, 256, size=(n, 3072)).astype(np.uint8) if data is None else data,
         b"labels": list(rng.integers(0, 10, size=n)) if labels is None else labels}
    with open(path, "wb") as f:
        pickle.dump(d, f)
    return d


def test_cifar10_loader_reads_batches(tmp_path):
    b1 = _write_batch(tmp_path / "data_batch_1", 7, 1)
    _write_batch(tmp_path / "data_batch_2", 5, 2)
    t = _write_batch(tmp_path / "test_batch", 4, 3)
    s = load_cifar10(tmp_path)
    assert s.x_train.shape == (12, 3, 32, 32) and s.x_test.shape == (4, 3, 32, 32)
    assert np.array_equal(s.x_train[:7].reshape(7, -1), b1[b"data"])
    # channel-major layout as CIFAR stores it: first 1024 bytes are the red plane
    assert np.array_equal(s.x_test[0, 0].reshape(-1), t[b"data"][0, :1024])
    assert s.y_test.tolist() == [int(v) for v in t[b"labels"]]
    assert load("cifar10", root=tmp_path).x_train.shape[0] == 12


def test_cifar10_errors_name_file_and_field(tmp_path):
    with pytest.raises(DataError, match="no CIFAR-10 training batches"):
        load_cifar10(tmp_path)
    _write_batch(tmp_path / "data_batch_1", 3, 1)
    with pytest.raises(DataError, match="test_batch: CIFAR-10 batch file not found"):
        load_cifar10(tmp_path)
    _write_batch(tmp_path / "test_batch", 3, 1, data=np.zeros((3, 100), dtype=np.uint8))
    with pytest.raises(DataError, match=r"test_batch: field 'data': expected uint8 \(N, 3072\)"):
        load_cifar10(tmp_path)
    _write_batch(tmp_path / "test_batch", 3, 1, labels=[0, 1])
    with pytest.raises(DataError, match="field 'labels': expected 3 labels"):
        load_cifar10(tmp_path)
    _write_batch(tmp_path / "test_batch", 3, 1, labels=[0, 1, 12])
    with pytest.raises(DataError, match="field 'labels': expected values 0..9"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a CIFAR-10 python batch file"):
        load_cifar10(tmp_path)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown data set"):
        load("imagenet")
