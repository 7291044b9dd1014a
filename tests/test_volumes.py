"""The synthetic volumes: shapes, range, determinism, balance, and classes that differ."""

from __future__ import annotations

import numpy as np
import pytest

from nin.errors import DataError
from nin.volumes import CLASSES, load_volumes, make_volumes


@pytest.fixture(scope="module")
def small():
    return load_volumes(n_train=300, n_test=200, size=20, seed=0)


def test_shapes_dtypes_and_range():
    x, y = make_volumes(23, size=16, seed=3)
    assert x.shape == (23, 1, 16, 16, 16) and x.dtype == np.float32
    assert y.shape == (23,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) <= set(range(len(CLASSES)))
    assert (x.reshape(23, -1).max(axis=1) > 0.5).all(), "every volume holds a solid"


def test_non_cubic_size():
    x, _ = make_volumes(4, size=(8, 12, 16))
    assert x.shape == (4, 1, 8, 12, 16)


def test_deterministic_by_seed():
    a, ya = make_volumes(30, size=12, seed=7)
    b, yb = make_volumes(30, size=12, seed=7)
    c, _ = make_volumes(30, size=12, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)


def test_example_i_does_not_depend_on_n():
    """--sample N names the same volume however many are generated."""
    a, ya = make_volumes(7, size=12, seed=1, noise=0.1)
    b, yb = make_volumes(300, size=12, seed=1, noise=0.1)
    np.testing.assert_array_equal(a, b[:7])
    np.testing.assert_array_equal(ya, yb[:7])


@pytest.mark.parametrize("n", [100, 37])
def test_balanced(n):
    _, y = make_volumes(n, size=8)
    counts = np.bincount(y, minlength=len(CLASSES))
    assert counts.max() - counts.min() <= 1, f"class counts {counts.tolist()} for n={n}"


def test_solids_stay_inside_the_grid():
    x, _ = make_volumes(100, size=16)
    border = x[:, 0].copy()
    border[:, 1:-1, 1:-1, 1:-1] = 0
    assert border.max() == 0, f"a solid reaches the grid's faces (border occupancy {border.max():.2f})"


def test_noise_stays_in_range_and_changes_values():
    clean, _ = make_volumes(5, size=12, seed=2)
    noisy, _ = make_volumes(5, size=12, seed=2, noise=0.2)
    assert 0.0 <= noisy.min() and noisy.max() <= 1.0
    assert not np.array_equal(clean, noisy)


def test_dataset_attributes(small):
    assert small.name == "volumes"
    assert small.num_classes == len(small.classes) == 10
    assert small.x_train.shape == (300, 1, 20, 20, 20) and small.x_test.shape == (200, 1, 20, 20, 20)
    assert small.y_train.shape == (300,) and small.y_test.shape == (200,)
    assert not np.array_equal(small.x_train[:10], small.x_test[:10]), "train and test come from different streams"


def _shape_features(x: np.ndarray) -> np.ndarray:
    """Pose- and size-free features: normalised inertia eigenvalues, the radial mass profile
    around the centre of mass, and fill relative to the radius of gyration."""
    n, size = len(x), x.shape[-1]
    v = x.reshape(n, -1).astype(np.float64)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(np.float64)
    mass = v.sum(axis=1, keepdims=True)
    offset = grid[None] - (v @ grid / mass)[:, None]
    inertia = np.einsum("nv,nvi,nvj->nij", v, offset, offset) / mass[..., None]
    eig = np.sort(np.linalg.eigvalsh(inertia), axis=1)
    gyration = np.sqrt(eig.sum(axis=1, keepdims=True))
    r = np.sqrt((offset**2).sum(-1)) / gyration
    profile = np.stack([(v * ((r >= a) & (r < a + 0.4))).sum(1) for a in np.arange(0, 2.4, 0.4)], 1) / mass
    return np.column_stack([eig / eig.sum(axis=1, keepdims=True), profile, mass / gyration**3])


def test_classes_are_distinguishable(small):
    """A nearest-centroid classifier on a few pose-free features beats chance (10%) by far."""
    train, test = _shape_features(small.x_train), _shape_features(small.x_test)
    mu, sd = train.mean(0), train.std(0) + 1e-9
    train, test = (train - mu) / sd, (test - mu) / sd
    centroids = np.stack([train[small.y_train == k].mean(0) for k in range(small.num_classes)])
    predicted = np.argmin(((test[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (predicted == small.y_test).mean()
    assert accuracy > 0.6, f"nearest-centroid accuracy {accuracy:.2f}, expected well above chance (0.10)"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": -1}, "n must be"),
        ({"n": 2, "size": 3}, "size must be"),
        ({"n": 2, "size": (8, 8)}, "size must be"),
        ({"n": 2, "noise": -0.1}, "noise must be"),
        ({"n": 2, "split": "val"}, "split must be"),
    ],
)
def test_bad_arguments_are_clear(kwargs, match):
    with pytest.raises(DataError, match=match):
        make_volumes(**kwargs)


def test_load_volumes_scales_by_the_occupancy_std():
    """``load_volumes`` divides the occupancy by ``OCCUPANCY_STD`` (the inputs' scale the
    training recipe needs, see ``nin.volumes``), which is what the stream's occupancy has."""
    from nin.volumes import OCCUPANCY_STD

    scaled, raw = load_volumes(40, 10, size=12), load_volumes(40, 10, size=12, scaled=False)
    np.testing.assert_allclose(scaled.x_train, raw.x_train / OCCUPANCY_STD, rtol=1e-6)
    np.testing.assert_allclose(scaled.x_test, raw.x_test / OCCUPANCY_STD, rtol=1e-6)
    assert raw.x_train.min() == 0 and raw.x_train.max() <= 1
    x, _ = make_volumes(300, size=32)
    assert abs(x.std() / OCCUPANCY_STD - 1) < 0.05, f"occupancy std {x.std():.4f}, OCCUPANCY_STD {OCCUPANCY_STD}"
