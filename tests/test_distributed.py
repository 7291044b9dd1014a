"""Data-parallel training (``nin.distributed``, ``frameworks/<name>/distributed.py``): N
workers must compute the optimisation of one process.

Each backend is started once with ``nin train --workers 3`` for one epoch of ``nin_tiny`` on
83 training images at global batch 27: four steps during the warmup (a new rate every step),
the last one a batch of 2 that three workers split as 1 + 1 + 0 real rows, so rank 2 trains
that step on padding alone.  Its checkpoint must record world size 3 and the real rows each
rank trained on ([28, 28, 27], summed over the workers by the engine), and its state is
compared with

* the single-process trainer of the same backend (``nin.train.get_trainer``): every weight
  and momentum tensor within 1e-5 of its own max|·|, since the workers differ from one process
  only in the order the gradient is summed (a few float32 roundings per step);
* ``nin.train.NumpyTrainer`` (``sgd_reference``, float64), per tensor, within the bound a
  float32 trainer whose every gradient meets the conformance bound (``GRAD_RTOL`` of the
  tensor's max|g|) must meet (``BoundedOracle``);
* a resume with one process, which must continue bit for bit as a trainer loaded with that
  state does.

Faults, in jobs of two workers (global batch 16, three epochs) whose rank 1 says on stdout when
it is about to begin epoch 2 and waits there (``HOLD_HOOK``, loaded through ``PYTHONPATH``), so
the fault comes at that point however loaded the machine is; rank 0 has then written the
epoch-1 checkpoint:

* rank 1 SIGKILLed: the job ends within 60 s naming rank 1 and the signal, no worker process
  is left, the checkpoint is epoch 1's, and ``--resume`` with two workers ends bit for bit
  where an uninterrupted run ends;
* rank 1 SIGSTOPped: its heartbeat stops, and the launcher ends the job once the heartbeat
  window (``NIN_HEARTBEAT_WINDOW_S``, 10 s here) has passed and within 5 s more, with one line
  naming rank 1, the window and the stop; no worker process is left, the checkpoint is epoch 1's.

What runs where: ``make test`` deselects ``slow`` (``-m "not slow"``); ``make test-slow`` (or
``pytest -m slow``) runs the rest.  In ``make test``: the framework-free checks, the parity and
the resume with one process for every backend, and the two faults for torch (the launcher and
the heartbeat are framework-free).  ``slow``: the faults for tensorflow, jax and mxnet, and a
2-worker checkpoint resumed with two workers, which must end bit for bit where an
uninterrupted run ends.  ``NIN_BACKENDS`` selects backends, as elsewhere.  Cost:
docs/distributed.md, "Tests".
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_or_skip, selected_with_part

import nin
from nin import cli
from nin.conformance import GRAD_RTOL
from nin.distributed import (
    HEARTBEAT_S,
    STOP_GRACE_S,
    DistributedError,
    TrainJob,
    check_split,
    cluster_from,
    heartbeat_window,
    launch,
    local_shard,
)
from nin.loaders import batches, load_dataset, synthetic
from nin.train import NumpyTrainer, Recipe, fit, get_trainer, load_checkpoint, lr_at

BACKENDS = selected_with_part("distributed")
N_TRAIN, N_TEST = 83, 21
WORKERS, BATCH = 3, 27  # the parity job: steps of 27, 27, 27 and 2 rows
FAULT_WORKERS, FAULT_BATCH, FAULT_EPOCHS = 2, 16, 3  # the fault jobs and the uninterrupted run
HOLD_RANK, HOLD_EPOCH = 1, 1  # rank 1 waits before epoch 2 (epoch index 1)
WINDOW_S = 10  # the heartbeat window of the SIGSTOP test
SAME_ORDER_RTOL = 1e-5
# the faults run in `make test` for torch, for the other backends in `-m slow`
FULL_IN_CI = ("torch",)


def full_params() -> list:
    return [b if b in FULL_IN_CI else pytest.param(b, marks=pytest.mark.slow) for b in BACKENDS]


def write_idx(path: Path, array: np.ndarray) -> None:
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """83 + 21 learnable 16×16 images as Fashion-MNIST IDX files (``--data fashion-mnist:DIR``)."""
    folder = tmp_path_factory.mktemp("idx")
    data = synthetic((1, 16, 16), n_train=N_TRAIN, n_test=N_TEST)
    for split, x, y in (("train", data.x_train, data.y_train), ("t10k", data.x_test, data.y_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte", np.round(x[:, 0] * 255))
        write_idx(folder / f"{split}-labels-idx1-ubyte", y)
    return folder


@pytest.fixture(scope="module")
def dataset(data_dir):
    return load_dataset(f"fashion-mnist:{data_dir}", input_size=(16, 16))


def spec_of(dataset):
    return nin.get_spec("nin_tiny", in_channels=1, num_classes=10, input_size=(16, 16))


def recipe(batch: int, epochs: int = 1) -> Recipe:
    return Recipe(batch_size=batch, epochs=epochs)


def train_command(backend: str, data_dir: Path, out: Path, batch: int, epochs: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nin.cli", "train", "--backend", backend, "--model", "nin_tiny",
        "--data", f"fashion-mnist:{data_dir}", "--batch-size", str(batch), "--epochs", str(epochs),
        "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


def train_job(backend: str, data_dir: Path, out: Path, batch: int, epochs: int = 1) -> TrainJob:
    """What ``nin train`` with ``train_command``'s settings gives ``launch``."""
    data = f"fashion-mnist:{data_dir}"
    return TrainJob(backend, "nin_tiny", data, (16, 16), 1, 10, recipe(batch, epochs), str(out), progress=False)


def environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def run_workers(
    backend: str, data_dir: Path, out: Path, workers: int, batch: int, epochs: int, *extra: str
) -> subprocess.CompletedProcess:
    command = train_command(backend, data_dir, out, batch, epochs, "--workers", str(workers), *extra)
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def rows_per_rank(n: int, batch: int, workers: int) -> list[int]:
    """The real rows each rank trains on in an epoch of ``n`` rows, from the definition
    (docs/distributed.md): a global batch of b rows is cut into ``workers`` consecutive pieces
    of ⌈b/N⌉ rows, the last ones short of rows or empty."""
    rows = [0] * workers
    for start in range(0, n, batch):
        b = min(batch, n - start)
        piece = -(-b // workers)
        for rank in range(workers):
            rows[rank] += min(piece, max(0, b - rank * piece))
    return rows


class BoundedOracle(NumpyTrainer):
    """``NumpyTrainer`` (float64 ``sgd_reference``) that also carries, per tensor, how far from it
    a float32 trainer may end whose every gradient is within ``GRAD_RTOL``·max|g| of the exact
    one (the conformance bound).  An error δ_t ≤ ε·max|g_t| in step t's gradient enters the
    buffer ``b ← μ·b + g + λ·w`` and stays there, shrinking by μ per step, and each step moves
    ``w`` by ``lr_t·b_t``; so after step t

        |Δb| ≤ c_t = μ·c_(t−1) + ε·max|g_t|,      |Δw| ≤ Σ_(s≤t) lr_s·c_s,

    to first order (an error in w changes later gradients by lr·|H|·|Δw|, negligible over a few
    steps), plus one float32 rounding of each stored value per step on either side
    (2·t·2⁻²⁴ of its max).  ``g_t`` is read off the buffers: ``b_t − μ·b_(t−1) − λ·w_(t−1)``."""

    def __init__(self, spec, recipe: Recipe):
        super().__init__(spec, recipe)
        self.steps = 0
        self.buffer_bound = {name: 0.0 for name in self.weights}
        self.weight_bound = {name: 0.0 for name in self.weights}

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        weights, buffers = self.weights, self.momentum
        result = super().step(x, y, lr)
        mu, decay = self.recipe.momentum, self.recipe.weight_decay
        for name, b in self.momentum.items():
            g = b.astype(np.float64) - mu * buffers[name] - decay * weights[name].astype(np.float64)
            self.buffer_bound[name] = mu * self.buffer_bound[name] + GRAD_RTOL * float(np.abs(g).max())
            self.weight_bound[name] += lr * self.buffer_bound[name]
        self.steps += 1
        return result

    def bounds(self) -> dict[str, dict[str, float]]:
        """{"weights": {name: bound}, "momentum": {name: bound}} after the steps taken."""
        rounding = 2 * self.steps * 2.0**-24
        return {
            "weights": {n: b + rounding * float(np.abs(self.weights[n]).max()) for n, b in self.weight_bound.items()},
            "momentum": {n: b + rounding * float(np.abs(self.momentum[n]).max()) for n, b in self.buffer_bound.items()},
        }


def assert_states_close(got: dict, want: dict, bounds: dict[str, dict[str, float]], what: str) -> None:
    """Every weight and momentum tensor within its bound."""
    problems = []
    for part in ("weights", "momentum"):
        for name, expected in want[part].items():
            error = float(np.abs(got[part][name] - expected).max())
            if not error <= bounds[part][name]:
                problems.append(f"{part} {name}: max|Δ| = {error:.3g}, but should be ≤ {bounds[part][name]:.3g}")
    assert not problems, f"{WORKERS} workers vs {what}:\n  " + "\n  ".join(problems)


def own_max_bounds(state: dict) -> dict[str, dict[str, float]]:
    """``SAME_ORDER_RTOL`` of each tensor's own max|·|."""
    return {
        part: {name: SAME_ORDER_RTOL * float(np.abs(v).max()) for name, v in tensors.items()}
        for part, tensors in state.items()
    }


def assert_states_equal(got: dict, want: dict, what: str) -> None:
    different = [
        f"{part} {name}" for part in ("weights", "momentum") for name in want[part]
        if not np.array_equal(got[part][name], want[part][name])
    ]  # fmt: skip
    assert not different, f"{what}: not bit for bit equal in {', '.join(different)}"


@pytest.fixture(scope="module")
def jobs(data_dir, tmp_path_factory):
    """``jobs(backend, workers, batch, epochs)``: the output folder of one fresh ``--workers``
    run with those settings, run once per module."""
    runs: dict[tuple, Path] = {}

    def run(backend: str, workers: int, batch: int, epochs: int) -> Path:
        backend_or_skip(backend)
        key = (backend, workers, batch, epochs)
        if key not in runs:
            out = tmp_path_factory.mktemp(f"{backend}_{workers}x{batch}_{epochs}")
            run_workers(backend, data_dir, out, workers, batch, epochs)
            runs[key] = out
        return runs[key]

    return run


# -- the semantics, without a framework ---------------------------------------------------------


def test_local_shards_cover_the_batch_once():
    x, y = np.arange(3 * 4, dtype=np.float32).reshape(3, 4), np.arange(3)
    shards = [local_shard(x, y, rank, 2) for rank in range(2)]
    assert [len(s[1]) for s in shards] == [2, 2]
    weights = np.concatenate([s[2] for s in shards])
    assert weights.tolist() == [1, 1, 1, 0], f"got weights {weights.tolist()}, but should be 1 for 3 rows then 0"
    real = np.concatenate([s[0] for s in shards])[weights == 1]
    np.testing.assert_array_equal(real, x)


def test_the_parity_job_gives_a_rank_no_real_row():
    """The parity job's last batch (83 = 3·27 + 2) is smaller than the number of workers, so
    one rank's shard is padding only; ``local_shard`` agrees with the definition on every batch."""
    last = N_TRAIN % BATCH
    assert 0 < last < WORKERS and rows_per_rank(last, BATCH, WORKERS) == [1, 1, 0]
    x, y = np.arange(N_TRAIN, dtype=np.float32)[:, None], np.arange(N_TRAIN)
    got = [0] * WORKERS
    for start in range(0, N_TRAIN, BATCH):
        for rank in range(WORKERS):
            _, shard_y, weight = local_shard(x[start : start + BATCH], y[start : start + BATCH], rank, WORKERS)
            assert len(shard_y) == -(-len(y[start : start + BATCH]) // WORKERS), "every rank gets ⌈b/N⌉ rows"
            got[rank] += int(weight.sum())
    assert got == rows_per_rank(N_TRAIN, BATCH, WORKERS) == [28, 28, 27]


def test_batch_must_split_evenly():
    assert check_split(16, 2) == 8
    with pytest.raises(
        DistributedError, match="global batch 16 does not split evenly over 3 workers.*--batch-size 15 or 18"
    ):
        check_split(16, 3)


def test_cluster_from_flags_and_torchrun_variables():
    assert cluster_from(None, None, None, env={}) is None
    cluster = cluster_from(
        None, None, None, env={"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "9"}
    )
    assert (cluster.rank, cluster.world_size, cluster.coordinator) == (1, 2, "h:9")
    with pytest.raises(DistributedError, match="missing --world-size, --coordinator"):
        cluster_from(0, None, None, env={})
    with pytest.raises(DistributedError, match="HOST:PORT"):
        cluster_from(0, 2, "nohost", env={})
    with pytest.raises(DistributedError, match=r"rank must be in \[0, world size 2\)"):
        cluster_from(2, 2, "h:1", env={})


def main_error(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    return capsys.readouterr().err


def test_uneven_split_fails_before_any_process_starts(data_dir, tmp_path, capsys):
    argv = train_command("torch", data_dir, tmp_path / "run", FAULT_BATCH, 1, "--workers", "3")[3:]
    err = main_error(argv, capsys)
    assert "global batch 16 does not split evenly over 3 workers" in err
    assert not (tmp_path / "run").exists()


def test_coordinator_port_in_use(data_dir, tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flags = ("--rank", "0", "--world-size", "2", "--coordinator", f"127.0.0.1:{port}")
        err = main_error(train_command("torch", data_dir, tmp_path, FAULT_BATCH, 1, *flags)[3:], capsys)
    assert f"the coordinator port 127.0.0.1:{port} is in use" in err


def test_missing_framework(data_dir, tmp_path, capsys, monkeypatch):
    import nin.frameworks as frameworks

    monkeypatch.setattr(frameworks, "missing_modules", lambda name: ["torch"])
    monkeypatch.setattr(frameworks, "available_backends", lambda: [])
    err = main_error(train_command("torch", data_dir, tmp_path, FAULT_BATCH, 1, "--workers", "2")[3:], capsys)
    assert "backend 'torch' needs torch, which is not installed; install it with: pip install 'nin-suite[torch]'" in err


def test_a_failing_worker_stops_the_job(data_dir, tmp_path):
    """The launcher on workers that fail at once (the numpy backend refuses a rank; no
    framework is imported): an error naming the rank, its status and its own last words,
    quickly."""
    start = time.monotonic()
    with pytest.raises(DistributedError, match=r"(?s)worker rank \d \(pid \d+\) exited with status 2.*--resume") as e:
        launch(train_job("numpy", data_dir, tmp_path, FAULT_BATCH), 2)
    assert time.monotonic() - start < 60
    # the worker's message, as the CLI printed it on the worker's stderr
    assert "last lines of its stderr:\n    " in str(e.value)
    assert "the numpy backend trains in one process" in str(e.value)


def fake_python(tmp_path: Path, monkeypatch, script: str) -> None:
    """``launch`` starts ``sys.executable``: a shell script in its place is a stand-in worker."""
    import nin.distributed as distributed

    path = tmp_path / "fake_python"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    monkeypatch.setattr(distributed.sys, "executable", str(path))


def test_a_worker_killed_by_a_signal_is_named_with_its_last_lines(tmp_path, monkeypatch):
    """A worker that writes to stderr, then dies by SIGKILL: the launcher names the signal and
    repeats what the worker wrote."""
    fake_python(
        tmp_path,
        monkeypatch,
        'case "$*" in *"--rank 1"*) echo "loading shard" >&2; echo "about to die" >&2; kill -9 $$;; esac\nsleep 30\n',
    )
    with pytest.raises(DistributedError, match=r"(?s)worker rank 1 \(pid \d+\) was killed by SIGKILL") as e:
        launch(train_job("torch", tmp_path, tmp_path, FAULT_BATCH), 2)
    assert "    loading shard\n    about to die\n" in str(e.value)


def test_a_worker_without_a_heartbeat_ends_the_job_within_the_window(tmp_path, monkeypatch):
    """Stand-in workers that never send a heartbeat (``sleep``): the job ends once the window
    has passed and not before, with one line naming the rank heard from least recently (rank
    0, started first), the window and the process state."""
    fake_python(tmp_path, monkeypatch, "sleep 60\n")
    monkeypatch.setenv("NIN_HEARTBEAT_WINDOW_S", "3")
    start = time.monotonic()
    with pytest.raises(DistributedError) as e:
        launch(train_job("torch", tmp_path, tmp_path, FAULT_BATCH), 2)
    took = time.monotonic() - start
    message = str(e.value)
    assert message.startswith("worker rank 0 (pid ") and "\n" not in message, message
    assert "sent no heartbeat for 3 s (NIN_HEARTBEAT_WINDOW_S): it is hung (process state S" in message
    assert message.endswith("continue with the same command and --resume"), message
    assert 3 <= took < 3 + 5, f"the job ended {took:.1f} s after it started, but the window is 3 s"


def test_the_heartbeat_window_from_the_environment():
    assert heartbeat_window({}) == 30.0
    assert heartbeat_window({"NIN_HEARTBEAT_WINDOW_S": "7.5"}) == 7.5
    for bad in ("0", "-3", "1", "nan", "soon"):
        with pytest.raises(
            DistributedError, match=rf"NIN_HEARTBEAT_WINDOW_S must be a number of seconds ≥ 2 .*got '{bad}'"
        ):
            heartbeat_window({"NIN_HEARTBEAT_WINDOW_S": bad})


def test_torch_gpu_job_without_nccl_says_so_at_once():
    """A torch build without NCCL (the CPU wheel) asked for a GPU job: the reason, not a
    rendezvous timeout."""
    backend_or_skip("torch")
    import torch

    if torch.distributed.is_nccl_available():
        pytest.skip("this torch has NCCL")
    from nin.distributed import Cluster

    engine = nin.distributed.engine("torch")
    start = time.monotonic()
    with pytest.raises(DistributedError, match="has no NCCL built in") as e:
        engine.initialize(Cluster(0, 2, "127.0.0.1", 1, device="gpu", timeout_s=120))
    assert "within" not in str(e.value) and time.monotonic() - start < 5


# -- proof: three workers equal one process ---------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_workers_equal_one_process(backend, jobs, dataset, tmp_path):
    ckpt = load_checkpoint(jobs(backend, WORKERS, BATCH, 1) / "checkpoint.npz")
    assert ckpt.epoch == 1 and ckpt.meta["backend"] == backend
    (record,) = ckpt.meta["history"]
    job = (record["world_size"], record["rows_per_rank"])
    assert job == (WORKERS, rows_per_rank(N_TRAIN, BATCH, WORKERS)), (
        f"the checkpoint says {job[0]} workers trained on {job[1]} real rows; "
        f"{WORKERS} workers should have trained on {rows_per_rank(N_TRAIN, BATCH, WORKERS)}"
    )
    spec = spec_of(dataset)
    one = get_trainer(backend, spec, recipe(BATCH))
    oracle = BoundedOracle(spec, recipe(BATCH))
    for name, trainer in ((f"one {backend} process", one), ("nin.train.sgd_reference", oracle)):
        history = fit(trainer, dataset, recipe(BATCH), tmp_path / name.replace(" ", "_"), progress=False)
        for key in ("train_loss", "test_loss"):
            got, want = record[key], history[0][key]
            assert abs(got - want) <= SAME_ORDER_RTOL * want, (
                f"{key}: got {got} with {WORKERS} workers, but {want} with {name}"
            )
        for key in ("train_acc", "test_acc"):
            assert record[key] == history[0][key], f"{key} differs from {name}"
    assert_states_close(ckpt.state, one.export_state(), own_max_bounds(one.export_state()), f"one {backend} process")
    assert_states_close(ckpt.state, oracle.export_state(), oracle.bounds(), "nin.train.sgd_reference")


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoint_of_three_workers_resumes_with_one(backend, jobs, dataset, tmp_path):
    source = jobs(backend, WORKERS, BATCH, 1)
    shutil.copytree(source, tmp_path / "run")
    longer = recipe(BATCH, epochs=2)
    spec = spec_of(dataset)
    resumed = get_trainer(backend, spec, longer)
    history = fit(resumed, dataset, longer, tmp_path / "run", resume=True, progress=False)
    assert [(r["world_size"], r["rows_per_rank"]) for r in history] == [
        (WORKERS, rows_per_rank(N_TRAIN, BATCH, WORKERS)),
        (1, [N_TRAIN]),
    ]
    expected = get_trainer(backend, spec, longer)
    expected.load_state(load_checkpoint(source / "checkpoint.npz").state)
    expected.begin_epoch(1)
    steps = -(-N_TRAIN // BATCH)
    for step, (x, y) in enumerate(batches(dataset.x_train, dataset.y_train, BATCH, seed=0, epoch=1)):
        expected.step(x, y, lr_at(longer, 1, step, steps))
    assert_states_equal(resumed.export_state(), expected.export_state(), "resumed with one process")


@pytest.fixture(scope="module")
def uninterrupted(jobs):
    """The final state of a fresh fault-job run (two workers) that nothing interrupts."""
    return lambda backend: (
        load_checkpoint(jobs(backend, FAULT_WORKERS, FAULT_BATCH, FAULT_EPOCHS) / "checkpoint.npz").state
    )


@pytest.mark.parametrize("backend", [pytest.param(b, marks=pytest.mark.slow) for b in BACKENDS])
def test_checkpoint_of_two_workers_resumes_with_two(backend, jobs, uninterrupted, data_dir, tmp_path):
    shutil.copytree(jobs(backend, FAULT_WORKERS, FAULT_BATCH, 1), tmp_path / "run")
    run_workers(backend, data_dir, tmp_path / "run", FAULT_WORKERS, FAULT_BATCH, FAULT_EPOCHS, "--resume")
    resumed = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert [r["world_size"] for r in resumed.meta["history"]] == [FAULT_WORKERS] * FAULT_EPOCHS
    assert_states_equal(resumed.state, uninterrupted(backend), "resumed with two workers after epoch 1")


# -- faults at a point a worker reports -----------------------------------------------------------

HOLD_HOOK = """\
# Loaded by every Python process of a held test job (PYTHONPATH; tests/test_distributed.py):
# each worker says its rank and pid on stdout; the worker of rank NIN_TEST_HOLD_RANK says so
# again when it is about to begin epoch index NIN_TEST_HOLD_EPOCH, and waits there.
import os
import sys

if "--rank" in sys.argv:
    import time

    from nin.train import loop  # the module whose fit cuts each epoch's batches

    rank = sys.argv[sys.argv.index("--rank") + 1]
    print(f"rank {rank} pid {os.getpid()}", flush=True)
    if rank == os.environ["NIN_TEST_HOLD_RANK"]:
        real_batches, hold = loop.batches, int(os.environ["NIN_TEST_HOLD_EPOCH"])

        def batches(*args, **kwargs):
            if kwargs.get("shuffle", True) and kwargs.get("epoch") == hold:
                print(f"rank {rank} holds before epoch index {hold}", flush=True)
                time.sleep(600)
            return real_batches(*args, **kwargs)

        loop.batches = batches
"""


@dataclass
class HeldJob:
    """A ``--workers`` job whose rank ``HOLD_RANK`` waits before epoch index ``HOLD_EPOCH``, and
    rank 0 has written the checkpoint of the epochs before it."""

    launcher: subprocess.Popen
    out: Path
    stdout: Path
    stderr: Path

    def pids(self) -> dict[int, int]:
        """{rank: pid} as the workers said it (``HOLD_HOOK``)."""
        said = [line.split() for line in self.stdout.read_text().splitlines()]
        return {int(w[1]): int(w[3]) for w in said if len(w) == 4 and w[0] == "rank" and w[2] == "pid"}

    def end(self, timeout: float) -> str:
        """Wait for the launcher to end; its stderr."""
        try:
            self.launcher.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the job did not end within {timeout:.0f} s:\n{self.stderr.read_text()[-3000:]}")
        return self.stderr.read_text()

    def kill(self) -> None:
        """Stop the launcher as Ctrl-C does (it stops its workers), then SIGKILL what is left of
        it and of every worker's process group."""
        if self.launcher.poll() is None:
            self.launcher.terminate()
            try:
                self.launcher.wait(STOP_GRACE_S + 10)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()
        for pid in self.pids().values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_until(done, what: str, job: HeldJob, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if job.launcher.poll() is not None or time.monotonic() > deadline:
            ended = job.launcher.poll() is not None
            how = f"ended with {job.launcher.returncode}" if ended else f"was still running after {timeout} s"
            pytest.fail(f"waiting for {what}, the job {how}:\n{job.stderr.read_text()[-3000:]}")
        time.sleep(0.05)


@pytest.fixture
def held_job(data_dir, tmp_path):
    """``held_job(backend, **env)`` starts a fault job and returns once it is held; whatever is
    left of it is killed at the end of the test."""
    started: list[HeldJob] = []

    def start(backend: str, **env: str) -> HeldJob:
        backend_or_skip(backend)
        if not Path("/proc/self/stat").exists():
            pytest.skip("checks the workers' processes in /proc (Linux)")
        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOLD_HOOK)
        path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
        env = environment() | env | {"PYTHONPATH": path}
        env |= {"NIN_TEST_HOLD_RANK": str(HOLD_RANK), "NIN_TEST_HOLD_EPOCH": str(HOLD_EPOCH)}
        out, stdout, stderr = tmp_path / "run", tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        command = train_command(backend, data_dir, out, FAULT_BATCH, FAULT_EPOCHS, "--workers", str(FAULT_WORKERS))
        with open(stdout, "w") as o, open(stderr, "w") as e:
            started.append(HeldJob(subprocess.Popen(command, env=env, stdout=o, stderr=e), out, stdout, stderr))
        job = started[-1]
        held = f"rank {HOLD_RANK} holds before epoch index {HOLD_EPOCH}"
        wait_until(lambda: held in stdout.read_text(), repr(held), job)
        wait_until(lambda: (out / "checkpoint.npz").exists(), "rank 0's checkpoint", job)
        assert sorted(job.pids()) == list(range(FAULT_WORKERS)), f"the workers said {stdout.read_text()!r}"
        return job

    yield start
    for job in started:
        job.kill()


def live_processes(group: int) -> list[int]:
    """The processes of process group ``group`` that are not zombies (from /proc): a launched
    worker leads its own group, with its helpers (MXNet's scheduler and server) in it."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if fields and int(fields[2]) == group and fields[0] != "Z":
            found.append(int(proc.name))
    return found


def assert_job_ended(job: HeldJob, stderr: str) -> None:
    """No process of any worker is left, the launcher's error is its last line and no worker
    printed a traceback, and the checkpoint is the held epoch's."""
    left = {rank: live_processes(pid) for rank, pid in job.pids().items() if live_processes(pid)}
    assert not left, f"processes of these ranks are still running after the launcher ended: {left}"
    assert job.launcher.returncode == 2, f"the launcher exited with {job.launcher.returncode}:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert load_checkpoint(job.out / "checkpoint.npz").epoch == HOLD_EPOCH


@pytest.mark.parametrize("backend", full_params())
def test_killed_worker_stops_the_job_and_resume_ends_as_uninterrupted(backend, held_job, uninterrupted, data_dir):
    job = held_job(backend)
    victim = job.pids()[HOLD_RANK]
    os.kill(victim, signal.SIGKILL)
    stderr = job.end(timeout=60)
    # the launcher's error, followed by the victim's last lines of stderr where it wrote any
    error = stderr[stderr.rindex("nin train: error: worker rank") :]
    assert error.startswith(f"nin train: error: worker rank {HOLD_RANK} (pid {victim}) was killed by SIGKILL"), error
    assert error.rstrip().endswith("continue with the same command and --resume"), error
    assert_job_ended(job, stderr)
    run_workers(backend, data_dir, job.out, FAULT_WORKERS, FAULT_BATCH, FAULT_EPOCHS, "--resume")
    final = load_checkpoint(job.out / "checkpoint.npz")
    assert [r["world_size"] for r in final.meta["history"]] == [FAULT_WORKERS] * FAULT_EPOCHS
    assert_states_equal(final.state, uninterrupted(backend), f"resumed after the SIGKILL at epoch {HOLD_EPOCH}")


@pytest.mark.parametrize("backend", full_params())
def test_stopped_worker_ends_the_job_within_the_heartbeat_window(backend, held_job):
    job = held_job(backend, NIN_HEARTBEAT_WINDOW_S=str(WINDOW_S))
    victim = job.pids()[HOLD_RANK]
    os.kill(victim, signal.SIGSTOP)
    stopped = time.monotonic()
    stderr = job.end(timeout=WINDOW_S + STOP_GRACE_S + 30)
    took = time.monotonic() - stopped
    last = stderr.strip().splitlines()[-1]
    resume = f"The last checkpoint in {job.out} is intact: continue with the same command and --resume"
    silent = (
        f"nin train: error: worker rank {HOLD_RANK} (pid {victim}) sent no heartbeat for {WINDOW_S} s "
        f"(NIN_HEARTBEAT_WINDOW_S): it is stopped (SIGSTOP, Ctrl-Z or a debugger); stopped the job. {resume}"
    )
    # an engine whose collectives time out on the silent peer first (TensorFlow's) fails rank 0
    # before the window ends; the error still names the stopped rank as the cause
    peer_failed = re.fullmatch(
        rf"nin train: error: worker rank {HOLD_RANK} \(pid {victim}\) is stopped \(SIGSTOP, Ctrl-Z or a debugger\), "
        rf"and worker rank 0 failed waiting for it \(exit status \d+\); stopped the job\. {re.escape(resume)}",
        last,
    )
    assert last == silent or peer_failed, stderr[-3000:]
    # by the heartbeat: its last heartbeat came at most HEARTBEAT_S before the stop; then every worker
    # ends on its SIGTERM at once (the stopped one continued to take it), well before the SIGKILL of
    # STOP_GRACE_S later; by the engine: before the window ends
    earliest = 0.0 if peer_failed else WINDOW_S - HEARTBEAT_S - 0.5
    assert earliest <= took <= WINDOW_S + STOP_GRACE_S / 2, f"the job ended {took:.1f} s after the stop"
    assert_job_ended(job, stderr)
