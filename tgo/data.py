"""Data sets by name, split deterministically from the seed.

``digits`` (scikit-learn's 8x8 digits, shipped with the package, no download) is the
default and what tests use. ``mnist``, ``fashion_mnist``, ``cifar10`` and ``cifar100`` come
from torchvision; without their files the error names the folder and the ``download``
option. Pixels are in [0, 1]; normalisation happens inside the model (so attacks work on
pixels), with the ``mean``/``std`` given here.

Example:
    >>> splits = load("digits", seed=0)
    >>> len(splits.train) + len(splits.val) + len(splits.test)
    1797
    >>> splits.in_shape, splits.num_classes
    ((1, 8, 8), 10)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from tgo.config import Dataset as DatasetName
from tgo.config import as_enum

__all__ = ["DataSplits", "load"]


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Train / validation / test sets and what a model needs to know about them."""

    name: DatasetName
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


_STATS = {  # per-channel mean / std of the training pixels in [0, 1]
    DatasetName.DIGITS: ((0.3053,), (0.3760,)),
    DatasetName.MNIST: ((0.1307,), (0.3081,)),
    DatasetName.FASHION_MNIST: ((0.2860,), (0.3530,)),
    DatasetName.CIFAR10: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    DatasetName.CIFAR100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _split_indices(n: int, labels: np.ndarray | None, seed: int,
                   fractions: tuple[float, ...]) -> list[np.ndarray]:
    """Stratified (when labels are given) deterministic split of range(n) by ``fractions``;
    the remainder forms the first part."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c)
                                                     for c in np.unique(labels)]
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for idx in groups:
        idx = rng.permutation(idx)
        start = 0
        for k, frac in enumerate(fractions, start=1):
            count = int(round(frac * len(idx)))
            parts[k].append(idx[start:start + count])
            start += count
        parts[0].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


def _digits(seed: int, val_fraction: float, test_fraction: float) -> DataSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.long)
    train, val, test = _split_indices(len(y), bunch.target, seed, (val_fraction, test_fraction))
    mean, std = _STATS[DatasetName.DIGITS]
    full = TensorDataset(x, y)
    return DataSplits(DatasetName.DIGITS, Subset(full, train.tolist()), Subset(full, val.tolist()),
                      Subset(full, test.tolist()), 10, (1, 8, 8), mean, std)


def _torchvision(name: DatasetName, data_dir: str, download: bool, seed: int,
                 val_fraction: float) -> DataSplits:
    import torchvision
    from torchvision import transforms as T

    cls, classes, shape = {
        DatasetName.MNIST: (torchvision.datasets.MNIST, 10, (1, 28, 28)),
        DatasetName.FASHION_MNIST: (torchvision.datasets.FashionMNIST, 10, (1, 28, 28)),
        DatasetName.CIFAR10: (torchvision.datasets.CIFAR10, 10, (3, 32, 32)),
        DatasetName.CIFAR100: (torchvision.datasets.CIFAR100, 100, (3, 32, 32)),
    }[name]
    plain = T.ToTensor()
    augment = (T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
               if shape[0] == 3 else plain)
    root = str(Path(data_dir).expanduser())
    try:
        train_aug = cls(root, train=True, transform=augment, download=download)
        train_plain = cls(root, train=True, transform=plain, download=False)
        test = cls(root, train=False, transform=plain, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"{name.value}: data set files not found under {Path(root).resolve()} ({err}). "
            f"Put them there, or allow downloading with download=True "
            f"(CLI: --download; sweep spec: train: {{download: true}}).") from None
    targets = np.asarray(train_aug.targets)
    train_idx, val_idx = _split_indices(len(targets), targets, seed, (val_fraction,))
    mean, std = _STATS[name]
    return DataSplits(name, Subset(train_aug, train_idx.tolist()),
                      Subset(train_plain, val_idx.tolist()), test, classes, shape, mean, std)


def load(name: DatasetName | str = DatasetName.DIGITS, seed: int = 0, data_dir: str = "data",
         download: bool = False, val_fraction: float = 0.1,
         test_fraction: float = 0.2) -> DataSplits:
    """Load data set ``name`` split into train / val / test.

    ``digits`` holds out ``test_fraction`` as test and ``val_fraction`` as validation
    (stratified); torchvision sets keep their official test split and hold out
    ``val_fraction`` of the training set. The split depends only on ``seed``.
    """
    kind = as_enum(DatasetName, name, "dataset")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected in (0, 1), got {val_fraction!r}")
    if kind is DatasetName.DIGITS:
        if not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError("test_fraction: expected in (0, 1) with val_fraction + "
                             f"test_fraction < 1, got {test_fraction!r}")
        return _digits(seed, val_fraction, test_fraction)
    return _torchvision(kind, data_dir, download, seed, val_fraction)
