"""nin.loaders: real file formats written into tmp_path (IDX, CIFAR-10 pickles), the mnist5k
split, resizing, synthetic data and reproducible batches.  Nothing here touches the network."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nin.errors import DataError, InputError, UnknownNameError
from nin.loaders import (
    CIFAR10_CLASSES,
    DATASET_FORMS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    Dataset,
    batches,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_mnist5k,
    resize,
    synthetic,
)

# -- writers for the real formats ------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0x0000, type 0x08, ndim, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fashion_arrays(n_train=12, n_test=6, size=(7, 5), seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, *size), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *size), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10)[::-1].astype(np.uint8),
    }


def write_fashion(directory: Path, gz: bool = False, arrays=None) -> dict[str, Path]:
    arrays = fashion_arrays() if arrays is None else arrays
    directory.mkdir(parents=True, exist_ok=True)
    return {
        key: write_file(directory / FASHION_MNIST_FILES[key], idx_bytes(arrays[key]), gz) for key in FASHION_MNIST_FILES
    }


def cifar_batch(n: int, seed: int) -> dict:
    """A batch as the python version of CIFAR-10 stores it (bytes keys, N×3072 uint8)."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"testing batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img%d.png" % i for i in range(n)],
    }


def write_cifar(parent: Path, n: int = 3, meta: bool = True) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        (folder / name).write_bytes(pickle.dumps(cifar_batch(n, seed), protocol=2))
    if meta:
        labels = [b"c%d" % i for i in range(10)]
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": labels}, protocol=2))
    return folder


# -- Fashion-MNIST -----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_fashion_mnist_reads_idx_files(tmp_path, gz):
    arrays = fashion_arrays()
    write_fashion(tmp_path, gz, arrays)
    ds = load_fashion_mnist(tmp_path)
    assert ds.name == "fashion-mnist" and ds.classes == FASHION_MNIST_CLASSES and ds.num_classes == 10
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.shape == (12, 1, 7, 5) and ds.x_test.shape == (6, 1, 7, 5)
    assert ds.input_shape == (1, 7, 5) and ds.in_channels == 1 and ds.input_size == (7, 5)
    np.testing.assert_allclose(ds.x_train[:, 0], arrays["train_images"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])


def test_fashion_mnist_finds_torchvision_layout_and_resizes(tmp_path):
    write_fashion(tmp_path / "FashionMNIST" / "raw", gz=True)
    ds = load_fashion_mnist(tmp_path, input_size=16)
    assert ds.x_train.shape == (12, 1, 16, 16)
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1


def test_fashion_mnist_missing_files_are_named(tmp_path):
    paths = write_fashion(tmp_path)
    paths["test_labels"].unlink()
    paths["train_images"].unlink()
    with pytest.raises(DataError) as e:
        load_fashion_mnist(tmp_path)
    message = str(e.value)
    assert "train-images-idx3-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte[.gz]" in message
    assert "train-labels" not in message and str(tmp_path) in message


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("key", ["train_images", "test_labels"])
def test_fashion_mnist_truncated_file_gives_expected_and_actual_bytes(tmp_path, key, gz):
    arrays = fashion_arrays()
    paths = write_fashion(tmp_path, gz, arrays)
    full = idx_bytes(arrays[key])
    write_file(tmp_path / FASHION_MNIST_FILES[key], full[:-3], gz)
    with pytest.raises(DataError) as e:
        load_fashion_mnist(tmp_path)
    message = str(e.value)
    assert str(paths[key]) in message and "truncated" in message
    assert f"should have {len(full)} " in message and f"it has {len(full) - 3}" in message


def test_fashion_mnist_cut_gzip_stream(tmp_path):
    paths = write_fashion(tmp_path, gz=True)
    data = paths["train_labels"].read_bytes()
    paths["train_labels"].write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: cannot be read as gzip"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_trailing_data(tmp_path):
    paths = write_fashion(tmp_path)
    paths["test_images"].write_bytes(paths["test_images"].read_bytes() + b"\0")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: has trailing data"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_wrong_magic(tmp_path):
    paths = write_fashion(tmp_path)
    # labels where images should be: a 1-D file has magic 0x00000801, not 0x00000803
    paths["train_images"].write_bytes(paths["train_labels"].read_bytes())
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte: IDX magic number should be 0x00000803.*got 0x00000801"
    ):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_empty_file(tmp_path):
    paths = write_fashion(tmp_path)
    paths["train_labels"].write_bytes(b"")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: .*got only 0 bytes"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_label_out_of_range(tmp_path):
    arrays = fashion_arrays()
    arrays["train_labels"][3] = 10
    write_fashion(tmp_path, arrays=arrays)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: labels must be in 0\.\.9; got 0\.\.10"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_count_mismatch(tmp_path):
    arrays = fashion_arrays()
    arrays["test_labels"] = arrays["test_labels"][:-1]
    write_fashion(tmp_path, arrays=arrays)
    with pytest.raises(DataError, match=r"has 6 images but .*t10k-labels-idx1-ubyte has 5 labels"):
        load_fashion_mnist(tmp_path)


# -- CIFAR-10 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar10_reads_pickled_batches(tmp_path, point_at):
    folder = write_cifar(tmp_path)
    ds = load_cifar10(tmp_path if point_at == "parent" else folder)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.classes == tuple(f"c{i}" for i in range(10))
    first = cifar_batch(3, seed=0)
    # a row is the red, then green, then blue 32×32 plane: channel-major, i.e. NCHW already
    np.testing.assert_allclose(ds.x_train[0, 1].ravel(), first[b"data"][0, 1024:2048] / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train[:3], first[b"labels"])
    np.testing.assert_array_equal(ds.y_test, cifar_batch(3, seed=5)[b"labels"])


def test_cifar10_without_meta_uses_standard_names(tmp_path):
    write_cifar(tmp_path, meta=False)
    assert load_cifar10(tmp_path).classes == CIFAR10_CLASSES


def test_cifar10_missing_files_are_named(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match=r"data_batch_3, test_batch not found in .*cifar-10-batches-py"):
        load_cifar10(tmp_path)


def test_cifar10_truncated_pickle(tmp_path):
    folder = write_cifar(tmp_path)
    data = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"data_batch_2: not a readable CIFAR-10 pickle"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.pop(b"labels"), r"expected a dict with b'data' and b'labels'"),
        (
            lambda b: b.update({b"data": b[b"data"][:, :3000]}),
            r"b'data' should be a uint8 N×3072 array; got uint8 \(3, 3000\)",
        ),
        (
            lambda b: b.update({b"data": b[b"data"].astype(np.int32)}),
            r"b.data. should be a uint8 N×3072 array; got int32",
        ),
        (lambda b: b.update({b"labels": b[b"labels"][:2]}), r"b'labels' should be 3 ints"),
        (lambda b: b.update({b"labels": [0, 1, 12]}), r"labels must be in 0\.\.9; got 0\.\.12"),
    ],
    ids=["no-labels", "short-rows", "int32", "few-labels", "label-range"],
)
def test_cifar10_malformed_batch(tmp_path, change, message):
    folder = write_cifar(tmp_path)
    batch = cifar_batch(3, seed=4)
    change(batch)
    (folder / "data_batch_5").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_5: " + message):
        load_cifar10(tmp_path)


def test_cifar10_not_a_dict_and_bad_meta(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match=r"test_batch: expected a dict .*got list"):
        load_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(3, 5), protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"]}, protocol=2))
    with pytest.raises(DataError, match=r"batches.meta: expected b'label_names' to be a list of 10"):
        load_cifar10(tmp_path)


class _OpensAFile:
    """Unpickling this would create a file: the kind of payload the unpickler must refuse."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_pickles_of_every_protocol_load_but_code_is_refused(tmp_path, protocol):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_1").write_bytes(pickle.dumps(cifar_batch(3, seed=0), protocol=protocol))
    assert load_cifar10(tmp_path).x_train.shape == (15, 3, 32, 32)
    victim = tmp_path / "pwned"
    batch = cifar_batch(3, seed=0) | {b"batch_label": _OpensAFile(victim)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=protocol))
    with pytest.raises(DataError, match=r"data_batch_1: .*refusing to load global .*open"):
        load_cifar10(tmp_path)
    assert not victim.exists()


# -- mnist5k -----------------------------------------------------------------------------------


def test_mnist5k_split():
    ds = load_mnist5k()
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1
    assert np.bincount(ds.y_train).tolist() == [400] * 10
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    np.testing.assert_array_equal(ds.y_train[:20], np.arange(20) % 10)  # interleaved by class
    assert ds.classes == tuple("0123456789")
    # 255 levels: pixels are k/255
    np.testing.assert_allclose(ds.x_test * 255, np.round(ds.x_test * 255), atol=1e-4)


def test_mnist5k_is_deterministic_and_train_test_disjoint():
    a, b = load_mnist5k(), load_mnist5k()
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    train = {row.tobytes() for row in a.x_train.reshape(4000, -1)}
    assert not any(row.tobytes() in train for row in a.x_test.reshape(1000, -1))


def test_mnist5k_resized_once_at_load():
    ds = load_mnist5k(input_size=32)
    assert ds.x_train.shape == (4000, 1, 32, 32) and ds.input_size == (32, 32)
    np.testing.assert_allclose(ds.x_test[:5], resize(load_mnist5k().x_test[:5], 32), atol=1e-6)


# -- resize ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, size, expected",
    [
        ((2, 1, 28, 28), 224, (2, 1, 224, 224)),
        ((2, 3, 32, 32), (20, 40), (2, 3, 20, 40)),
        ((1, 1, 8, 8, 8), 4, (1, 1, 4, 4, 4)),
        ((3, 2, 5, 5), 5, (3, 2, 5, 5)),
    ],
)
def test_resize_shapes(shape, size, expected):
    out = resize(np.zeros(shape, np.float32), size)
    assert out.shape == expected and out.dtype == np.float32


@pytest.mark.parametrize("size", [3, 7, 50])
def test_resize_keeps_a_constant_image_constant(size):
    out = resize(np.full((2, 3, 7, 11), 0.37, np.float32), size)
    np.testing.assert_allclose(out, 0.37, rtol=1e-6)


def test_resize_of_a_ramp():
    # enlarging 4 → 8: output pixel i samples input position (i + 0.5) / 2 - 0.5, clamped
    ramp = np.arange(4, dtype=np.float32)[None, None, None, :].repeat(4, axis=2)
    out = resize(ramp, (4, 8))
    np.testing.assert_allclose(out[0, 0, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3], atol=1e-6)
    np.testing.assert_allclose(out[0, 0], np.broadcast_to(out[0, 0, 0], (4, 8)))
    # shrinking 8 → 4 averages pairs with weights 1/8, 3/8, 3/8, 1/8 (edges renormalised)
    down = resize(np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8), (1, 4))
    np.testing.assert_allclose(down[0, 0, 0], [5 / 7, 2.5, 4.5, 44 / 7], atol=1e-5)


@pytest.mark.parametrize("size", [(50, 41), (12, 9), (28, 28 * 8)])
def test_resize_equals_pillow_bilinear(size):
    image = np.random.default_rng(1).random((2, 28, 23), dtype=np.float32)
    ours = resize(image[None], size)[0]
    pil = np.stack([np.asarray(Image.fromarray(c).resize(size[::-1], Image.BILINEAR)) for c in image])
    np.testing.assert_allclose(ours, pil, atol=1e-5)


@pytest.mark.parametrize(
    "images, size",
    [(np.zeros((2, 3), np.float32), 4), (np.zeros((1, 1, 4, 4), np.uint8), 8), (np.zeros((1, 1, 4, 4)), (2, 2, 2))],
)
def test_resize_rejects_bad_arguments(images, size):
    with pytest.raises(InputError):
        resize(images, size)


# -- synthetic ---------------------------------------------------------------------------------


def test_synthetic_is_deterministic_balanced_and_learnable():
    a, b = synthetic((3, 16, 16), seed=7), synthetic((3, 16, 16), seed=7)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, synthetic((3, 16, 16), seed=8).x_train)
    assert a.x_train.shape == (512, 3, 16, 16) and a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert 0 <= a.x_train.min() and a.x_train.max() <= 1
    assert np.bincount(a.y_train).tolist() == [52] * 2 + [51] * 8
    means = np.stack([a.x_train[a.y_train == c].mean(0) for c in range(10)])
    nearest = ((a.x_test[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4)).argmin(1)
    assert (nearest == a.y_test).mean() > 0.9


# -- by name -----------------------------------------------------------------------------------


def test_load_dataset_forms(tmp_path):
    write_fashion(tmp_path / "fm")
    write_cifar(tmp_path / "c10")
    assert load_dataset("mnist5k").name == "mnist5k"
    assert load_dataset(f"fashion-mnist:{tmp_path / 'fm'}", input_size=9).input_shape == (1, 9, 9)
    assert load_dataset(f"cifar10:{tmp_path / 'c10'}").input_shape == (3, 32, 32)
    assert load_dataset("synthetic").input_shape == (1, 28, 28)
    assert load_dataset("synthetic:3x32x32").input_shape == (3, 32, 32)
    assert load_dataset("synthetic:3x32x32", input_size=(20, 24)).input_shape == (3, 20, 24)
    assert load_dataset("synthetic:1x8x8x8").input_shape == (1, 8, 8, 8)


@pytest.mark.parametrize("arg", ["imagenet", "fashion-mnist", "cifar10:", "mnist5k:/data", "synthetic:3x32"])
def test_load_dataset_unknown_forms_list_the_known_ones(arg):
    with pytest.raises(UnknownNameError) as e:
        load_dataset(arg)
    assert arg in str(e.value)
    if not arg.startswith("synthetic"):
        assert all(form in str(e.value) for form in DATASET_FORMS)


# -- batches -----------------------------------------------------------------------------------


def _data(n=23):
    return np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), np.arange(n, dtype=np.int64)


def test_batches_cover_every_example_once():
    x, y = _data()
    for shuffle in (True, False):
        got = list(batches(x, y, 5, shuffle=shuffle, seed=3, epoch=1))
        assert [len(b) for b, _ in got] == [5, 5, 5, 5, 3]
        seen = np.concatenate([by for _, by in got])
        assert sorted(seen.tolist()) == list(range(23))
        assert all(np.array_equal(bx.ravel(), by) for bx, by in got)  # images stay with their labels
    kept = np.concatenate([by for _, by in batches(x, y, 5, drop_last=True)])
    assert len(kept) == 20 and len(set(kept.tolist())) == 20


def test_batches_are_reproducible_by_seed_and_epoch():
    x, y = _data()

    def order(**kw):
        return np.concatenate([by for _, by in batches(x, y, 4, **kw)]).tolist()

    assert order(seed=1, epoch=2) == order(seed=1, epoch=2)
    assert order(seed=1, epoch=2) != order(seed=1, epoch=3)
    assert order(seed=1, epoch=2) != order(seed=2, epoch=2)
    assert order(shuffle=False) == list(range(23))


def test_batches_reject_bad_arguments():
    x, y = _data()
    with pytest.raises(InputError, match="batch_size"):
        next(batches(x, y, 0))
    with pytest.raises(InputError, match="23 images but 22 labels"):
        next(batches(x, y[:-1], 4))


# -- the dataclass and the import boundary ----------------------------------------------------


def test_dataset_checks_its_arrays():
    x, y = np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(DataError, match="float32"):
        Dataset("d", x.astype(np.float64), y, x, y, 1, ("a",))
    with pytest.raises(DataError, match="labels must be in 0..0"):
        Dataset("d", x, y + 1, x, y, 1, ("a",))
    with pytest.raises(DataError, match="2 class names for 1 classes"):
        Dataset("d", x, y, x, y, 1, ("a", "b"))
    assert "train 4, test 4, images 1×2×2" in repr(Dataset("d", x, y, x, y, 1, ("a",)))


def test_import_pulls_in_no_framework_and_no_optional_library():
    from nin.frameworks import framework_modules

    heavy = (*framework_modules(), "mlxtend", "PIL", "matplotlib", "imageio", "tqdm")
    code = f"import sys, nin.loaders; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_load_dataset_volumes_at_the_model_size():
    ds = load_dataset("volumes", input_size=(8, 8, 8))
    assert ds.x_train.shape[1:] == (1, 8, 8, 8) and ds.num_classes == 10


def test_load_dataset_volumes_count():
    ds = load_dataset("volumes:30", input_size=(8, 8, 8))
    assert len(ds.y_train) == 30 and len(ds.y_test) == 400
    for bad in ("volumes:", "volumes:0", "volumes:many"):
        with pytest.raises(UnknownNameError, match="number of training volumes"):
            load_dataset(bad)
