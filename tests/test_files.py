"""``nin.files``: a failed write leaves the old file as it was and no temp file; a killed one
leaves nothing at its destination and nothing that is reused; what is written gets the
permissions a plain write would give."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_or_skip

import nin
from nin import reference, train
from nin.cli import main
from nin.conformance import FORWARD_RTOL, max_rel_error, random_weights, sample_batch
from nin.export import run_exported
from nin.files import atomic_write, place, staging_beside


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


# -- permissions: what a plain write would give ------------------------------------------------


def _writers(tmp_path) -> dict:
    """Every way the suite writes a file atomically, each writing at the path it is given."""
    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec)
    state = {"weights": weights, "momentum": weights}

    def staged_folder(path):
        with staging_beside(path) as staged:
            staged.mkdir()
            (staged / "inside").write_bytes(b"x")
            place(staged, path)

    return {
        "atomic_write": lambda path: atomic_write(path, lambda f: f.write(b"bytes")),
        "save_weights .npz": lambda path: nin.save_weights(weights, path.with_suffix(".npz")),
        "save_weights .safetensors": lambda path: nin.save_weights(weights, path.with_suffix(".safetensors")),
        "save_checkpoint": lambda path: train.save_checkpoint(path, state, {"epoch": 1, "history": []}),
        "nin export's staged folder": staged_folder,
    }


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002], ids=oct)
@pytest.mark.parametrize("writer", list(_writers(Path())))
def test_atomic_files_keep_the_permissions_of_a_plain_write(writer, umask, tmp_path):
    """Under the chosen umask, a new file gets the mode ``open(path, "w")`` (or ``mkdir``)
    gives there — 0o644 under the usual umask, not the temporary file's 0o600 — and a file
    written over keeps its own mode, as a plain write leaves it."""
    write = _writers(tmp_path)[writer]
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain"
        plain.mkdir() if writer.endswith("folder") else plain.write_bytes(b"plain")
        path = tmp_path / "new"
        written = write(path) or path
        assert oct(stat.S_IMODE(written.stat().st_mode)) == oct(stat.S_IMODE(plain.stat().st_mode))
        if not writer.endswith("folder"):
            written.chmod(0o604)
            write(path)
            assert oct(stat.S_IMODE(written.stat().st_mode)) == oct(0o604), "writing over a file changed its mode"
    finally:
        os.umask(old)


# -- nin export killed mid-write --------------------------------------------------------------

# The child: ``nin export`` whose writer, half-way through, says so on stdout and waits to be
# killed: for onnx the bytes going through atomic_write, for torchscript the backend's file in
# its staging folder.  The kill point is exact however loaded the machine is.
_KILLABLE_EXPORT = """
import sys, time
from pathlib import Path
from nin import cli, files

def half_written(f):
    f.write(b"half a model")
    f.flush()
    print("writing", flush=True)
    time.sleep(600)

if sys.argv[1] == "onnx":
    real = files.atomic_write
    files.atomic_write = lambda path, write: real(path, half_written)
else:
    from nin.frameworks.torch import export

    def export_model(model, path, fmt):
        with open(path, "wb") as f:
            half_written(f)

    export.export_model = export_model
sys.exit(cli.main(["export", "nin_tiny", "--format", sys.argv[1], "--weights", sys.argv[2], "--out", sys.argv[3]]))
"""


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_killed_mid_write_leaves_nothing_at_out(fmt, tmp_path):
    """A ``kill -9`` of ``nin export`` half-way through writing: nothing at OUT; the temporary
    file or folder it leaves is not reused — the next export writes a whole model (reloaded and
    run against the oracle) and leaves the stale one as it was."""
    if fmt == "torchscript":
        backend_or_skip("torch")
    spec = nin.get_spec("nin_tiny")
    weights = random_weights(spec, 3)
    source = nin.save_weights(weights, tmp_path / "w.safetensors")
    out = tmp_path / f"model.{fmt}"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_EXPORT, fmt, str(source), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    said = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate()
    assert said == "writing", f"the child did not stop half-way: {err[-2000:]}"
    assert not out.exists(), "a killed export left a file at OUT"
    stale = {p: sorted(q.name for q in p.rglob("*")) for p in tmp_path.glob(f"{out.name}.*.tmp")}
    assert stale, "killed mid-write, yet no temporary file or folder was left"

    assert main(["export", "nin_tiny", "--format", fmt, "--weights", str(source), "--out", str(out)]) == 0
    x = sample_batch(spec, 2)
    err = max_rel_error(run_exported(out, fmt, x), reference.forward(spec, weights, x)[0])
    assert err <= FORWARD_RTOL, f"{fmt} after a killed export: max|Δ| = {err:.1e}·max|oracle|"
    assert {p: sorted(q.name for q in p.rglob("*")) for p in stale} == stale, "the stale temporary was touched"
