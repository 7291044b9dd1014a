"""A synthetic volumetric dataset: ten voxelised solids at random poses, for the 3-D NiN.

Each example is one solid — sphere, cube, cylinder, torus, cone, pyramid, hollow sphere,
capsule, ellipsoid or a three-armed cross — at a random size, position and rotation (uniform
over all rotations), voxelised into a ``size³`` grid as soft occupancy in [0, 1] (a voxel on
the surface gets the fraction of it that lies inside), with optional Gaussian noise.
In the spirit of the ModelNet voxel grids used by VoxNet (Maturana & Scherer 2015), but
generated in NumPy in a second, so tests and demos need no download.

    x, y = make_volumes(1000, size=32, seed=0)      # (1000, 1, 32, 32, 32) float32, int64
    ds = load_volumes(n_train=2000, n_test=400)     # a nin.datasets.Dataset named "volumes"

Every shape is a signed distance function of a point in the solid's own frame (its
bounding radius is about 1); a voxel at world distance ``d`` from the surface (negative
inside) gets occupancy ``clip(0.5 - d / voxel, 0, 1)``.  Example ``i`` depends only on
``seed``, the split and ``i`` — not on ``n`` — so ``make_volumes(5)`` is the first five of
``make_volumes(500)``, and ``--sample N`` names the same volume whatever the set's size.
Labels come in rounds of one of each class in a random order, so classes are balanced (their
counts differ by at most one).
"""

from __future__ import annotations

import numpy as np

from .datasets import Dataset
from .errors import DataError

CLASSES = (
    "sphere",
    "cube",
    "cylinder",
    "torus",
    "cone",
    "pyramid",
    "hollow sphere",
    "capsule",
    "ellipsoid",
    "cross",
)

# the distance from a solid's origin to its farthest point, in its own frame: keeps it in the grid
_BOUNDING_RADIUS = np.array([1.0, 1.30, 1.13, 1.0, 1.35, 1.62, 1.0, 1.0, 1.0, 1.03], np.float32)
_SCALE = (0.3, 0.55)  # the solid's scale, as a fraction of the room it may use (``_voxelise``)
_SPLITS = {"train": 0, "test": 1}
_CHUNK = 128  # examples voxelised at once (bounds the temporary arrays to ~50 MB at 32³)


def make_volumes(
    n: int,
    size: int | tuple[int, int, int] = 32,
    seed: int = 0,
    noise: float = 0.0,
    split: str = "train",
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` volumes ``(n, 1, D, H, W)`` float32 in [0, 1] and their labels ``(n,)`` int64.

    ``size`` is an int (a cube) or ``(D, H, W)``; each axis spans the same extent, so a
    non-cubic grid stretches the solids.  ``noise`` is the standard deviation of Gaussian noise
    added before clipping to [0, 1].  ``split`` ("train" or "test") picks an independent
    stream of examples for the same seed."""
    dims = _dims(size)
    if not isinstance(n, int | np.integer) or n < 0:
        raise DataError(f"make_volumes: n must be an int ≥ 0; got {n!r}")
    if split not in _SPLITS:
        raise DataError(f"make_volumes: split must be one of {', '.join(_SPLITS)}; got {split!r}")
    if not noise >= 0:
        raise DataError(f"make_volumes: noise must be ≥ 0; got {noise!r}")
    stream = (seed, _SPLITS[split])
    labels = _labels(n, np.random.default_rng((*stream, 0)))
    # one row of uniforms per example (scale, centre ×3, rotation ×3): row i never depends on n
    draws = np.random.default_rng((*stream, 1)).random((n, 7))
    noise_rng = np.random.default_rng((*stream, 2))

    points = _grid(dims)
    voxel = 2.0 / max(dims)
    x = np.empty((n, 1, *dims), np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        for label in np.unique(labels[start:stop]):
            idx = start + np.flatnonzero(labels[start:stop] == label)
            x[idx, 0] = _voxelise(label, draws[idx], points, voxel).reshape(len(idx), *dims)
        if noise > 0:
            chunk = x[start:stop]
            chunk += noise * noise_rng.standard_normal(chunk.shape, dtype=np.float32)
            np.clip(chunk, 0.0, 1.0, out=chunk)
    return x, labels


# The standard deviation of the occupancy over the first 2,000 training volumes at 32³ (seed 0;
# their mean is 0.0171: a solid fills under 2 % of its grid).  ``load_volumes`` divides by it,
# as an image pipeline divides MNIST pixels by their 0.3081: the network then sees inputs of
# unit scale.  Undivided, ``nin3d`` sat longer at chance and ended lower (the runs:
# docs/training.md, "The volumetric NiN").
OCCUPANCY_STD = 0.1216


def load_volumes(
    n_train: int = 2000,
    n_test: int = 400,
    size: int | tuple[int, int, int] = 32,
    seed: int = 0,
    noise: float = 0.0,
    scaled: bool = True,
) -> Dataset:
    """A ``nin.datasets.Dataset`` named "volumes": train and test from independent streams of
    ``make_volumes``, NCDHW float32, int64 labels, ``classes`` = ``CLASSES``.  With ``scaled``
    the occupancy is divided by ``OCCUPANCY_STD`` (values in [0, 1 / 0.1216], empty space
    still 0), otherwise it is the occupancy in [0, 1]."""
    x_train, y_train = make_volumes(n_train, size, seed, noise, split="train")
    x_test, y_test = make_volumes(n_test, size, seed, noise, split="test")
    if scaled:
        x_train /= OCCUPANCY_STD
        x_test /= OCCUPANCY_STD
    return Dataset("volumes", x_train, y_train, x_test, y_test, len(CLASSES), CLASSES)


def _dims(size) -> tuple[int, int, int]:
    dims = (size,) * 3 if isinstance(size, int | np.integer) else tuple(size)
    if len(dims) != 3 or any(not isinstance(d, int | np.integer) or d < 4 for d in dims):
        raise DataError(f"volumes: size must be an int ≥ 4 or three of them (D, H, W); got {size!r}")
    return tuple(int(d) for d in dims)


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rounds of one of each class, each round in a random order: balanced, prefix-stable."""
    k = len(CLASSES)
    rounds = -(-n // k)
    return rng.random((rounds, k)).argsort(axis=1).ravel()[:n].astype(np.int64)


def _grid(dims: tuple[int, int, int]) -> np.ndarray:
    """Voxel centres ``(D·H·W, 3)`` in [-1, 1] along each axis."""
    axes = [(np.arange(d, dtype=np.float32) + 0.5) / d * 2 - 1 for d in dims]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _rotations(u: np.ndarray) -> np.ndarray:
    """Uniformly random rotation matrices ``(m, 3, 3)`` from three uniforms each (Shoemake's
    random unit quaternion)."""
    a, b, c = u[:, 0], 2 * np.pi * u[:, 1], 2 * np.pi * u[:, 2]
    w, x = np.sqrt(1 - a) * np.sin(b), np.sqrt(1 - a) * np.cos(b)
    y, z = np.sqrt(a) * np.sin(c), np.sqrt(a) * np.cos(c)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    ).astype(np.float32)


def _voxelise(label: int, u: np.ndarray, points: np.ndarray, voxel: float) -> np.ndarray:
    """Soft occupancy ``(m, V)`` of ``m`` solids of one class at the poses drawn in ``u``."""
    # a surface within the half-width less a voxel leaves the outermost voxels empty; half a
    # voxel more absorbs the distances that are bounds rather than exact (corners, ellipsoid)
    room = 1.0 - 1.5 * voxel
    lo, hi = _SCALE
    scale = (room * (lo + (hi - lo) * u[:, 0])).astype(np.float32)
    reach = np.maximum(room - scale * _BOUNDING_RADIUS[label], 0.0)
    centre = ((2 * u[:, 1:4] - 1) * reach[:, None]).astype(np.float32)
    rotation = _rotations(u[:, 4:7]) / scale[:, None, None]
    offset = [points[None, :, i] - centre[:, i, None] for i in range(3)]
    # each point in each solid's own frame, where the solid has radius about 1: offset @ rotation
    local = [sum(offset[i] * rotation[:, i, j, None] for i in range(3)) for j in range(3)]
    distance = _SDF[label](*local) * scale[:, None]
    return np.clip(0.5 - distance / voxel, 0.0, 1.0, out=distance)


# -- signed distances in the solid's own frame (exact or a close bound; only the zero set and
#    the slope near it matter for the soft edge) ---------------------------------------------


def _length(*parts):
    return np.sqrt(sum(p * p for p in parts))


def _intersect(*distances):
    """The intersection of solids given by their (perpendicular) distances: exact outside
    along edges and corners, where a plain ``max`` would underestimate the distance."""
    outside = _length(*(np.maximum(d, 0) for d in distances))
    return outside + np.minimum(np.maximum.reduce(distances), 0)


def _box(x, y, z, hx, hy, hz):
    return _intersect(np.abs(x) - hx, np.abs(y) - hy, np.abs(z) - hz)


def _sphere(x, y, z):
    return _length(x, y, z) - 1.0


def _cube(x, y, z):
    return _box(x, y, z, 0.75, 0.75, 0.75)


def _cylinder(x, y, z):
    return _intersect(_length(x, y) - 0.75, np.abs(z) - 0.85)


def _torus(x, y, z):
    return _length(_length(x, y) - 0.7, z) - 0.3


_TAPER = 0.45  # cone and pyramid: the half-width shrinks from 0.9 at z = -1 to 0 at z = 1


def _slanted(across, z):
    """Distance to a face (or the mantle) that leans in by ``_TAPER`` per unit of height."""
    return (across - _TAPER * (1 - z)) / np.sqrt(1 + _TAPER * _TAPER)


def _cone(x, y, z):
    return _intersect(_slanted(_length(x, y), z), np.abs(z) - 1.0)


def _pyramid(x, y, z):
    return _intersect(_slanted(x, z), _slanted(-x, z), _slanted(y, z), _slanted(-y, z), -z - 1.0)


def _hollow_sphere(x, y, z):
    return np.abs(_length(x, y, z) - 0.8) - 0.2


def _capsule(x, y, z):
    return _length(x, y, z - np.clip(z, -0.6, 0.6)) - 0.4


def _ellipsoid(x, y, z, radii=(1.0, 0.65, 0.4)):
    a, b, c = radii
    k0 = _length(x / a, y / b, z / c)
    k1 = np.maximum(_length(x / a**2, y / b**2, z / c**2), 1e-6)
    return k0 * (k0 - 1.0) / k1


def _cross(x, y, z, arm=1.0, half=0.22):
    return np.minimum(
        np.minimum(_box(x, y, z, arm, half, half), _box(x, y, z, half, arm, half)), _box(x, y, z, half, half, arm)
    )


_SDF = (_sphere, _cube, _cylinder, _torus, _cone, _pyramid, _hollow_sphere, _capsule, _ellipsoid, _cross)
