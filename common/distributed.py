"""Data-parallel training, written once for the four backends: the cluster description, the
launcher of local workers, the split of a global batch, and the worker's loop.

Each backend's engine lives in ``frameworks/<name>/distributed.py`` (PyTorch DDP,
``tf.distribute.MultiWorkerMirroredStrategy``, ``jax.distributed`` with a sharded ``jit``,
MXNet's ``dist_sync`` kvstore), with the same public names in all four:

* ``initialize(cluster)`` joins the job (before any other framework operation);
* ``Trainer(spec, recipe, cluster)`` is the ``nin.train.Trainer`` contract over the job, with
  ``DataParallel`` mixed in: ``step(x, y, lr)`` takes the *global* batch, trains on this
  worker's shard (``DataParallel.train_shard``), lets the framework average the gradients and
  returns the global mean loss and correct count; ``evaluate`` returns global sums; states are
  replicated; ``sum_over_workers`` adds numbers over the workers with the engine's collective;
* ``shutdown()`` leaves the job.

    nin train --backend torch --model nin_tiny --data synthetic:3x16x16 --workers 2 --out runs/d

Semantics (docs/distributed.md): worker ``r`` of ``N`` trains on rows ``r·B/N … (r+1)·B/N``
of the same seeded global batches one process reads; a last, smaller batch is padded to a
multiple of ``N`` with rows of weight 0, so the averaged gradient is the one-process gradient
of the mean loss; dropout is seeded from ``(seed, epoch, rank)``; only rank 0 writes.  Each
epoch's record (metrics and checkpoint) holds the world size and the real rows each rank
trained on, summed over the workers by the engine (``DataParallel.epoch_record``).

``nin train --workers N`` is orchestrated here: ``plan`` makes every check a job allows before
a process starts, and the local launcher (``launch``) starts N workers
(``python -m nin.distributed``, ``run_worker``), giving each the run's settings explicitly (a
``TrainJob`` as JSON) with its rank, the world size and the coordinator's address; nothing of
the launcher's command line is passed on or rewritten.  The launcher watches its workers: one
that exits, dies, or stops sending its heartbeat for ``heartbeat_window()`` seconds (stopped
with SIGSTOP, or hung with the interpreter lock held) ends the job with an error naming its rank.
A worker of a multi-host job (``nin train --rank R --world-size N --coordinator HOST:PORT``, or
torchrun's variables) runs ``train_worker`` from the command itself.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import NinError

if TYPE_CHECKING:
    from .spec import NiNSpec
    from .train import Recipe

# How long a worker waits for the others to join, and for one collective: past it, it stops
# with an error instead of hanging (a lost peer on another host).
DEFAULT_TIMEOUT_S = 120.0
# How long the launcher lets the other workers shut down before it kills them.
STOP_GRACE_S = 10.0
# How long the other workers may run on after one has finished (they finish together).
FINISH_WINDOW_S = 60.0
# the last lines of a failed worker's stderr that the launcher's error repeats
TAIL_LINES = 12
# torchrun's variables, honoured when no --rank/--world-size/--coordinator flag is given.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# A launched worker writes a byte to the launcher every HEARTBEAT_S seconds (from a thread, so
# while it waits in a collective too); one silent for the window ends the job.
HEARTBEAT_S = 1.0
HEARTBEAT_WINDOW_S = 30.0
HEARTBEAT_FD = "NIN_HEARTBEAT_FD"  # the pipe's write end, set by the launcher for each worker
HEARTBEAT_WINDOW_ENV = "NIN_HEARTBEAT_WINDOW_S"


class DistributedError(NinError, RuntimeError):
    """A job that cannot start or that lost a worker."""


@dataclass(frozen=True)
class Cluster:
    """Where this worker stands in a job: its rank, the number of workers, the coordinator's
    address (rank 0's host; the rendezvous of every engine), the addresses the workers listen
    on where an engine needs them (``peers``, TensorFlow), the device and the timeout."""

    rank: int
    world_size: int
    host: str
    port: int
    peers: tuple[str, ...] = ()
    device: str = "cpu"
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise DistributedError(
                f"rank must be in [0, world size {self.world_size}); got rank {self.rank}. "
                f"Give each of the N workers one of --rank 0 … N-1"
            )
        if not 0 < self.port < 65536:
            raise DistributedError(f"the coordinator port must be in 1…65535; got {self.port}")

    @property
    def coordinator(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` → (host, port), with a clear error otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(
            f"--coordinator must be HOST:PORT with a port in 1…65535, e.g. 10.0.0.1:29500; got {text!r}"
        )
    return host, int(port)


def cluster_from(
    rank: int | None,
    world_size: int | None,
    coordinator: str | None,
    device: str = "cpu",
    env: dict[str, str] | None = None,
) -> Cluster | None:
    """The cluster from the command line, else from torchrun's variables (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); None when neither describes one.
    ``NIN_PEERS`` (comma-separated ``host:port``, set by the local launcher) lists the
    workers' own addresses."""
    env = os.environ if env is None else env
    given = {"--rank": rank, "--world-size": world_size, "--coordinator": coordinator}
    if all(v is None for v in given.values()):
        if not all(env.get(k) for k in TORCHRUN_ENV):
            return None
        try:
            rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
        except ValueError:
            raise DistributedError(
                f"RANK and WORLD_SIZE must be integers; got {env['RANK']!r}, {env['WORLD_SIZE']!r}"
            ) from None
        coordinator = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    missing = [flag for flag, value in given.items() if value is None]
    if any(v is not None for v in given.values()) and missing:
        raise DistributedError(
            f"a worker of a multi-process job needs --rank, --world-size and --coordinator; missing {', '.join(missing)}"
        )
    if world_size < 1:
        raise DistributedError(f"--world-size must be ≥ 1; got {world_size}")
    host, port = parse_address(coordinator)
    peers = tuple(p for p in env.get("NIN_PEERS", "").split(",") if p)
    return Cluster(rank, world_size, host, port, peers, device)


def check_split(batch_size: int, world_size: int) -> int:
    """The per-worker batch ``B / N``; a clear error when ``B`` is not a multiple of ``N``."""
    if world_size < 1:
        raise DistributedError(f"the number of workers must be ≥ 1; got {world_size}")
    if batch_size % world_size:
        lower, upper = batch_size - batch_size % world_size, batch_size + world_size - batch_size % world_size
        raise DistributedError(
            f"the global batch {batch_size} does not split evenly over {world_size} workers; "
            f"use --batch-size {lower or upper} or {upper}, or another number of workers"
        )
    return batch_size // world_size


@dataclass(frozen=True)
class TrainJob:
    """What every worker of a data-parallel job trains, given to it explicitly: ``launch`` passes
    it to each worker as JSON (``to_json``) beside its rank, so a worker never reparses the
    launcher's command line.  The spec is the zoo model's, built for the data's channels and
    classes at ``input_size``; ``recipe`` is a ``nin.train.Recipe``."""

    backend: str
    model: str
    data: str
    input_size: tuple[int, ...]
    in_channels: int
    num_classes: int
    recipe: Recipe
    out: str
    resume: bool = False
    progress: bool = True
    device: str = "cpu"

    def spec(self) -> NiNSpec:
        """The spec the job trains."""
        from .zoo import get_spec

        return get_spec(
            self.model, in_channels=self.in_channels, num_classes=self.num_classes, input_size=self.input_size
        )

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "recipe": self.recipe.to_json()})

    @classmethod
    def from_json(cls, text: str) -> TrainJob:
        from .train import Recipe

        data = json.loads(text)
        return cls(**{**data, "input_size": tuple(data["input_size"]), "recipe": Recipe.from_json(data["recipe"])})


def check_job(backend: str, batch_size: int, world_size: int, one_run: bool = True) -> None:
    """Every check a worker or its launcher can make before a job starts: a backend that trains
    in one process, several seeds or pictures per epoch (``one_run`` False), a batch that does
    not split, a backend without a data-parallel part or whose framework is missing; each a
    one-line error."""
    from .frameworks import backends_with_part, part_unavailable_reason

    if backend == "numpy":
        having = ", ".join(backends_with_part("distributed"))
        raise NinError(f"the numpy backend trains in one process; use --workers with one of: {having}")
    if not one_run:
        raise NinError("data-parallel training runs one seed and no --visualize-every; use --seed")
    check_split(batch_size, world_size)
    reason = part_unavailable_reason(backend, "distributed")  # the record lacks it, or a framework is missing
    if reason:
        raise NinError(reason)


def plan(
    backend: str,
    batch_size: int,
    workers: int,
    rank: int | None,
    world_size: int | None,
    coordinator: str | None,
    device: str = "cpu",
    one_run: bool = True,
) -> Cluster | None:
    """How ``nin train`` runs: as one worker of a job (``--rank``/``--world-size``/
    ``--coordinator``, else torchrun's variables) — its ``Cluster`` —, or alone or as the
    launcher of ``workers`` local workers (None); every check that can be made before a
    process starts.  ``one_run`` is False for several seeds or pictures per epoch, which a
    data-parallel job does not do."""
    cluster = cluster_from(rank, world_size, coordinator, device)
    if cluster is None and workers == 1:
        return None
    if workers < 1:
        raise NinError(f"--workers must be ≥ 1; got {workers}")
    if cluster is not None and workers > 1:
        raise NinError("--workers N starts N local workers itself; leave out --rank, --world-size and --coordinator")
    check_job(backend, batch_size, cluster.world_size if cluster else workers, one_run)
    if cluster is not None and cluster.rank == 0 and rank is not None:
        check_port_free(cluster.host, cluster.port)
    return cluster


def local_shard(x: np.ndarray, y: np.ndarray, rank: int, world_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker ``rank``'s rows of a global batch and their weights (1 for a real example).

    A batch of ``n`` rows, ``n`` a multiple of ``world_size``, gives every worker ``n / N``
    consecutive rows.  A smaller last batch is first padded with copies of its last row of
    weight 0.  A backend's loss on its shard is ``Σ weight·loss_i / n``: summed over workers it
    is the global batch's mean loss, so averaging (or summing) gradients gives its gradient."""
    n = len(y)
    per = -(-n // world_size)
    weights = np.zeros(per * world_size, np.float32)
    weights[:n] = 1.0
    if per * world_size != n:
        pad = per * world_size - n
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        y = np.concatenate([y, np.repeat(y[-1:], pad, axis=0)])
    rows = slice(rank * per, (rank + 1) * per)
    return x[rows], y[rows], weights[rows]


def evaluate_shard(
    evaluate: Callable[[np.ndarray, np.ndarray], tuple[float, int]],
    sum_over_workers: Callable[[Sequence[float]], list[float]],
    x: np.ndarray,
    y: np.ndarray,
    cluster: Cluster,
) -> tuple[float, int]:
    """(summed loss, correct) of a global evaluation batch over all workers: each worker runs the
    single-process ``evaluate`` on its real rows (``local_shard``'s padding left out) and
    ``sum_over_workers`` adds the workers' results with the engine's own collective."""
    x, y, weight = local_shard(x, y, cluster.rank, cluster.world_size)
    real = int(weight.sum())
    loss_sum, correct = evaluate(x[:real], y[:real]) if real else (0.0, 0)
    loss_sum, correct = sum_over_workers([loss_sum, correct])
    return loss_sum, round(correct)


class DataParallel:
    """What the four engines' ``Trainer`` classes share (mixed in before the backend's
    single-process ``Trainer``): this worker's shard of a training batch, its real rows counted,
    and the job's part of each epoch's record.  A subclass sets ``cluster`` and implements
    ``sum_over_workers`` with its engine's collective."""

    cluster: Cluster
    _rows = 0

    def sum_over_workers(self, values: Sequence[float]) -> list[float]:
        """``values`` summed element-wise over every worker of the job (each calls it at the same
        point), with the engine's own collective; exact for integers below 2²⁴."""
        raise NotImplementedError

    def train_shard(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``local_shard`` of a global training batch for this worker, counting its real rows."""
        x, y, weight = local_shard(x, y, self.cluster.rank, self.cluster.world_size)
        self._rows += int(weight.sum())
        return x, y, weight

    def epoch_record(self) -> dict[str, Any]:
        """What ``nin.train.fit`` adds to an epoch's record (metrics.jsonl and the checkpoint):
        ``world_size`` and ``rows_per_rank``, the real training rows each rank took since the
        last call.  Every worker puts its own count at its rank's place and the engine sums the
        vectors, so the list reaches rank 0 only through the job itself."""
        counts = [0.0] * self.cluster.world_size
        counts[self.cluster.rank] = float(self._rows)
        self._rows = 0
        return {
            "world_size": self.cluster.world_size,
            "rows_per_rank": [round(c) for c in self.sum_over_workers(counts)],
        }


def engine(backend: str) -> ModuleType:
    """The backend's data-parallel part (its ``distributed.py``), with the registry's one-line
    reason where the backend lacks one or its framework is missing."""
    from .frameworks import get_part

    return get_part(backend, "distributed")


def train_worker(
    backend: str,
    spec,
    dataset,
    recipe,
    out_dir: str | Path,
    cluster: Cluster,
    resume: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One worker's part of a job: join it, build the backend's distributed ``Trainer`` and run
    ``nin.train.fit`` on it; only rank 0 writes metrics, curves and checkpoints (and shows
    progress).  Every worker reads the checkpoint on ``resume``, so on several hosts ``out_dir``
    must be shared, or hold a copy of it."""
    check_split(recipe.batch_size, cluster.world_size)
    eng = engine(backend)
    eng.initialize(cluster)
    try:
        history = _fit_worker(eng, spec, dataset, recipe, out_dir, cluster, resume, progress)
    except NinError:
        _leave_lost_job(eng)
        raise
    except Exception as e:  # the engine's own error: gloo, gRPC, XLA's or ps-lite's, when a peer is gone
        _leave_lost_job(eng)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DistributedError(
            f"rank {cluster.rank} stopped: {type(e).__name__} from {backend}'s engine ({first[:300]}); "
            f"if another worker was lost, its rank and last lines are in the launcher's error"
        ) from e
    eng.shutdown()
    return history


def _leave_lost_job(eng: ModuleType) -> None:
    """Leave a job that has failed: the engine's orderly shutdown waits for every peer (a
    barrier), which a lost peer never reaches; its errors say nothing new."""
    try:
        eng.shutdown()
    except Exception:  # noqa: BLE001, S110 - the job is already lost; the first error is the one reported
        pass


def _fit_worker(eng: ModuleType, spec, dataset, recipe, out_dir, cluster: Cluster, resume: bool, progress: bool):
    """``fit`` on the engine's ``Trainer``, which is gone when this returns: an engine may
    leave the job only once nothing holds it (MXNet's kvstore)."""
    from .train import fit

    trainer = eng.Trainer(spec, recipe, cluster)
    lead = cluster.rank == 0
    return fit(trainer, dataset, recipe, out_dir, resume=resume, progress=progress and lead, write=lead)


# -- the local launcher ---------------------------------------------------------------------


def heartbeat_window(env: dict[str, str] | None = None) -> float:
    """How long the launcher lets a worker go without a heartbeat: ``NIN_HEARTBEAT_WINDOW_S``
    seconds, by default ``HEARTBEAT_WINDOW_S``."""
    env = os.environ if env is None else env
    text = env.get(HEARTBEAT_WINDOW_ENV)
    if text is None:
        return HEARTBEAT_WINDOW_S
    try:
        window = float(text)
    except ValueError:
        window = float("nan")
    if not window >= 2 * HEARTBEAT_S:
        raise DistributedError(
            f"{HEARTBEAT_WINDOW_ENV} must be a number of seconds ≥ {2 * HEARTBEAT_S:.0f} (the heartbeat comes every "
            f"{HEARTBEAT_S:.0f} s); got {text!r}. Unset it for the default {HEARTBEAT_WINDOW_S:.0f} s"
        )
    return window


def start_heartbeat() -> None:
    """In a worker started by ``launch``: write a byte to the launcher's pipe every
    ``HEARTBEAT_S`` seconds from a daemon thread, until the launcher closes it.  The thread
    needs the interpreter only between sleeps, so it beats while the worker waits in a
    collective (the engines release the interpreter lock there); a stopped process, or one
    that holds the lock, falls silent.  Does nothing outside a launched worker."""
    fd = os.environ.pop(HEARTBEAT_FD, None)  # popped: a worker's own children do not hold the pipe
    if fd is None:
        return
    os.set_blocking(int(fd), False)

    def beat() -> None:
        while True:
            try:
                os.write(int(fd), b".")
            except BlockingIOError:  # the launcher reads every 0.2 s; a full pipe means it is busy
                pass
            except OSError:  # the launcher is gone
                return
            time.sleep(HEARTBEAT_S)

    threading.Thread(target=beat, name="nin-heartbeat", daemon=True).start()


def _heartbeat_came(fd: int) -> bool:
    """Whether the worker wrote to its heartbeat pipe since the last look (the pipe emptied)."""
    came = False
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return came
        if not chunk:  # the worker's end is closed: it has ended; its exit code says how
            return came
        came = True


def end_on_sigterm() -> None:
    """Give SIGTERM back its default action (end the process at once).  An engine's coordination
    service can take it over to sync a preemption point between processes (JAX's preemption
    sync manager, TensorFlow's multi-worker coordination); a worker then outlives the
    launcher's SIGTERM until the SIGKILL ``STOP_GRACE_S`` later.  A worker of this job keeps no
    state a SIGTERM could save (rank 0 writes each checkpoint whole, at the end of an epoch), so
    a backend calls this once its engine has joined the job."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _process_state(pid: int) -> str:
    """The one-letter state of process ``pid`` from /proc (``T``/``t``: stopped), "" where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


STOPPED = "it is stopped (SIGSTOP, Ctrl-Z or a debugger)"
STOPPED_STATES = ("T", "t")  # /proc's stopped, and stopped by a tracer


def _describe_silence(rank: int, pid: int, window: float) -> str:
    """One line on a worker that sent no heartbeat for ``window`` seconds, with its state."""
    state = _process_state(pid)
    if state in STOPPED_STATES:
        how = STOPPED
    else:
        how = f"it is hung (process state {state or 'unknown'}: a call that holds the interpreter lock, or no CPU time)"
    return f"worker rank {rank} (pid {pid}) sent no heartbeat for {window:.0f} s ({HEARTBEAT_WINDOW_ENV}): {how}"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free on ``host`` a moment ago (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def check_port_free(host: str, port: int) -> None:
    """A clear error when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:  # e.g. a name this host cannot bind: the engine will say
                return
            raise DistributedError(
                f"the coordinator port {host}:{port} is in use ({e.strerror}); choose another --coordinator port, "
                f"or leave it out with --workers N and a free one is picked"
            ) from None


class _StderrTail:
    """Passes a worker's stderr on to the launcher's, line by line as it comes, and keeps its
    last ``TAIL_LINES`` lines for the error that reports the worker's end."""

    def __init__(self, stream):
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                self.lines.append(line.rstrip())
                sys.stderr.write(line)
                sys.stderr.flush()

    def last_lines(self, wait_s: float = 2.0) -> list[str]:
        """The last lines, after waiting up to ``wait_s`` for the rest of the stream (a helper
        process the worker started may hold it open after the worker is gone)."""
        self._thread.join(wait_s)
        return [line for line in self.lines if line]


def _describe_exit(rank: int, pid: int, code: int, tail: list[str]) -> str:
    if code < 0:
        how = f"worker rank {rank} (pid {pid}) was killed by {signal.Signals(-code).name}"
    else:
        how = f"worker rank {rank} (pid {pid}) exited with status {code}"
    if not tail:
        return f"{how}, writing nothing to stderr. "
    return f"{how}; the last lines of its stderr:\n" + "\n".join(f"    {line}" for line in tail) + "\n"


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every worker's process group (a worker's helpers too), then SIGKILL what is left
    after ``STOP_GRACE_S``.  A SIGCONT follows the SIGTERM, as a shell's ``kill`` sends it: a
    stopped process would hold the SIGTERM pending until the SIGKILL."""
    for signals, wait in (((signal.SIGTERM, signal.SIGCONT), STOP_GRACE_S), ((signal.SIGKILL,), STOP_GRACE_S)):
        for p in procs:
            for sig in signals:
                if p.poll() is None or sig == signal.SIGKILL:
                    try:
                        os.killpg(p.pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.1)


def launch(job: TrainJob, workers: int, host: str = "127.0.0.1") -> int:
    """Run ``job`` as ``workers`` local processes (``python -m nin.distributed``), each given
    the job as JSON, its ``--rank``, the ``--world-size`` and a free ``--coordinator`` port;
    return 0 when all of them succeed.

    The split is checked before any process starts.  The workers' stderr reaches ours line by
    line.  When a worker fails or dies, or sends no heartbeat for ``heartbeat_window()`` seconds
    (stopped, or hung), the others are stopped (SIGTERM, then SIGKILL after ``STOP_GRACE_S``)
    and the error names its rank and how it ended (a failed worker's last ``TAIL_LINES`` lines
    of stderr too); the last checkpoint, written atomically by rank 0, stays as it was."""
    check_split(job.recipe.batch_size, workers)
    out_dir = job.out
    window = heartbeat_window()
    ports = free_ports(workers + 1, host)
    peers = ",".join(f"{host}:{p}" for p in ports[1:])
    procs: list[subprocess.Popen] = []
    tails: list[_StderrTail] = []
    beats: list[int] = []  # the read end of each worker's heartbeat pipe
    heard: list[float] = []  # when each worker was last heard (or started)
    finished: float | None = None
    resume = f"The last checkpoint in {out_dir} is intact: continue with the same command and --resume"
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for rank in range(workers):
            command = [
                sys.executable, "-m", "nin.distributed", job.to_json(),
                "--rank", str(rank), "--world-size", str(workers), "--coordinator", f"{host}:{ports[0]}",
            ]  # fmt: skip
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            beats.append(read_end)
            env = dict(os.environ, NIN_PEERS=peers, **{HEARTBEAT_FD: str(write_end)})
            try:
                procs.append(
                    subprocess.Popen(
                        command, env=env, start_new_session=True, stderr=subprocess.PIPE, pass_fds=(write_end,)
                    )
                )
            finally:
                os.close(write_end)
            heard.append(time.monotonic())
            tails.append(_StderrTail(procs[-1].stderr))
        while True:
            now = time.monotonic()
            heard = [now if _heartbeat_came(fd) else last for fd, last in zip(beats, heard, strict=True)]
            codes = [p.poll() for p in procs]
            # a worker killed by a signal first: its peers then fail too, with status 2
            failed = sorted(((rank, code) for rank, code in enumerate(codes) if code not in (None, 0)), key=_by_signal)
            if failed:
                rank, code = failed[0]
                # an engine whose collectives time out on a silent peer (TensorFlow's) fails the
                # waiting worker before the heartbeat window ends: name the stopped peer, the cause
                stopped = [
                    r for r, c in enumerate(codes) if c is None and _process_state(procs[r].pid) in STOPPED_STATES
                ]
                if code > 0 and stopped:
                    peer = stopped[0]
                    _stop(procs)
                    raise DistributedError(
                        f"worker rank {peer} (pid {procs[peer].pid}) {STOPPED.removeprefix('it ')}, and worker rank "
                        f"{rank} failed waiting for it (exit status {code}); stopped the job. {resume}"
                    )
                _stop(procs)
                raise DistributedError(
                    f"{_describe_exit(rank, procs[rank].pid, code, tails[rank].last_lines())}"
                    f"Stopped the other workers. {resume}"
                )
            silent = [rank for rank, code in enumerate(codes) if code is None and now - heard[rank] > window]
            if silent:
                rank = min(silent, key=heard.__getitem__)
                message = _describe_silence(rank, procs[rank].pid, window)
                _stop(procs)
                raise DistributedError(f"{message}; stopped the job. {resume}")
            if all(code == 0 for code in codes):
                return 0
            if finished is None and 0 in codes:
                finished = now
            if finished is not None and now - finished > FINISH_WINDOW_S:
                late = [rank for rank, code in enumerate(codes) if code is None]
                _stop(procs)
                raise DistributedError(
                    f"worker rank {late[0]} was still running {FINISH_WINDOW_S:.0f} s after another one finished; "
                    f"stopped it. The checkpoint in {out_dir} is complete"
                )
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if any(p.poll() is None for p in procs):
            _stop(procs)
        for fd in beats:
            os.close(fd)


def _by_signal(failure: tuple[int, int]) -> bool:
    """Sort key of (rank, exit code): a death by a signal (code < 0) before an exit with a status."""
    return failure[1] > 0


def _interrupt(signum: int, frame) -> None:
    """SIGTERM to the launcher stops its workers, as Ctrl-C does."""
    raise KeyboardInterrupt


# -- a launched worker ------------------------------------------------------------------------


def run_worker(argv: list[str]) -> int:
    """A worker that ``launch`` started: ``JOB_JSON --rank R --world-size N --coordinator
    HOST:PORT``; the job's checks, then its part of the job.  Errors are one line on stderr
    (the launcher repeats a failed worker's last lines), with exit status 2; Ctrl-C or the
    launcher's SIGTERM, 130."""
    import argparse

    start_heartbeat()  # first, so that the launcher hears this worker while it loads
    parser = argparse.ArgumentParser(prog="nin train (a worker of --workers N)")
    parser.add_argument("job")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--coordinator", required=True)
    args = parser.parse_args(argv)
    try:
        job = TrainJob.from_json(args.job)
        check_job(job.backend, job.recipe.batch_size, args.world_size)
        cluster = cluster_from(args.rank, args.world_size, args.coordinator, job.device)
        from .loaders import load_dataset

        dataset = load_dataset(job.data, input_size=job.input_size)
        train_worker(job.backend, job.spec(), dataset, job.recipe, job.out, cluster, job.resume, job.progress)
    except NinError as e:
        print(f"nin train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nin train: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # ``python -m nin.distributed``: run the importable module's copy, whose
    # classes the backends' distributed.py subclass (``from nin.distributed import DataParallel``)
    from nin.distributed import run_worker as _run_worker

    sys.exit(_run_worker(sys.argv[1:]))
