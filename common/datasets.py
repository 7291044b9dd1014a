"""The two things every data source shares: the ``Dataset`` a loader returns and the
mini-batches ``batches`` cuts from it, the same for every backend.  A leaf: the loaders
(``nin.loaders``, ``nin.volumes``) and the training loop (``nin.train``) import it, it imports
neither."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import DataError, InputError


@dataclass(frozen=True, repr=False)
class Dataset:
    """A train/test split: images float32 (N, C, H, W) in [0, 1] — (N, C, D, H, W) for
    volumes — and labels int64 (N,) in ``range(num_classes)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            where = f"dataset {self.name!r} {split}"
            if x.dtype != np.float32 or x.ndim not in (4, 5):
                raise DataError(
                    f"{where}: images must be float32 (N, C, H, W) or (N, C, D, H, W); got {x.dtype} {x.shape}"
                )
            if x.shape[1:] != self.x_train.shape[1:]:
                raise DataError(f"{where}: images are {x.shape[1:]} but train images are {self.x_train.shape[1:]}")
            if y.dtype != np.int64 or y.shape != (len(x),):
                raise DataError(f"{where}: labels must be int64 of shape ({len(x)},); got {y.dtype} {y.shape}")
            check_label_range(y, self.num_classes, where)
        if len(self.classes) != self.num_classes:
            raise DataError(f"dataset {self.name!r}: {len(self.classes)} class names for {self.num_classes} classes")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image — the spec's ``(in_channels, *input_size)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def in_channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def input_size(self) -> tuple[int, ...]:
        """The spatial size, (H, W) or (D, H, W)."""
        return tuple(self.x_train.shape[2:])

    def __repr__(self) -> str:
        shape = "×".join(map(str, self.input_shape))
        return (
            f"Dataset({self.name!r}, train {len(self.x_train)}, test {len(self.x_test)}, "
            f"images {shape} float32 in [0, 1], {self.num_classes} classes)"
        )


def check_label_range(y: np.ndarray, num_classes: int, where: str) -> None:
    """A ``DataError`` naming ``where`` unless every label is in ``range(num_classes)``."""
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels must be in 0..{num_classes - 1}; got {y.min()}..{y.max()}")


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches ``(x[i], y[i])`` covering every example exactly once (the last batch is
    smaller unless ``drop_last``).  With ``shuffle`` the order is a permutation drawn from
    ``(seed, epoch)`` alone, so every backend that asks for the same seed and epoch gets the
    same batches (with the same NumPy version); a new epoch gives a new order."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise InputError(f"batch_size must be a positive int; got {batch_size!r}")
    if len(x) != len(y):
        raise InputError(f"batches: {len(x)} images but {len(y)} labels")
    n = len(x)
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        yield x[index], y[index]
