"""``nin bench``'s worker processes and their messages: each case (a backend's model and
``Trainer``, the d2l book's code, a framework's GEMM probe) lives in its own warm process
(``python -m nin.bench worker``, ``serve``), set up by its first line on stdin and asked for one
round per later line; ``Worker`` is its handle in the parent.  Every message is one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from ..shapes import mac_count
from ..zoo import get_spec

PEAK_SIZES = (2048,)
# a GPU's GEMMs reach their peak only on large matrices: an H100 multiplies two 2048² float32
# matrices in well under a millisecond, where launch and synchronisation weigh in; 16384² takes
# 8.8 TFLOP (a few GiB of device memory per probe process)
GPU_PEAK_SIZES = (8192, 16384)
PEAK_REPEATS = 3


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_time(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(_timed(fn) for _ in range(repeats))


def _probe_name(framework: str, dtype: str) -> str:
    return framework if dtype == "float32" else f"{framework} {dtype}"


def probe_dtype(name: str) -> str:
    """The dtype of a probe named by ``_probe_name``."""
    return name.rpartition(" ")[2] if " " in name else "float32"


def peak_sizes(device: str) -> tuple[int, ...]:
    """The matrix sizes of the GEMM probes on ``device``: ``PEAK_SIZES`` on the CPU,
    ``GPU_PEAK_SIZES`` on a GPU."""
    return GPU_PEAK_SIZES if device == "gpu" else PEAK_SIZES


class _Probe:
    """One framework's GEMMs: ``measure`` gives ``{probe name: GFLOP/s}``, for each dtype the
    best over ``sizes`` of the best of ``PEAK_REPEATS`` products (after one untimed).  One
    random pair at the smallest size, tiled up to each larger one, serves every size and dtype:
    drawing 2·16384² normal floats takes 10 s or more, tiling a fraction of one (a GEMM's speed
    does not depend on its values)."""

    def __init__(self, framework: str, device: str, precision: str, threads: int, sizes: list[int]):
        from ..frameworks import backend_precisions, get_backend

        dtypes = ["float32"]
        if framework != "numpy":
            adapter = get_backend(framework)
            adapter.set_threads(threads)
            adapter.device_name(device)  # a device this framework cannot use fails here, before any work
            if precision != "float32" and precision in backend_precisions(framework):
                dtypes.append(precision)
        rng = np.random.default_rng(0)
        smallest = min(sizes)
        pair = [rng.standard_normal((smallest, smallest), dtype=np.float32) for _ in range(2)]
        self.products: dict[str, list[tuple[int, Callable[[], object]]]] = {}
        for dtype in dtypes:
            calls = []
            for n in sizes:
                reps = -(-n // smallest)
                a, b = (np.ascontiguousarray(np.tile(m, (reps, reps))[:n, :n]) for m in pair)
                product = (lambda a=a, b=b: a @ b) if framework == "numpy" else adapter.gemm_probe(a, b, device, dtype)
                calls.append((n, product))
            self.products[_probe_name(framework, dtype)] = calls
        self.setup: dict = {}

    def measure(self, warmup: int, repeats: int) -> dict:
        """``{probe name: GFLOP/s}``; ``warmup`` and ``repeats`` are the cases' and do not
        apply: a probe takes one untimed product and the best of ``PEAK_REPEATS``."""
        return {
            name: max(2 * n**3 / self._best(call) / 1e9 for n, call in calls) for name, calls in self.products.items()
        }

    @staticmethod
    def _best(call: Callable[[], object]) -> float:
        call()
        return min(_timed(call) for _ in range(PEAK_REPEATS))


def gemm_gflops(
    framework: str, device: str = "cpu", precision: str = "float32", threads: int | None = None, sizes=None
) -> dict[str, float]:
    """``{probe name: GFLOP/s}`` of ``framework``'s GEMM ("numpy" or a backend) in this
    process: float32, and bfloat16 too for a bf16 ``precision`` where the backend has it;
    ``sizes`` by default ``peak_sizes(device)``."""
    sizes = list(sizes or peak_sizes(device))
    return _Probe(framework, device, precision, threads or os.cpu_count() or 1, sizes).measure(0, 0)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def has_peer(model: str, input_size: tuple[int, ...], device: str, precision: str) -> bool:
    """Whether the book's code is a peer: it is ``nin_d2l`` at 224×224, float32, on the CPU."""
    return model == "nin_d2l" and tuple(input_size) == (224, 224) and device == "cpu" and precision == "float32"


def _batch(spec, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    from ..checks import sample_batch

    return sample_batch(spec, batch_size), (np.arange(batch_size) % spec.num_classes).astype(np.int64)


class _Ours:
    """A backend's model and ``Trainer``; setup records the first call and first step."""

    def __init__(self, backend, model, batch_size, input_size, device, precision, threads):
        from ..frameworks import backend_trains, get_backend
        from ..train import Recipe

        spec = get_spec(model, input_size=tuple(input_size) if input_size else None)
        adapter = get_backend(backend)
        adapter.set_threads(threads)
        self.x, self.y = _batch(spec, batch_size)
        self.setup = {
            "framework": adapter.framework_version(),
            "device_name": adapter.device_name(device),
            "input_size": list(spec.input_size),
            "macs_per_example": mac_count(spec),
        }
        start = time.perf_counter()
        self.net = adapter.build(spec, seed=0, device=device, precision=precision)
        adapter.forward(self.net, self.x)
        self.setup["first_call_s"] = time.perf_counter() - start
        self.adapter, self.device, self.trainer = adapter, device, None
        if not backend_trains(backend):
            self.setup["train_note"] = f"the {backend} backend has no Trainer (inference only): no training step"
            return
        self.trainer = adapter.Trainer(self.net, Recipe())
        start = time.perf_counter()
        self.trainer.step(self.x, self.y, 0.01)
        self.setup["first_train_step_s"] = time.perf_counter() - start

    def measure(self, warmup: int, repeats: int) -> dict:
        sync = self.adapter.synchronize
        forward = _median_time(lambda: (self.adapter.forward(self.net, self.x), sync()), warmup, repeats)
        out = {"forward_s": forward}
        if self.trainer is not None:
            step = _median_time(lambda: (self.trainer.step(self.x, self.y, 0.01), sync()), warmup, repeats)
            out["train_step_s"] = step
        out["peak_rss_mb"] = peak_rss_mb()
        peak = self.adapter.device_peak_mb(self.device)
        if peak is not None:
            out["device_peak_mb"] = peak
        return out


class _Book:
    """The d2l book's code: forward, a step with its plain SGD, one with the recipe's SGD."""

    def __init__(self, backend, model, batch_size, input_size, device, precision, threads):
        from ..frameworks import get_backend, get_part
        from ..train import Recipe

        adapter = get_backend(backend)  # the framework imported (and patched) as ours is
        adapter.set_threads(threads)
        self.sync = adapter.synchronize
        book = get_part(backend, "d2l_book")
        spec = get_spec(model, input_size=tuple(input_size) if input_size else None)
        self.x, self.y = _batch(spec, batch_size)
        self.book, self.model = book, book.build()
        recipe = Recipe()
        self.plain = book.make_train_step(self.model, lr=0.01)
        self.recipe = book.make_train_step(
            self.model, lr=0.01, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
        book.forward(self.model, self.x)
        self.plain(self.x, self.y)
        self.recipe(self.x, self.y)
        self.setup = {}

    def measure(self, warmup: int, repeats: int) -> dict:
        x, y, sync = self.x, self.y, self.sync
        return {
            "book_forward_s": _median_time(lambda: (self.book.forward(self.model, x), sync()), warmup, repeats),
            "book_train_step_s": _median_time(lambda: (self.plain(x, y), sync()), warmup, repeats),
            "book_recipe_train_step_s": _median_time(lambda: (self.recipe(x, y), sync()), warmup, repeats),
        }


_ROLES = {"probe": _Probe, "ours": _Ours, "book": _Book}


def serve() -> None:
    """A worker: the first line on stdin sets it up (``{"role": ..., **arguments}``), and it
    answers its setup record; each later line asks for one round (``{"warmup", "repeats"}``)
    and gets that round's timings.  Errors are answered as ``{"error": message}``."""
    from ..errors import NinError

    def answer(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    args = json.loads(sys.stdin.readline())
    try:
        case = _ROLES[args.pop("role")](**args)
    except NinError as e:  # a message for the record, not a traceback
        answer({"error": str(e)})
        return
    except Exception as e:  # one broken case must not end the run
        answer({"error": f"{type(e).__name__}: {e}"})
        raise
    answer(case.setup)
    for line in sys.stdin:
        answer(case.measure(**json.loads(line)))


class Worker:
    """A warm worker process for one case: ``start`` sets it up, ``round`` times it once."""

    def __init__(self, role: str, args: dict, env: dict):
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nin.bench", "worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self.error: str | None = None
        self.setup = self._ask(dict(args, role=role))

    def _ask(self, message: dict) -> dict:
        if self.error:
            return {"error": self.error}
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        reply = json.loads(line) if line else {"error": self._last_words()}
        if "error" in reply:
            self.error = reply["error"]
            self.close()
        return reply

    def _last_words(self) -> str:
        self.proc.wait()
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        return lines[-1] if lines else f"exit status {self.proc.returncode}, no output"

    def round(self, warmup: int, repeats: int) -> dict:
        return self._ask({"warmup": warmup, "repeats": repeats})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()
        self._stderr.close()
