"""Bad input to the ``nin`` command, one table: every class of mistake on every command exits 2
with one line, ``nin CMD: error: ...``, that names what was wrong (and the known names, where
a name was wrong) — never a traceback.  The classes: unknown names; damaged, non-finite and
other models' weights on every command that takes weights; output paths that cannot be written
on every command that writes (checked before any work); damaged checkpoints on ``--resume``.

Run in-process (``nin.cli.main``): every error here is raised before a framework is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import nin
from nin import train
from nin.cli import main

MODELS = "known models: nin_d2l, nin_d2l_1x1"
BACKENDS = "known backends: torch, tensorflow, jax, mxnet"
CHOICES = "invalid choice: 'bogus' (choose from"


def _weights_file(tmp_path, kind: str) -> str:
    """A weights file for nin_tiny that is broken in the way ``kind`` says."""
    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec)
    if kind == "nan":
        weights["block1.conv0.weight"][0, 0, 0, 0] = np.nan
        return str(nin.save_weights(weights, tmp_path / "nan.npz"))
    suffix = ".npz" if kind == "truncated_npz" else ".safetensors"
    path = nin.save_weights(weights, tmp_path / f"whole{suffix}")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return str(cut)


def _visualize(tmp_path, kind: str) -> list[str]:
    return [
        "visualize",
        "--model",
        "nin_tiny",
        "--weights",
        _weights_file(tmp_path, kind),
        "--out",
        str(tmp_path / "v"),
    ]


def _mnist_weights(tmp_path) -> str:
    """nin_mnist's weights: another zoo model's, for commands run on nin_tiny."""
    return str(nin.save_weights(nin.init_weights(nin.get_spec("nin_mnist")), tmp_path / "mnist.safetensors"))


def _mnist_checkpoint(tmp_path) -> None:
    """A checkpoint of a nin_mnist run (on synthetic data at 28×28) in ``tmp_path``."""
    recipe = train.Recipe()
    trainer = train.NumpyTrainer(nin.get_spec("nin_mnist"), recipe)
    meta = train.loop._run_meta(trainer, recipe, "synthetic")
    train.save_checkpoint(tmp_path / train.CHECKPOINT, trainer.export_state(), {**meta, "epoch": 1, "history": []})


def _unwritable(tmp_path):
    """A folder in which no file can be created: read-only for its owner, or — where the
    tests run as root, whom permissions do not stop — /proc, where creating a file fails."""
    folder = tmp_path / "read_only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    return folder if not os.access(folder, os.W_OK) else Path("/proc")


def _a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def _image(tmp_path, values: np.ndarray) -> list[str]:
    """``nin visualize --input`` of a TIFF holding ``values`` (int32: mode I, float32: mode F)."""
    from PIL import Image

    path = tmp_path / "image.tif"
    Image.fromarray(values).save(path)
    return ["visualize", "--model", "nin_tiny", "--input", str(path), "--out", str(tmp_path / "v")]


OTHER_MODEL = "these are weights of nin_mnist (18 tensors), not of nin_tiny (18 tensors): block0.conv0.weight is"
UNWRITABLE = "choose a folder you can write to"
MISSING = "missing/out.json: its folder"


# (case id) -> (argv builder, the text the one line must hold)
CASES = {
    "summary-model": (lambda _: ["summary", "bogus"], MODELS),
    "summary-backend": (lambda _: ["summary", "nin_tiny", "--backend", "bogus"], CHOICES),
    "compare-model": (lambda _: ["compare", "bogus"], MODELS),
    "compare-backend": (lambda _: ["compare", "nin_tiny", "--backends", "torch", "bogus"], BACKENDS),
    "conformance-model": (lambda _: ["conformance", "--models", "nin_tiny", "bogus"], MODELS),
    "conformance-backend": (lambda _: ["conformance", "--backends", "bogus"], BACKENDS),
    "bench-model": (lambda _: ["bench", "--models", "bogus"], MODELS),
    "bench-backend": (lambda _: ["bench", "--backends", "bogus"], BACKENDS),
    "train-model": (lambda t: ["train", "--backend", "numpy", "--model", "bogus", "--out", str(t)], MODELS),
    "train-backend": (lambda t: ["train", "--backend", "bogus", "--out", str(t)], "known backends: numpy, torch"),
    "visualize-model": (lambda t: ["visualize", "--model", "bogus", "--out", str(t)], MODELS),
    "visualize-backend": (
        lambda t: ["visualize", "--model", "nin_tiny", "--backend", "bogus", "--out", str(t)],
        CHOICES,
    ),
    "weights-truncated-npz": (lambda t: _visualize(t, "truncated_npz"), "cut.npz is not a readable .npz weights file"),
    "weights-truncated-safetensors": (
        lambda t: _visualize(t, "truncated_safetensors"),
        "cut.safetensors is not a readable .safetensors weights file",
    ),
    "weights-nan": (lambda t: _visualize(t, "nan"), "block1.conv0.weight has 1 NaN and 0 inf value(s)"),
    "export-weights-of-another-model": (
        lambda t: [
            "export",
            "nin_tiny",
            "--weights",
            _mnist_weights(t),
            "--format",
            "onnx",
            "--out",
            str(t / "m.onnx"),
        ],
        OTHER_MODEL,
    ),
    "visualize-weights-of-another-model": (
        lambda t: ["visualize", "--model", "nin_tiny", "--weights", _mnist_weights(t), "--out", str(t / "v")],
        OTHER_MODEL,
    ),
    "resume-checkpoint-of-another-model": (
        lambda t: [*_train_argv(t), "--model", "nin_tiny"] if _mnist_checkpoint(t) is None else [],
        "is from a different run (model 'nin_mnist' there, 'nin_tiny' now",
    ),
    "visualize-image-of-32-bit-integers": (
        lambda t: _image(t, np.arange(256, dtype=np.int32).reshape(16, 16) * 1000),
        "an I-mode image of integers from 0 to 255000: nin visualize reads 16-bit integers (0..65535)",
    ),
    "visualize-image-of-floats-beyond-1": (
        lambda t: _image(t, np.linspace(-1, 2, 256, dtype=np.float32).reshape(16, 16)),
        "an F-mode image of floats from -1.0 to 2.0: nin visualize reads 16-bit integers (0..65535) and floats in",
    ),
    "bench-agree-missing": (
        lambda t: ["bench", "--agree", str(t / "a.json"), str(t / "b.json")],
        "a.json does not exist; give the --json file of a finished `nin bench` run",
    ),
    "bench-agree-not-json": (
        lambda t: ["bench", "--agree", _write(t / "a.json", "{half"), _write(t / "b.json", "{}")],
        "a.json is not a JSON file",
    ),
    "bench-agree-not-bench": (
        lambda t: ["bench", "--agree", _write(t / "a.json", '{"rows": []}'), _write(t / "b.json", "{}")],
        "a.json is JSON but not a `nin bench --json` result",
    ),
}


# Every command that writes, given a path it cannot write: refused while the command line is
# parsed, before any work (``test_output_paths_are_checked_before_the_work``).
OUTPUT_CASES = {
    "train-out-unwritable": (
        lambda t: ["train", "--backend", "numpy", "--out", str(_unwritable(t) / "run")],
        UNWRITABLE,
    ),
    "train-out-under-a-file": (
        lambda t: ["train", "--backend", "numpy", "--out", str(_a_file(t) / "run")],
        "a_file is a file, not a folder",
    ),
    "visualize-out-unwritable": (
        lambda t: ["visualize", "--model", "nin_tiny", "--out", str(_unwritable(t) / "v")],
        UNWRITABLE,
    ),
    "export-out-missing-folder": (
        lambda t: ["export", "nin_tiny", "--format", "onnx", "--out", str(t / "missing" / "m.onnx")],
        "missing/m.onnx: its folder",
    ),
    "export-out-unwritable": (
        lambda t: ["export", "nin_tiny", "--format", "onnx", "--out", str(_unwritable(t) / "m.onnx")],
        UNWRITABLE,
    ),
    "export-out-existing-folder": (
        lambda t: ["export", "nin_tiny", "--format", "onnx", "--out", str(t)],
        "it is an existing folder",
    ),
    "compare-json-missing-folder": (
        lambda t: ["compare", "nin_tiny", "--json", str(t / "missing" / "out.json")],
        MISSING,
    ),
    "compare-json-unwritable": (
        lambda t: ["compare", "nin_tiny", "--json", str(_unwritable(t) / "c.json")],
        UNWRITABLE,
    ),
    "conformance-json-missing-folder": (lambda t: ["conformance", "--json", str(t / "missing" / "out.json")], MISSING),
    "conformance-markdown-unwritable": (
        lambda t: ["conformance", "--markdown", str(_unwritable(t) / "c.md")],
        UNWRITABLE,
    ),
    "bench-json-missing-folder": (lambda t: ["bench", "--json", str(t / "missing" / "out.json")], MISSING),
    "bench-plot-unwritable": (lambda t: ["bench", "--plot", str(_unwritable(t) / "b.png")], UNWRITABLE),
}
CASES |= OUTPUT_CASES


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside main
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2(case, tmp_path, capsys):
    build, message = CASES[case]
    argv = build(tmp_path)
    code, err = _run(argv, capsys)
    assert code == 2, f"nin {' '.join(argv)} exited {code}: {err}"
    assert err.startswith(f"nin {argv[0]}: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_output_paths_are_checked_before_the_work(case, tmp_path, capsys, monkeypatch):
    """The work of every command that writes is replaced by a failure: the one-line refusal
    comes first, and nothing is written."""

    def work(*args, **kwargs):
        raise AssertionError(f"{case}: the work started before the output path was checked")

    from nin import bench, compare, conformance, export, visualize

    for module, name in [(compare, "compare"), (conformance, "run_matrix"), (bench.rounds, "run_bench"), (train.loop, "fit"),
                         (export, "export"), (visualize, "capture")]:  # fmt: skip
        monkeypatch.setattr(module, name, work)
    build, message = OUTPUT_CASES[case]
    argv = build(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, err = _run(argv, capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert sorted(tmp_path.rglob("*")) == before, "a refused command wrote files"


def _train_argv(out) -> list[str]:
    return ["train", "--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic", "--input-size", "8", "8"] + [
        "--out",
        str(out),
        "--resume",
        "--no-progress",
    ]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "nan_weights", "no_meta"])
def test_resume_from_a_damaged_checkpoint_never_overwrites_it(damage, tmp_path, capsys):
    path = tmp_path / train.CHECKPOINT
    spec = nin.get_spec("nin_tiny", in_channels=1, input_size=8)
    weights = nin.init_weights(spec)
    state = {"weights": weights, "momentum": {k: np.zeros_like(v) for k, v in weights.items()}}
    train.save_checkpoint(path, state, {"epoch": 1, "history": []})
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 4096)
    elif damage == "nan_weights":
        state["momentum"]["block0.conv0.bias"][0] = np.inf
        train.save_checkpoint(path, state, {"epoch": 1, "history": []})
    else:
        np.savez(path, **weights)
    before = path.read_bytes()
    code, err = _run(_train_argv(tmp_path), capsys)
    assert code == 2 and err.startswith("nin train: error: ") and str(path) in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if damage == "nan_weights":
        assert "momentum.block0.conv0.bias" in err, err
    assert path.read_bytes() == before, "the damaged checkpoint was overwritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == [train.CHECKPOINT], "a failed resume wrote files"
