"""The tutorials (docs/NN_*.py, Jupytext percent scripts) executed as notebooks and written as
Markdown pages: each code cell, then what it printed and displayed (pictures as files).

A kernel per tutorial (nbclient, ipykernel), ``jobs`` of them at a time; a cell that raises
stops the build with the tutorial's name and the error.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jupytext
from nbclient import NotebookClient
from nbformat import NotebookNode

# display_data / execute_result types written as picture files, best first
PICTURES = {"image/gif": "gif", "image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}
CELL_TIMEOUT_S = 600
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colours in tracebacks and logs


class TutorialError(Exception):
    """A tutorial that did not run to its end."""


@dataclass(frozen=True)
class Executed:
    """A tutorial after its run: the page's Markdown, its pictures by site path, and the time."""

    markdown: str
    pictures: dict[str, bytes]
    seconds: float


def tutorials(docs: Path) -> list[Path]:
    """The tutorial scripts, in order (the names tests/test_docs.py runs)."""
    return sorted(docs.glob("[0-9][0-9]_*.py"))


def kernel_env(jobs: int) -> dict[str, str]:
    """The kernels' environment: one OpenMP thread each when they share the cores."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if jobs > 1:
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


async def _execute(path: Path, cwd: Path, env: dict[str, str], slots: asyncio.Semaphore) -> tuple[NotebookNode, float]:
    """Run one tutorial in a kernel of its own; its stderr (C-level logs, a crash) is kept aside
    and quoted when the tutorial fails."""
    async with slots:
        notebook = jupytext.read(path)
        client = NotebookClient(
            notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
        )
        with tempfile.TemporaryFile() as stderr:
            start = time.perf_counter()
            try:
                await client.async_execute(env=env, stderr=stderr)
            except Exception as e:
                stderr.seek(0)
                tail = stderr.read().decode(errors="replace")[-2000:]
                raise TutorialError(f"{path.name}: {_reason(e)}\n--- kernel stderr (end)\n{tail}") from e
            return notebook, time.perf_counter() - start


async def _execute_all(paths: list[Path], cwd: Path, jobs: int) -> list[tuple[NotebookNode, float]]:
    """Every tutorial's run, in order; at the first failure the others are stopped."""
    slots = asyncio.Semaphore(jobs)
    env = kernel_env(jobs)
    tasks = [asyncio.create_task(_execute(path, cwd, env, slots)) for path in paths]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)  # their kernels shut down
    failed = [str(task.exception()) for task in tasks if task in done and task.exception() is not None]
    if failed:
        raise TutorialError("a tutorial failed at build time:\n" + "\n".join(failed))
    return [task.result() for task in tasks]


def execute(paths: list[Path], cwd: Path, outputs: str, jobs: int = 2) -> dict[Path, Executed]:
    """Run every tutorial in ``paths`` (working directory ``cwd``), ``jobs`` at a time, and
    render each as Markdown whose pictures lie under ``outputs/<tutorial>/``.  Raises
    ``TutorialError`` saying which tutorial failed, where and why."""
    results = asyncio.run(_execute_all(paths, cwd, max(1, min(jobs, len(paths)))))
    done = {}
    for path, (notebook, seconds) in zip(paths, results, strict=True):
        markdown, pictures = render(notebook, f"{outputs}/{path.stem}")
        done[path] = Executed(markdown, pictures, seconds)
    return done


def _reason(error: BaseException) -> str:
    """An execution error in a few lines: nbclient's ``CellExecutionError`` holds the cell and
    the whole traceback, so its end says what raised."""
    return f"{type(error).__name__}: {_ANSI.sub('', str(error)).strip()[-3000:]}"


def _fenced(text: str, info: str) -> str:
    """``text`` in a fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def _streams(streams: dict[str, list[str]]) -> list[str]:
    """What a cell printed since its last other output, one fenced block per stream; stderr
    (warnings, a framework's C++ log) folded away under a collapsed "stderr" note."""
    blocks = []
    for name, text in streams.items():
        block = _fenced(_ANSI.sub("", "".join(text)), "text")
        if name == "stderr":
            block = '??? quote "stderr"\n\n' + "\n".join(f"    {line}" for line in block.splitlines())
        blocks.append(block)
    return blocks


def render(notebook: NotebookNode, folder: str) -> tuple[str, dict[str, bytes]]:
    """An executed notebook as Markdown: markdown cells as they are, code cells fenced, then
    their outputs (streams as text, pictures written under ``folder`` and shown).  Returns
    the Markdown and the pictures as {path relative to the page: bytes}."""
    parts: list[str] = []
    pictures: dict[str, bytes] = {}
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        parts.append(_fenced(cell.source, "python"))
        streams: dict[str, list[str]] = {}
        for k, output in enumerate(cell.get("outputs", [])):
            if output.output_type == "stream":
                streams.setdefault(output.name, []).append(output.text)
                continue
            parts += _streams(streams)
            streams = {}
            data = output.get("data", {})
            kind = next((mime for mime in PICTURES if mime in data), None)
            if kind is not None:
                name = f"{folder}/cell{number}-{k}.{PICTURES[kind]}"
                raw = data[kind]
                pictures[name] = raw.encode() if kind == "image/svg+xml" else base64.b64decode(raw)
                parts.append(f"![output {k} of cell {number}]({name})")
            elif "text/plain" in data:
                parts.append(_fenced(data["text/plain"], "text"))
        parts += _streams(streams)
    return "\n\n".join(parts) + "\n", pictures
