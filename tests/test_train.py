"""The framework-free training machinery: recipe and schedule, the SGD oracle checked by hand,
the NumPy trainer, checkpoints that survive interruption, resume that is bit-exact, and the
``nin train`` command.  Only nin_tiny, synthetic data and the NumPy trainer: no framework."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import nin
from nin import reference, train
from nin.cli import main
from nin.loaders import synthetic
from nin.spec import Conv, GlobalAvgPool, NiNBlock, NiNSpec
from nin.train import NumpyTrainer, Recipe, fit, lr_at, sgd_reference

# the last two describe the job: one process here, several in tests/test_distributed.py
METRIC_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "lr", "examples_per_s",
               "world_size", "rows_per_rank"}  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    """nin_tiny at 8×8 on three learnable synthetic classes: a whole epoch takes ~0.1 s."""
    spec = nin.get_spec("nin_tiny", in_channels=1, num_classes=3, input_size=8)
    return spec, synthetic((1, 8, 8), n_train=48, n_test=24, num_classes=3)


def _recipe(**changes) -> Recipe:
    return Recipe(batch_size=16, epochs=3, lr=0.05, warmup_epochs=0.5, seed=3, dropout=True).replace(**changes)


# -- recipe and schedule -----------------------------------------------------------------------


def test_schedule_values():
    r = Recipe(lr=0.1, epochs=10, warmup_epochs=2, schedule="cosine")
    spe = 5
    assert [lr_at(r, 0, s, spe) for s in range(3)] == pytest.approx([0.01, 0.02, 0.03])
    assert lr_at(r, 1, 4, spe) == pytest.approx(0.1)  # warmup ends on its last step
    assert lr_at(r, 2, 0, spe) == pytest.approx(0.1)  # cosine starts at the peak
    assert lr_at(r, 6, 0, spe) == pytest.approx(0.05)  # half way through the 40 cosine steps
    assert 0 < lr_at(r, 9, 4, spe) < 1e-3  # the last step is small but not zero

    step = Recipe(lr=0.1, epochs=8, warmup_epochs=0, schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    assert [lr_at(step, e, 0, 3) for e in range(8)] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    const = Recipe(lr=0.2, epochs=3, warmup_epochs=0.5, schedule="constant")
    assert [lr_at(const, e, s, 4) for e in range(2) for s in range(4)] == pytest.approx([0.1, 0.2] + [0.2] * 6)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"lr": -1.0}, train.RecipeError, "lr must be > 0; got -1.0"),
        ({"momentum": 1.0}, train.RecipeError, r"momentum must be in \[0, 1\)"),
        ({"batch_size": 0, "weight_decay": -1}, train.RecipeError, "weight_decay .* batch_size"),
        ({"warmup_epochs": 11}, train.RecipeError, r"warmup_epochs must be in \[0, epochs=10\]"),
        ({"milestones": (0.8, 0.2)}, train.RecipeError, "milestones must be increasing"),
        ({"schedule": "linear"}, nin.UnknownNameError, "known: cosine, step, constant"),
        ({"init": "orthogonal"}, nin.UnknownNameError, "known: xavier, gaussian, kaiming"),
    ],
)
def test_recipe_rejects_bad_values(changes, error, match):
    with pytest.raises(error, match=match):
        Recipe(**changes)


def test_recipe_json_roundtrip():
    r = Recipe(milestones=(0.3, 0.6), dropout=True)
    assert Recipe.from_json(json.loads(json.dumps(r.to_json()))) == r


def test_spec_for_turns_dropout_off_without_changing_weights():
    spec = nin.get_spec("nin_tiny")
    assert train.spec_for(Recipe(dropout=True), spec) is spec
    off = train.spec_for(Recipe(dropout=False), spec)
    assert [layer.rate for layer in off.layers if isinstance(layer, nin.Dropout)] == [0.0]
    assert nin.weight_shapes(off) == nin.weight_shapes(spec)


# -- the SGD oracle, by hand -----------------------------------------------------------------------


def _one_conv_spec() -> NiNSpec:
    """logits = relu(w·x + b) for a single input pixel x and two classes."""
    block = NiNBlock((Conv(2, (1, 1), (1, 1), (0, 0)),))
    return NiNSpec("one_conv", 1, (1, 1), 2, (block, GlobalAvgPool()))


def _hand_case():
    weights = {
        "block0.conv0.weight": np.array([1.0, 0.5], np.float32).reshape(2, 1, 1, 1),
        "block0.conv0.bias": np.array([0.0, 0.25], np.float32),
    }
    x, y = np.full((1, 1, 1, 1), 2.0, np.float32), np.array([0])
    # logits (2, 1.25); softmax p; d loss / d logits = p - onehot; both ReLUs are active
    p1 = 1.0 / (1.0 + math.exp(2.0 - 1.25))
    dz = np.array([-p1, p1])
    grads = {"block0.conv0.weight": (dz * 2.0).reshape(2, 1, 1, 1), "block0.conv0.bias": dz}
    loss = -math.log(1.0 - p1)
    return weights, x, y, grads, loss


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.0), (0.0, 0.1), (0.9, 0.1)])
def test_sgd_reference_by_hand(momentum, weight_decay):
    weights, x, y, grads, loss = _hand_case()
    buffers = {name: np.full_like(w, 0.5) for name, w in weights.items()}
    recipe = Recipe(momentum=momentum, weight_decay=weight_decay)
    new_w, new_b, got_loss = sgd_reference(_one_conv_spec(), weights, buffers, x, y, 0.1, recipe)
    assert got_loss == pytest.approx(loss, rel=1e-12)
    for name, w in weights.items():
        w = w.astype(np.float64)
        b = momentum * 0.5 + grads[name] + weight_decay * w  # b ← μ·b + (g + λ·w)
        np.testing.assert_allclose(new_b[name], b, rtol=1e-6, err_msg=f"buffer {name}")
        np.testing.assert_allclose(new_w[name], w - 0.1 * b, rtol=1e-6, err_msg=f"weight {name}")
        assert new_w[name].dtype == new_b[name].dtype == np.float32


def test_numpy_trainer_steps_follow_the_sgd_rule(tiny):
    """Two steps (the second with momentum in play) against the update written out here from
    the oracle's gradients — not through ``sgd_reference``, which the trainer itself calls."""
    spec, data = tiny
    recipe = _recipe(dropout=False)
    assert recipe.momentum > 0 and recipe.weight_decay > 0
    trainer = NumpyTrainer(spec, recipe)
    w = {k: v.astype(np.float64) for k, v in trainer.export_state()["weights"].items()}
    b = {k: np.zeros_like(v) for k, v in w.items()}
    for step, lr in enumerate((0.05, 0.02)):
        x, y = data.x_train[8 * step : 8 * step + 8], data.y_train[8 * step : 8 * step + 8]
        want_loss, g = reference.loss_and_grads(trainer.spec, w, x, y)
        loss, correct = trainer.step(x, y, lr)
        assert loss == pytest.approx(want_loss, rel=1e-6) and 0 <= correct <= 8
        state = trainer.export_state()
        for name in w:
            b[name] = recipe.momentum * b[name] + g[name] + recipe.weight_decay * w[name]
            w[name] = w[name] - lr * b[name]
            np.testing.assert_allclose(state["momentum"][name], b[name], rtol=1e-5, atol=1e-7, err_msg=name)
            np.testing.assert_allclose(state["weights"][name], w[name], rtol=1e-5, atol=1e-7, err_msg=name)
    loss_sum, right = trainer.evaluate(data.x_test, data.y_test)
    logits, _ = reference.forward(trainer.spec, state["weights"], data.x_test)
    assert right == int((logits.argmax(1) == data.y_test).sum())
    assert loss_sum / len(data.y_test) == pytest.approx(reference.softmax_cross_entropy(logits, data.y_test)[0])


def test_get_trainer():
    trainer = train.get_trainer("numpy", "nin_tiny", Recipe(dropout=False, seed=2, init="xavier"))
    assert isinstance(trainer, NumpyTrainer) and train.backend_name(trainer) == "numpy"
    assert trainer.spec == train.spec_for(Recipe(dropout=False), nin.get_spec("nin_tiny"))
    want = nin.init_weights(trainer.spec, 2, "xavier")
    for name, w in trainer.export_state()["weights"].items():
        np.testing.assert_array_equal(w, want[name])
    with pytest.raises(nin.UnknownNameError, match="unknown backend 'caffe'"):
        train.get_trainer("caffe", "nin_tiny", Recipe())


# -- the loop: outputs, resume, interruption ---------------------------------------------------


def _assert_same_state(a: dict, b: dict) -> None:
    for part in ("weights", "momentum"):
        assert list(a[part]) == list(b[part])
        for name in a[part]:
            np.testing.assert_array_equal(a[part][name], b[part][name], err_msg=f"{part} {name}")


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    """Three epochs with dropout on, never stopped: (trainer, history, out folder)."""
    spec, data = tiny
    trainer = NumpyTrainer(spec, _recipe())
    out = tmp_path_factory.mktemp("full")
    return trainer, fit(trainer, data, _recipe(), out, progress=False), out


def test_outputs(uninterrupted, tiny):
    trainer, history, out = uninterrupted
    tiny_data = tiny[1]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines == history and [r["epoch"] for r in lines] == [1, 2, 3]
    for r in lines:
        assert set(r) == METRIC_KEYS
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1
        assert r["train_loss"] > 0 and r["test_loss"] > 0 and r["seconds"] > 0 and r["examples_per_s"] > 0
        assert (r["world_size"], r["rows_per_rank"]) == (1, [len(tiny_data.y_train)])
    assert lines[0]["lr"] == pytest.approx(0.05)  # half-epoch warmup done by the end of epoch 1

    from PIL import Image

    with Image.open(out / "curves.png") as png:
        png.load()
        assert png.format == "PNG" and png.size[0] > 300

    ckpt = train.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.epoch == 3 and ckpt.meta["backend"] == "numpy" and ckpt.meta["history"] == history
    assert Recipe.from_json(ckpt.meta["recipe"]) == _recipe()
    _assert_same_state(ckpt.state, trainer.export_state())
    # the checkpoint is canonical weights plus extras: it loads as weights for the spec
    assert list(nin.validate_weights(trainer.spec, ckpt.state["weights"])) == list(nin.weight_shapes(trainer.spec))
    assert not list(out.glob("*.tmp"))


def test_learns(uninterrupted):
    _, history, _ = uninterrupted
    assert history[-1]["train_loss"] < history[0]["train_loss"]


class _InterruptAt(NumpyTrainer):
    """Raises KeyboardInterrupt (as Ctrl-C would) instead of its ``n``-th step."""

    def __init__(self, spec, recipe, n):
        super().__init__(spec, recipe)
        self.calls, self.n = 0, n

    def step(self, x, y, lr):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return super().step(x, y, lr)


@pytest.mark.parametrize("where", ["start of epoch 3", "mid-epoch", "first epoch"])
def test_stop_and_resume_is_bit_exact(tiny, uninterrupted, tmp_path, where):
    """Ctrl-C saves the last completed epoch; resuming ends exactly where the run that never
    stopped ended — with dropout on, so the dropout generator must be reseeded per epoch."""
    spec, data = tiny
    recipe = _recipe()
    stop = {"start of epoch 3": 7, "mid-epoch": 5, "first epoch": 2}[where]  # 3 steps per epoch
    with pytest.raises(train.TrainingInterrupted, match="resume=True") as err:
        fit(_InterruptAt(spec, recipe, stop), data, recipe, tmp_path, progress=False)
    done = (stop - 1) // 3
    assert err.value.epoch == done and err.value.checkpoint == tmp_path / "checkpoint.npz"
    assert train.load_checkpoint(tmp_path / "checkpoint.npz").epoch == done
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == done

    resumed = NumpyTrainer(spec, recipe)
    history = fit(resumed, data, recipe, tmp_path, resume=True, progress=False)
    full_trainer, full_history, _ = uninterrupted
    _assert_same_state(resumed.export_state(), full_trainer.export_state())
    drop = ("seconds", "examples_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in history] == [
        {k: v for k, v in r.items() if k not in drop} for r in full_history
    ]


def test_resume_can_extend_the_run(tiny, uninterrupted, tmp_path):
    spec, data = tiny
    constant = _recipe(schedule="constant", epochs=1)
    fit(NumpyTrainer(spec, constant), data, constant, tmp_path, progress=False)
    longer = constant.replace(epochs=2)
    history = fit(NumpyTrainer(spec, longer), data, longer, tmp_path, resume=True, progress=False)
    assert [r["epoch"] for r in history] == [1, 2]


def test_checkpoint_survives_a_killed_writer(tiny, tmp_path, monkeypatch):
    spec, _ = tiny
    path = tmp_path / "checkpoint.npz"
    good = NumpyTrainer(spec, _recipe()).export_state()
    train.save_checkpoint(path, good, {"epoch": 1, "history": []})

    def dies_half_way(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies_half_way)
    other = NumpyTrainer(spec, _recipe(seed=9)).export_state()
    with pytest.raises(KeyboardInterrupt):
        train.save_checkpoint(path, other, {"epoch": 2, "history": []})
    monkeypatch.undo()
    ckpt = train.load_checkpoint(path)
    assert ckpt.epoch == 1
    _assert_same_state(ckpt.state, good)
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_errors(tiny, uninterrupted, tmp_path):
    spec, data = tiny
    recipe = _recipe()
    with pytest.raises(train.CheckpointError, match="no checkpoint at .*nothing to resume"):
        fit(NumpyTrainer(spec, recipe), data, recipe, tmp_path, resume=True, progress=False)
    _, _, done = uninterrupted
    with pytest.raises(train.CheckpointError, match="already holds a checkpoint; continue it with --resume"):
        fit(NumpyTrainer(spec, recipe), data, recipe, done, progress=False)
    other = recipe.replace(lr=0.1)
    with pytest.raises(train.CheckpointError, match="different run .*lr 0.05 there, 0.1 now"):
        fit(NumpyTrainer(spec, other), data, other, done, resume=True, progress=False)
    wider = spec.replace(name="nin_tiny", input_size=(9, 9))
    with pytest.raises(train.CheckpointError, match=r"input_size \[8, 8\] there, \[9, 9\] now"):
        fit(NumpyTrainer(wider, recipe), synthetic((1, 9, 9), 48, 24, 3), recipe, done, resume=True, progress=False)
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip")
    with pytest.raises(train.CheckpointError, match="not a readable checkpoint"):
        train.load_checkpoint(tmp_path / "checkpoint.npz")


# -- the checkpoint format: the spec's canonical JSON under a format version ----------------------


def _later_max_pool() -> type:
    """``MaxPool`` as a later nin-suite might define it: one field more, with a default that
    keeps the network as it is (the reference pools it as any MaxPool)."""

    @dataclasses.dataclass(frozen=True)
    class MaxPool(nin.MaxPool):
        dilation: int = 1

    return MaxPool


def _with_dilation(spec: NiNSpec, dilation: int = 1) -> NiNSpec:
    later = _later_max_pool()
    layers = tuple(
        later(layer.kernel, layer.stride, layer.padding, layer.ceil_mode, dilation)
        if isinstance(layer, nin.MaxPool)
        else layer
        for layer in spec.layers
    )
    return spec.replace(layers=layers)


def _rewrite_meta(path, **changes) -> None:
    """Rewrite a checkpoint's metadata as an older or newer nin-suite would have written it."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["meta"] = np.array(json.dumps({**json.loads(str(arrays["meta"])), **changes}))
    np.savez(path, **arrays)


def _format_1_hash(spec: NiNSpec) -> str:
    """The spec field of a nin-checkpoint/1 checkpoint, as the writer of that format computed it."""
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:16]


def _stopped_after_epoch_2(spec, data, out) -> None:
    with pytest.raises(train.TrainingInterrupted):
        fit(_InterruptAt(spec, _recipe(), 7), data, _recipe(), out, progress=False)


def test_a_spec_field_added_with_its_default_keeps_resume_working(tiny, uninterrupted, tmp_path):
    """The spec's identity is its canonical JSON, which leaves out fields at their default: a
    spec class that gains a field (here MaxPool's ``dilation``) still resumes a checkpoint
    written before, bit-exactly; the field set to another value is a different run, named."""
    spec, data = tiny
    _stopped_after_epoch_2(spec, data, tmp_path)
    saved = train.load_checkpoint(tmp_path / "checkpoint.npz").meta
    assert saved["format"] == "nin-checkpoint/2" and saved["spec"]["layers"][1]["type"] == "MaxPool"
    assert json.loads(json.dumps(saved["spec"])) == saved["spec"], "the spec must be JSON data"
    with pytest.raises(train.CheckpointError, match=r"spec\.layers\[1\]\.dilation null there, 2 now"):
        fit(NumpyTrainer(_with_dilation(spec, 2), _recipe()), data, _recipe(), tmp_path, resume=True, progress=False)
    resumed = NumpyTrainer(_with_dilation(spec), _recipe())
    fit(resumed, data, _recipe(), tmp_path, resume=True, progress=False)
    full_trainer, _, _ = uninterrupted
    _assert_same_state(resumed.export_state(), full_trainer.export_state())


def test_format_1_checkpoint_resumes_where_its_hash_matches(tiny, uninterrupted, tmp_path):
    """A nin-checkpoint/1 (spec named by ``sha256(repr(spec))[:16]``) resumes where that hash
    still matches this spec, bit-exactly, and what it writes next is nin-checkpoint/2; where
    it no longer matches (a spec class that gained a field) it is refused in one line naming
    the format, not blamed on "a different run"."""
    spec, data = tiny
    path = tmp_path / "checkpoint.npz"
    _stopped_after_epoch_2(spec, data, tmp_path)
    trained_spec = train.spec_for(_recipe(), spec)
    _rewrite_meta(path, format="nin-checkpoint/1", spec=_format_1_hash(trained_spec))
    later = _with_dilation(spec)
    with pytest.raises(train.CheckpointError) as err:
        fit(NumpyTrainer(later, _recipe()), data, _recipe(), tmp_path, resume=True, progress=False)
    message = str(err.value)
    assert "is a nin-checkpoint/1 checkpoint" in message and "different run" not in message, message
    assert "\n" not in message
    resumed = NumpyTrainer(spec, _recipe())
    fit(resumed, data, _recipe(), tmp_path, resume=True, progress=False)
    full_trainer, _, _ = uninterrupted
    _assert_same_state(resumed.export_state(), full_trainer.export_state())
    assert train.load_checkpoint(path).meta["format"] == "nin-checkpoint/2"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "nin-checkpoint/3"}, "is a nin-checkpoint/3 checkpoint, written by a newer nin-suite"),
        ({"format": "something/1"}, "is a 'something/1' file, not a nin-checkpoint"),
    ],
)
def test_unknown_checkpoint_formats_are_named(tiny, tmp_path, changes, message):
    spec, data = tiny
    recipe = _recipe(epochs=1)
    fit(NumpyTrainer(spec, recipe), data, recipe, tmp_path, progress=False)
    _rewrite_meta(tmp_path / "checkpoint.npz", **changes)
    with pytest.raises(train.CheckpointError, match=message):
        train.load_checkpoint(tmp_path / "checkpoint.npz")


def test_a_recipe_field_the_checkpoint_lacks_counts_as_its_default(tiny, tmp_path):
    """Resume compares recipes too: a field added to ``Recipe`` since the checkpoint was
    written (missing from its metadata) is taken at its default, not as a difference."""
    spec, data = tiny
    recipe = _recipe(epochs=1)
    fit(NumpyTrainer(spec, recipe), data, recipe, tmp_path, progress=False)
    meta = train.load_checkpoint(tmp_path / "checkpoint.npz").meta
    _rewrite_meta(tmp_path / "checkpoint.npz", recipe={k: v for k, v in meta["recipe"].items() if k != "gamma"})
    longer = recipe.replace(epochs=2)
    assert [
        r["epoch"] for r in fit(NumpyTrainer(spec, longer), data, longer, tmp_path, resume=True, progress=False)
    ] == [1, 2]


def test_fit_checks_its_inputs(tiny, tmp_path):
    spec, data = tiny
    with pytest.raises(nin.NinError, match="has 3 classes but nin_tiny outputs 10; build the spec with num_classes=3"):
        ten = nin.get_spec("nin_tiny", in_channels=1, num_classes=10, input_size=8)
        fit(NumpyTrainer(ten, _recipe()), data, _recipe(), tmp_path, progress=False)
    trainer = NumpyTrainer(spec, _recipe())
    with pytest.raises(train.RecipeError, match="turns dropout off"):
        fit(trainer, data, _recipe(dropout=False), tmp_path, progress=False)


def test_on_epoch_and_progress(tiny, tmp_path, capsys):
    spec, data = tiny
    recipe = _recipe(epochs=1)
    seen = []
    fit(NumpyTrainer(spec, recipe), data, recipe, tmp_path, on_epoch=lambda r, t: seen.append((r["epoch"], t.spec)))
    assert seen == [(1, train.spec_for(recipe, spec))]
    assert "epoch 1/1: train loss" in capsys.readouterr().err


def test_log_file_gets_one_line_per_epoch(tiny, tmp_path, capsys):
    """stderr redirected to a file (not a terminal): no progress bar, one line per epoch."""
    spec, data = tiny
    recipe = _recipe(epochs=2)
    fit(NumpyTrainer(spec, recipe), data, recipe, tmp_path)
    err = capsys.readouterr().err
    assert "\r" not in err, f"a progress bar reached a non-terminal stderr: {err[:200]!r}"
    assert [line.split(":")[0] for line in err.splitlines()] == ["epoch 1/2", "epoch 2/2"], err


def test_run_seeds(tiny, tmp_path):
    spec, data = tiny
    summary = train.run_seeds("numpy", spec, data, _recipe(epochs=1), [0, 1], tmp_path, progress=False)
    assert summary["seeds"] == [0, 1] and len(summary["final_test_acc"]) == 2
    assert summary["mean_test_acc"] == pytest.approx(np.mean(summary["final_test_acc"]))
    finals = summary["final_test_acc"]
    assert summary["stuck_threshold"] == 0.5 and summary["stuck"] == sum(a <= 0.5 for a in finals)
    assert summary["median_test_acc"] == pytest.approx(np.median(finals)) and summary["min_test_acc"] == min(finals)
    assert summary["degraded"] == sum(0.5 < a < np.median(finals) - train.DEGRADED_MARGIN for a in finals)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    seed1 = train.load_checkpoint(tmp_path / "seed1" / "checkpoint.npz")
    assert seed1.meta["recipe"]["seed"] == 1
    assert train.parse_seeds("0-9") == list(range(10)) and train.parse_seeds("4") == [4]
    for bad in ("a-b", "5-2"):
        with pytest.raises(train.RecipeError, match="seeds"):
            train.parse_seeds(bad)


# -- the command ---------------------------------------------------------------------------------


def test_cli_train_end_to_end(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic", "--epochs", "2"]
    args += ["--input-size", "8", "8", "--batch-size", "128"]
    done = subprocess.run([sys.executable, "-m", "nin.cli", *args, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "numpy nin_tiny on synthetic: test accuracy" in done.stdout
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert (out / "curves.png").stat().st_size > 0
    ckpt = train.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.epoch == 2 and ckpt.meta["in_channels"] == 1  # built for the data's one channel


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "caffe"], "unknown backend 'caffe'; known backends: numpy, torch"),
        (["--backend", "numpy", "--model", "resnet"], "unknown model 'resnet'; known models:"),
        (["--backend", "numpy", "--data", "mnist7k"], "unknown dataset 'mnist7k'; known forms:"),
        (["--backend", "numpy", "--data", "cifar10:/nowhere"], "not found in /nowhere"),
        (["--backend", "numpy", "--lr", "-2"], "lr must be > 0"),
        (["--backend", "numpy", "--seeds", "3-1"], "seeds A-B need 0 ≤ A ≤ B"),
        (["--backend", "numpy", "--input-size", "16"], "nin_mnist is 2-D: --input-size needs 2 numbers"),
        (["--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic", "--resume"], "no checkpoint at"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, capsys):
    assert main(["train", *args, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nin train: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_mismatched_checkpoint(uninterrupted, capsys):
    _, _, out = uninterrupted
    args = ["--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic", "--resume", "--no-progress"]
    assert main(["train", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is from a different run" in err and "num_classes 3 there, 10 now" in err and err.count("\n") == 1


def test_cli_interrupt_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise train.TrainingInterrupted(1, tmp_path / "checkpoint.npz")

    monkeypatch.setattr(train.loop, "fit", interrupted)
    args = ["train", "--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic", "--out", str(tmp_path)]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "the state after epoch 1 is saved in" in err
    assert f"Resume with: nin {' '.join(args)} --resume" in err and "Traceback" not in err


def test_checkpoint_weights_load_with_load_weights(tmp_path):
    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec, 3)
    state = {"weights": weights, "momentum": {k: np.ones_like(v) for k, v in weights.items()}}
    path = train.save_checkpoint(tmp_path / "checkpoint.npz", state, {"epoch": 1})
    loaded = nin.load_weights(path, spec)
    assert list(loaded) == list(weights)
    for name in weights:
        np.testing.assert_array_equal(loaded[name], weights[name])


# The child of the SIGKILL test: ``nin train`` with a hook that, at the Nth checkpoint, says so on
# stdout and then waits to be killed — either just after the checkpoint is written, or half-way
# through writing it (the temp file holds a partial zip).  The kill point is then exact,
# however loaded the machine is.
_KILLABLE_TRAIN = """
import sys, time
import numpy as np
from nin import cli
from nin.train import loop  # the module whose fit saves each epoch's checkpoint

at, moment = int(sys.argv[1]), sys.argv[2]
real_save, real_savez, saves = loop.save_checkpoint, np.savez, [0]

def wait_for_kill(what):
    print(what, flush=True)
    time.sleep(600)

def savez(f, **arrays):
    if moment == "mid_write" and saves[0] == at:
        f.write(b"PK\\x03\\x04 half a zip")
        f.flush()
        wait_for_kill("writing")
    real_savez(f, **arrays)

def save_checkpoint(path, state, meta):
    saves[0] += 1
    written = real_save(path, state, meta)
    if moment == "after_save" and saves[0] == at:
        wait_for_kill("saved")
    return written

np.savez, loop.save_checkpoint = savez, save_checkpoint
sys.exit(cli.main(sys.argv[3:]))
"""
_TRAIN_ARGS = ["train", "--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic", "--input-size", "8", "8",
               "--batch-size", "128", "--epochs", "5", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    subprocess.run([sys.executable, "-m", "nin.cli", *_TRAIN_ARGS, "--out", str(out)], capture_output=True, check=True)
    return train.load_checkpoint(out / "checkpoint.npz")


@pytest.mark.parametrize(("moment", "left_at_epoch"), [("after_save", 3), ("mid_write", 2)])
def test_sigkill_leaves_a_checkpoint_that_resumes_exactly(moment, left_at_epoch, never_killed, tmp_path):
    """A real ``kill -9`` of ``nin train`` at a fixed point — just after the epoch-3 checkpoint
    is written, or half-way through writing it: the checkpoint left behind loads (epoch 3, or
    still epoch 2), and resuming from it ends with the same weights as a run never stopped."""
    import signal

    argv = [sys.executable, "-c", _KILLABLE_TRAIN, "3", moment, *_TRAIN_ARGS, "--out", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert said == {"after_save": "saved", "mid_write": "writing"}[moment], f"the child did not stop: {err}"
    assert proc.returncode == -signal.SIGKILL
    if moment == "mid_write":
        assert list(tmp_path.glob("checkpoint.npz.*.tmp")), "killed mid-write, yet no temp file was left"
    assert train.load_checkpoint(tmp_path / "checkpoint.npz").epoch == left_at_epoch
    resumed = subprocess.run(
        [sys.executable, "-m", "nin.cli", *_TRAIN_ARGS, "--out", str(tmp_path), "--resume"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = train.load_checkpoint(tmp_path / "checkpoint.npz")
    assert final.epoch == 5
    _assert_same_state(final.state, never_killed.state)
