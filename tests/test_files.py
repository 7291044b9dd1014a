"""``nin.files.atomic_write``: a failed write leaves the old file as it was and no temp file."""

from __future__ import annotations

import numpy as np
import pytest

import nin
from nin.files import atomic_write


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, lambda f: f.write(b"old"))
    assert atomic_write(path, lambda f: f.write(b"new")) == path
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def dies_half_way(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, dies_half_way)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_failed_save_weights_keeps_old_weights(tmp_path, monkeypatch):
    spec = nin.get_spec("nin_tiny")
    old = nin.init_weights(spec, 0)
    path = nin.save_weights(old, tmp_path / "w.npz")

    def dies_half_way(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        nin.save_weights(nin.init_weights(spec, 1), path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    for name, value in nin.load_weights(path, spec).items():
        np.testing.assert_array_equal(value, old[name])
