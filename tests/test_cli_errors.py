"""Bad input to the ``nin`` command, one table: every class of mistake on every command exits 2
with one line, ``nin CMD: error: ...``, that names what was wrong (and the known names, where
a name was wrong) — never a traceback.

Run in-process (``nin.cli.main``): every error here is raised before a framework is imported.
"""

from __future__ import annotations

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
