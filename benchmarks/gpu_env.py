"""The GPU check's prerequisites (``benchmarks/gpu_check.sh`` runs this first): what this Python
has, which of torch and JAX see a GPU, and why one does not.

    python benchmarks/gpu_env.py [--require-gpu torch,jax]

Prints one line per package (its version, or why it cannot be imported), one per GPU framework
(``torch: GPU NVIDIA H100 80GB HBM3 ×1 …`` or ``jax: no GPU visible: <why>``), and last
``gpus: <the frameworks that see one>``.  The reason names the cause it can tell: a CPU-only
build (torch without CUDA, JAX without a CUDA plugin), a driver the build cannot use, a device
hidden by ``CUDA_VISIBLE_DEVICES`` or ``JAX_PLATFORMS``.  Whether a framework sees a GPU is
decided by its backend's own ``gpu_available``, as every ``nin`` command decides it.

Exit status: 0 when the prerequisites hold (NumPy, ``nin``, and torch or JAX with its backend)
and every framework of ``--require-gpu`` sees a GPU; 1 when one of those sees none; 2 when a
prerequisite is missing (each named).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import warnings
from pathlib import Path

# the frameworks whose backends run on a GPU in this check (the records with gpu_probe=True,
# nin.frameworks.gpu_probes(); named here because this check runs before nin is importable)
FRAMEWORKS = ("torch", "jax")
# the GPU machine's other packages (modules), reported for the record: none is a prerequisite
OTHERS = ("flax", "optax", "safetensors", "onnx", "onnxruntime", "matplotlib", "PIL", "imageio", "tqdm")
# what the GPU machine lacks; the check must not need them
ABSENT_THERE = ("tensorflow", "mxnet", "pytest", "hypothesis", "mlxtend", "imageio_ffmpeg")


def _installed(module: str) -> str:
    """A module's distribution and version, found without importing it (importing TensorFlow
    takes seconds), or "-" where it is not installed."""
    if importlib.util.find_spec(module) is None:
        return "-"
    dists = importlib.metadata.packages_distributions().get(module, [])
    return ", ".join(f"{d} {importlib.metadata.version(d)}" for d in dists) or "installed (no distribution metadata)"


def _version(module: str) -> str:
    """A module's version after importing it, or why it cannot be imported."""
    try:
        return getattr(importlib.import_module(module), "__version__", "(no version)")
    except Exception as e:  # noqa: BLE001 - any import failure is reported, not raised
        return f"- ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"


def _hidden_by_environment() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"; CUDA_VISIBLE_DEVICES={visible!r} hides devices" if visible is not None and not visible.strip() else ""


def torch_gpu() -> tuple[bool, str]:
    """(sees a GPU, what it sees or why it sees none) for torch."""
    import torch

    from nin.frameworks import get_backend

    with warnings.catch_warnings(record=True) as caught:  # torch warns once why CUDA failed to start
        warnings.simplefilter("always")
        seen = get_backend("torch").gpu_available()
    if seen:
        count = torch.cuda.device_count()
        return (
            True,
            f"GPU {torch.cuda.get_device_name(0)} ×{count} (torch {torch.__version__}, CUDA {torch.version.cuda})",
        )
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build (no CUDA): install a CUDA build of torch"
    said = next((str(w.message).splitlines()[0] for w in caught if "CUDA" in str(w.message)), "")
    return False, (
        f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable device "
        f"({said or 'no NVIDIA driver loaded, or one too old for this CUDA'}){_hidden_by_environment()}"
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _cuda_plugins() -> list[str]:
    """The installed JAX CUDA plugins (``jax-cuda12-plugin``, ``jax-cuda13-plugin`` …)."""
    names = {(d.metadata["Name"] or "").lower().replace("_", "-") for d in importlib.metadata.distributions()}
    return sorted(n for n in names if n.startswith("jax-cuda") and n.endswith("plugin"))


def jax_gpu() -> tuple[bool, str]:
    """(sees a GPU, what it sees or why it sees none) for JAX."""
    import jax

    from nin.frameworks import get_backend

    adapter = get_backend("jax")
    records = _Records()  # JAX logs why a platform failed to start, then falls back to the CPU
    logging.getLogger("jax._src.xla_bridge").addHandler(records)
    seen = adapter.gpu_available()
    plugins = _cuda_plugins()
    if seen:
        devices = jax.devices("gpu")
        return True, f"GPU {devices[0].device_kind} ×{len(devices)} (jax {jax.__version__}, {', '.join(plugins)})"
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms and "cuda" not in platforms and "gpu" not in platforms:
        return False, f"JAX_PLATFORMS={platforms!r} leaves out the GPU"
    if not plugins:
        return False, (
            f"jax {jax.__version__} has no CUDA plugin (jax-cuda12-plugin or jax-cuda13-plugin): a CPU-only "
            f"install; pip install 'jax[cuda13]' (or 'jax[cuda12]' for a CUDA 12 driver)"
        )
    said = next((m.splitlines()[0] for m in records.messages if "cuda" in m.lower() or "gpu" in m.lower()), "")
    return False, (
        f"the CUDA plugin ({', '.join(plugins)}) is installed but finds no usable device "
        f"({said or 'no NVIDIA driver loaded, or one too old for the plugin'}){_hidden_by_environment()}"
    )


PROBES = {"torch": torch_gpu, "jax": jax_gpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--require-gpu",
        default="",
        metavar="LIST",
        help=f"comma-separated frameworks that must see a GPU ({', '.join(FRAMEWORKS)})",
    )
    args = parser.parse_args(argv)
    required = [name for name in args.require_gpu.split(",") if name]
    unknown = [name for name in required if name not in FRAMEWORKS]
    if unknown:
        parser.error(f"--require-gpu takes {' and/or '.join(FRAMEWORKS)}; got {', '.join(unknown)}")
    missing: list[str] = []
    print(f"python: {sys.version.split()[0]} ({sys.executable})")
    numpy = _version("numpy")
    print(f"numpy: {numpy}")
    if numpy.startswith("-"):
        missing.append(f"numpy {numpy[2:]}")
    try:
        import nin
        from nin.frameworks import get_backend
    except Exception as e:  # noqa: BLE001 - reported as a missing prerequisite
        print(f"nin: - ({type(e).__name__}: {e})")
        missing.append("nin (the package of this checkout): not importable")
        get_backend = None
    else:
        here = Path(__file__).resolve().parents[1]
        where = Path(nin.__file__).resolve().parent
        print(f"nin: {nin.__version__} from {where}")
        if not where.is_relative_to(here):
            missing.append(f"nin: imported from {where}, not from this checkout {here}")
    for name in OTHERS:
        print(f"{name}: {_installed(name)}")
    for name in ABSENT_THERE:
        print(f"{name} (absent on the GPU machine): {_installed(name)}")
    gpus, usable, why_not = [], [], {}
    for name in FRAMEWORKS:
        version = _version(name)
        if version.startswith("-"):
            why_not[name] = f"{name} is not importable {version[2:]}"
        elif get_backend is None:
            why_not[name] = "nin is not importable, and with it no backend"
        else:
            try:
                seen, what = PROBES[name]()
            except Exception as e:  # noqa: BLE001 - a backend that cannot start is named with its error
                why_not[name] = f"its nin backend is unavailable ({type(e).__name__}: {e})"
            else:
                usable.append(name)
                if seen:
                    gpus.append(name)
                    print(f"{name}: {what}")
                    continue
                why_not[name] = what
        print(f"{name}: {version}, no GPU visible: {why_not[name]}")
    if not usable:
        missing.append(f"neither {' nor '.join(FRAMEWORKS)} can be imported with its nin backend")
    print(f"gpus: {' '.join(gpus) or '-'}")
    if missing:
        print(f"missing prerequisites: {'; '.join(missing)}", file=sys.stderr)
        return 2
    lacking = [name for name in required if name not in gpus]
    if lacking:
        reasons = "; ".join(f"no GPU visible to {name}: {why_not[name]}" for name in lacking)
        print(f"--require-gpu {args.require_gpu}: {reasons}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
