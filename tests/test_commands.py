"""The commands that run backends: ``nin compare``, ``nin conformance``, ``nin bench`` and
``nin summary --backend``, end to end in subprocesses, on the small models."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_or_skip, selected_backends, selected_runtimes

import nin
from nin.bench import GPU_PEAK_SIZES, gemm_gflops
from nin.frameworks import available_runtimes, backend_precisions, backend_trains, gpu_probes

DOCS_DATA = Path(__file__).resolve().parent.parent / "docs" / "data"


def _nin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nin.cli", *args], capture_output=True, text=True)


def test_compare_table_and_json(tmp_path):
    # a backend named with --backends that cannot run fails the run, so name those that can
    names = [b for b in selected_runtimes() if b in available_runtimes()]
    out = _nin("compare", "nin_tiny", "--backends", *names, "--json", str(tmp_path / "c.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "c.json").read_text())
    assert [r["backend"] for r in result["rows"]] == names and result["status"] == "ok"
    for row in result["rows"]:
        assert row["status"] == "ok", row
        assert [c["property"] for c in row["checks"]] == ["params", "layers", "logits"]
        assert row["params"] == nin.param_count(nin.get_spec("nin_tiny"))
        assert row["output_shape"] == [8, 10] and row["max_rel_error"] <= 1e-4
    assert "rel. error vs ref" in out.stdout and "verdict: ok" in out.stdout


def test_compare_reports_an_unavailable_backend(monkeypatch):
    from nin import compare, frameworks

    monkeypatch.setattr(frameworks, "missing_modules", lambda name: ["surely_not_installed_module"])
    result = compare.compare("nin_tiny", ["mxnet"], batch_size=2, repeats=1)
    assert result["rows"][0]["status"] == "unavailable"
    assert "nin-suite[mxnet]" in compare.compare_text(result)


def test_conformance_matrix(tmp_path):
    names = [b for b in selected_runtimes() if b in available_runtimes()]
    out = _nin(
        "conformance", "--models", "nin_tiny", "nin3d", "--backends", *names,
        "--json", str(tmp_path / "m.json"), "--markdown", str(tmp_path / "m.md"),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "m.json").read_text())
    trainers = [b for b in names if backend_trains(b)]
    assert result["passed"] and result["status"] == "ok" and not result["cannot_run"]
    assert len(result["cells"]) == 2 * len(names) + len(trainers)
    for cell in result["cells"]:
        got = [c["property"] for c in cell["checks"]]
        if cell["model"].endswith("SGD steps"):
            assert got == ["sgd steps"] and cell["backend"] in trainers
        else:
            assert got == ["params", "layers", "logits"] + (["gradients"] if backend_trains(cell["backend"]) else [])
        assert cell["status"] == "ok" and all(c["verdict"] == "ok" for c in cell["checks"]), cell
    assert (tmp_path / "m.md").read_text().startswith("| backend | model |")


# -- verdicts: a command cannot say ok where a check fails ------------------------------------------
#
# Run in-process through ``nin.cli.main``, with one backend's adapter made faulty by monkeypatching:
# the fault must come out as status "mismatch" in the JSON and exit status 1.


def _main(capsys, *args: str) -> tuple[int, str, str]:
    from nin.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _faulty_backend(monkeypatch, fault: str) -> str:
    """The first selected runtime that is installed, its adapter given ``fault``: "logits"
    (every logit moved by 10 × FORWARD_RTOL · max|logit|) or "params" (one parameter too many)."""
    from nin.checks import FORWARD_RTOL

    name = next((b for b in selected_runtimes() if b in available_runtimes()), None)
    if name is None:
        pytest.skip("no runtime installed")
    adapter = importlib.import_module(f"nin.frameworks.{name}.adapter")
    if fault == "logits":
        forward = adapter.forward

        def off(model, x, train=False):
            logits = forward(model, x, train)
            return logits + np.float32(10 * FORWARD_RTOL) * np.abs(logits).max()

        monkeypatch.setattr(adapter, "forward", off)
    else:
        count = adapter.param_count
        monkeypatch.setattr(adapter, "param_count", lambda model: count(model) + 1)
    return name


@pytest.mark.parametrize("fault, prop", [("logits", "logits"), ("params", "params")])
def test_a_mismatch_fails_both_commands(monkeypatch, capsys, tmp_path, fault, prop):
    name = _faulty_backend(monkeypatch, fault)
    code, out, err = _main(capsys, "compare", "nin_tiny", "--backends", name, "--repeats", "1", "--json",
                           str(tmp_path / "c.json"))  # fmt: skip
    (row,) = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert code == 1 and row["status"] == "mismatch", out
    assert [c["property"] for c in row["checks"] if c["verdict"] == "mismatch"] == [prop]
    assert f"MISMATCH: {prop}" in out and f"FAILED: {name}: mismatch: {prop}: got" in err

    code, out, err = _main(capsys, "conformance", "--backends", name, "--models", "nin_tiny", "--json",
                           str(tmp_path / "m.json"))  # fmt: skip
    result = json.loads((tmp_path / "m.json").read_text())
    assert code == 1 and not result["passed"], out
    (cell,) = [c for c in result["cells"] if c["model"] == "nin_tiny"]
    assert cell["status"] == "mismatch"
    assert [c["property"] for c in cell["checks"] if c["verdict"] == "mismatch"] == [prop]
    assert f"FAILED: {name} nin_tiny float32: mismatch: {prop}: got" in err


def test_nothing_to_run_fails_both_commands(monkeypatch, capsys):
    """A core-only install: every backend unavailable, so nothing is checked — exit status 1."""
    import nin.frameworks

    monkeypatch.setattr(nin.frameworks, "unavailable_reason", lambda name: f"backend {name!r} needs its framework")
    code, out, err = _main(capsys, "compare", "nin_tiny")
    assert code == 1 and all(f"{b}: unavailable: backend" in out for b in nin.frameworks.list_runtimes())
    assert "nin compare: FAILED: nothing was checked: none of torch" in err
    code, out, err = _main(capsys, "conformance", "--models", "nin_tiny")
    assert code == 1 and "nin conformance: FAILED: nothing was checked" in err


def test_a_named_backend_that_cannot_run_fails(monkeypatch, capsys):
    import nin.frameworks

    monkeypatch.setattr(nin.frameworks, "unavailable_reason", lambda name: "needs mxnet" if name == "mxnet" else None)
    name = next(b for b in available_runtimes())
    code, _, err = _main(capsys, "compare", "nin_tiny", "--backends", name, "mxnet", "--repeats", "1")
    assert code == 1 and "FAILED: mxnet is required but cannot run: unavailable: needs mxnet" in err


def test_conformance_on_the_gpu_without_one(capsys):
    """This machine has no GPU: ``--device gpu`` reports every backend "no GPU visible" with
    the reason and fails (nothing was checked); ``--require-gpu torch`` adds a line naming
    torch's missing GPU."""
    if any(nin.get_backend(b).gpu_available() for b in available_runtimes()):
        pytest.skip("a GPU is visible here")
    code, out, err = _main(capsys, "conformance", "--device", "gpu", "--models", "nin_tiny", "--require-gpu", "torch")
    assert code == 1
    assert all(f"{b}: no GPU visible: " in out for b in available_runtimes())
    lines = err.splitlines()
    assert lines[0].startswith("nin conformance: FAILED: torch is required but cannot run: no GPU visible: torch")
    assert lines[-1].startswith("nin conformance: FAILED: nothing was checked: none of")
    code, _, err = _main(capsys, "conformance", "--device", "cpu", "--require-gpu", "torch")
    assert code == 2 and "--require-gpu torch needs --device gpu" in err


def test_python_dash_m_nin_is_the_command():
    out = subprocess.run([sys.executable, "-m", "nin", "conformance", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--require-gpu LIST" in out.stdout and "--precision" in out.stdout


def test_conformance_fails_loudly_on_unknown_model():
    out = _nin("conformance", "--models", "nin_nope")
    assert out.returncode == 2 and "known models" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("backend", selected_backends())
def test_summary_read_off_the_live_model(backend):
    backend_or_skip(backend)
    out = _nin("summary", "nin_cifar10", "--backend", backend, "--format", "json")
    assert out.returncode == 0, out.stderr
    live = json.loads(out.stdout)
    spec = json.loads(_nin("summary", "nin_cifar10", "--format", "json").stdout)
    assert live == spec


# the GEMM probes at a size that takes milliseconds (the default, 2048 and 4096, takes seconds)
QUICK_PEAK = ("--peak-sizes", "256")


def test_bench_record(tmp_path):
    """Two interleaved rounds: every time per round, its median and min–max, and the share of
    the same round's peak recomputed here from the spec's MACs."""
    backend = selected_backends()[0]
    out = _nin(
        "bench", "--backends", backend, "--models", "nin_tiny", "--batch-sizes", "2", "--rounds", "2",
        "--repeats", "1", "--warmup", "0", "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md"),
        "--plot", str(tmp_path / "b.png"), *QUICK_PEAK,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    assert set(result["peak_probes"]) == {"numpy", backend}, result["peak_probe_errors"]
    assert len(result["probe_rounds"]) == len(result["round_peaks"]) == 2
    for measured, peak in zip(result["probe_rounds"], result["round_peaks"], strict=True):
        assert set(measured) == {"numpy", backend} and peak == max(measured.values()) > 0
    assert result["peak_gflops"] == max(result["round_peaks"]) == max(result["peak_probes"].values())
    assert result["peak_probe"] == max(result["peak_probes"], key=result["peak_probes"].get)
    (record,) = result["records"]
    steps = record["rounds"]["train_step_s"]
    assert len(steps) == len(record["rounds"]["forward_s"]) == 2 and min(steps) > 0
    assert (
        record["train_step_min_s"] == min(steps) <= record["train_step_s"] <= max(steps) == record["train_step_max_s"]
    )
    flops = 3 * 2 * 2 * nin.mac_count(nin.get_spec("nin_tiny"))
    expected = [flops / s / 1e9 / peak for s, peak in zip(steps, result["round_peaks"], strict=True)]
    assert record["ratios"]["train_peak_fraction"]["rounds"] == pytest.approx(expected)
    assert record["first_call_s"] > 0 and record["first_train_step_s"] > 0
    assert "interleaved rounds" in (tmp_path / "b.md").read_text() and result["peak_sizes"] == [256]
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_book_peer_equal_work(tmp_path):
    """nin_d2l has the d2l book's code as a peer: its step with plain SGD and with the recipe's,
    each round, and the ratios are the book's time over ours, round by round."""
    backend_or_skip("torch")
    out = _nin(
        "bench", "--backends", "torch", "--models", "nin_d2l", "--batch-sizes", "1", "--rounds", "2",
        "--repeats", "1", "--warmup", "0", "--json", str(tmp_path / "b.json"), *QUICK_PEAK,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    (record,) = json.loads((tmp_path / "b.json").read_text())["records"]
    rounds, ratios = record["rounds"], record["ratios"]
    for book, ratio in (("book_train_step_s", "train_vs_book"), ("book_recipe_train_step_s", "train_vs_book_recipe")):
        expected = [b / s for b, s in zip(rounds[book], rounds["train_step_s"], strict=True)]
        assert len(expected) == 2 and ratios[ratio]["rounds"] == pytest.approx(expected)
        assert ratios[ratio]["min"] <= ratios[ratio]["median"] <= ratios[ratio]["max"]
    # the book's equal-work step on the scale of the round's peak: 3 · 2 · MACs FLOPs per image
    flops = 3 * 2 * nin.mac_count(nin.get_spec("nin_d2l"))
    peaks = json.loads((tmp_path / "b.json").read_text())["round_peaks"]
    expected = [flops / b / 1e9 / p for b, p in zip(rounds["book_recipe_train_step_s"], peaks, strict=True)]
    assert ratios["book_train_peak_fraction"]["rounds"] == pytest.approx(expected)


def test_disturbed_rounds_and_per_round_ratios():
    """A round whose best probe is more than 20 % below the best round's is flagged; every
    ratio divides by its own round's peak (numbers worked out by hand)."""
    from nin.bench import BenchResult
    from nin.bench.rounds import _Case, _result

    class Done:  # a finished worker, as _result sees it
        error = None

        def __init__(self, setup):
            self.setup = setup

    setup = {
        "framework": "x 1",
        "device_name": "cpu",
        "input_size": [8, 8],
        "macs_per_example": 10**9,
        "first_call_s": 1.0,
    }
    rounds = [
        {"round": i, "forward_s": 0.2, "train_step_s": t, "peak_rss_mb": 1.0} for i, t in enumerate((1.0, 1.5, 2.0))
    ]
    case = _Case("torch", "nin_tiny", 1, Done(setup), None, rounds)
    probes = [{"numpy": 100.0, "torch": 80.0}, {"numpy": 79.0}, {"numpy": 81.0, "torch": 10.0}]
    result = _result(_config("cpu", "float32"), 2, [256], {}, probes, [case], 3)
    assert result.round_peaks == (100.0, 79.0, 81.0) and result.disturbed_rounds == (1,)
    assert result.peak_probes == {"numpy": 100.0, "torch": 80.0} and result.peak_probe == "numpy"
    (record,) = result.records
    # 6 GFLOP per step: 6 / 1.0 / 100, 6 / 1.5 / 79, 6 / 2.0 / 81
    assert record.ratios["train_peak_fraction"].rounds == pytest.approx([0.06, 4 / 79, 3 / 81])
    assert record.ratios["forward_peak_fraction"].rounds == pytest.approx([0.1, 10 / 79, 10 / 81])
    train = record.times["train_step_s"]
    assert (train.median, train.min, train.max) == (1.5, 1.0, 2.0)
    # the --json form: the same figures under the names earlier runs wrote, read back unchanged
    saved = json.loads(json.dumps(result.to_json()))
    assert (saved["records"][0]["train_step_s"], saved["records"][0]["train_step_min_s"]) == (1.5, 1.0)
    assert BenchResult.from_json(saved) == result


def _config(device: str, precision: str):
    from nin.bench import BenchConfig

    return BenchConfig(("torch",), ("nin_tiny",), (1,), device=device, precision=precision)


class _Done:  # a finished worker, as _result sees it
    error = None

    def __init__(self, setup):
        self.setup = setup


def _finished_case(batch: int, forward_s: float, train_step_s: float, device: str):
    from nin.bench.rounds import _Case

    setup = {"framework": "x 1", "device_name": "NVIDIA H100" if device == "gpu" else "cpu", "input_size": [8, 8]}
    setup.update(macs_per_example=10**9, first_call_s=1.0)
    row = {"round": 0, "forward_s": forward_s, "train_step_s": train_step_s, "peak_rss_mb": 1.0}
    if device == "gpu":
        row["device_peak_mb"] = 512.0
    return _Case("torch", "nin_tiny", batch, _Done(setup), None, [row])


def test_a_gpu_precision_is_measured_against_its_own_peak():
    """On a GPU the round's peak is the best probe in the run's precision (bfloat16 GEMMs run on
    tensor cores); on the CPU it stays the best probe of any precision."""
    from nin.bench.rounds import _result

    probes = [{"torch": 50_000.0, "torch bf16": 600_000.0, "jax": 48_000.0, "jax bf16": 620_000.0}]
    for device, precision, peak, probe in (
        ("gpu", "bf16", 620_000.0, "jax bf16"),
        ("gpu", "float32", 50_000.0, "torch"),
        ("cpu", "float32", 620_000.0, "jax bf16"),
        ("cpu", "bf16", 620_000.0, "jax bf16"),
    ):
        case = _finished_case(4, 0.02, 0.05, device)
        result = _result(_config(device, precision), 2, [8192], {}, probes, [case], 1)
        assert (result.round_peaks, result.peak_gflops, result.peak_probe) == ((peak,), peak, probe), (
            device,
            precision,
        )
        (record,) = result.records
        # 8 GFLOP per forward of 4 images
        assert record.ratios["forward_peak_fraction"].rounds == pytest.approx([8 / 0.02 / peak])


def test_the_gpu_table_reports_images_per_second_and_device_memory():
    from nin.bench import bench_markdown, bench_text
    from nin.bench.rounds import _result

    gpu = _config("gpu", "float32")
    result = _result(gpu, 2, [8192, 16384], {}, [{"torch": 50_000.0}], [_finished_case(4, 0.02, 0.05, "gpu")], 1)
    text = bench_text(result)
    header, row = [line for line in text.splitlines() if line.strip().startswith(("backend", "torch"))]
    cells = dict(zip(re.split(r"\s{2,}", header.strip()), re.split(r"\s{2,}", row.strip()), strict=True))
    # 4 images in 0.02 s and in 0.05 s; 3·8 GFLOP in 0.05 s of a 50,000 GFLOP/s peak
    assert (cells["forward img/s"], cells["train img/s"], cells["device MB"]) == ("200", "80", "512")
    assert cells["train % of round peak"].startswith("1%") and "book" not in header
    assert "gpu (NVIDIA H100; GEMM probes at 8192², 16384²)" in text
    assert "| forward img/s |" in bench_markdown(result)
    cpu = _result(_config("cpu", "float32"), 2, [256], {}, [{"torch": 50.0}], [_finished_case(4, 0.02, 0.05, "cpu")], 1)
    assert "img/s" not in bench_text(cpu) and "book fwd ms" in bench_text(cpu)


def _run_record(backend: str, **ratios: tuple[float, float, float]) -> dict:
    """A saved run (its --json form) holding one case with the given ratios as (median, min, max)."""
    spread = {name: {"median": m, "min": lo, "max": hi, "rounds": [lo, m, hi]} for name, (m, lo, hi) in ratios.items()}
    return {"records": [{"backend": backend, "model": "nin_d2l", "batch_size": 32, "ratios": spread}]}


def test_agreement_is_each_median_inside_the_others_range():
    from nin.bench import BenchResult, agreement

    def run(backend: str, **ratios: tuple[float, float, float]) -> BenchResult:
        return BenchResult.from_json(_run_record(backend, **ratios))

    a = run("torch", train_vs_book=(1.20, 1.10, 1.30), train_peak_fraction=(0.90, 0.85, 0.95))
    b = run("torch", train_vs_book=(1.25, 1.15, 1.40), train_peak_fraction=(0.80, 0.78, 0.84))
    result = agreement(a, b)
    verdicts = {row.ratio: row.agree for row in result.rows}
    # 1.25 is in [1.10, 1.30] and 1.20 in [1.15, 1.40]; 0.80 is outside [0.85, 0.95]
    assert verdicts == {"train_vs_book": True, "train_peak_fraction": False} and not result.agree
    # one-sided containment is not agreement: 1.12 is in [1.10, 1.30], but 1.20 is not in [1.05, 1.15]
    c = run("torch", train_vs_book=(1.12, 1.05, 1.15))
    assert not agreement(a, c).rows[0].agree
    assert agreement(a, a).agree
    assert agreement(a, run("jax", train_vs_book=(1.2, 1.1, 1.3))).to_json() == {"rows": [], "agree": False}


@pytest.mark.parametrize("name", [path.name for path in sorted(DOCS_DATA.glob("bench-*.json"))])
def test_a_saved_run_reads_back_as_it_was_written(name):
    """Every run in docs/data/ (written by earlier versions, which docs/benchmarks.md and
    ``nin bench --agree`` read) loads into typed records and writes the same JSON again."""
    from nin.bench import load_result

    saved = json.loads((DOCS_DATA / name).read_text())
    result = load_result(DOCS_DATA / name)
    assert result.to_json() == saved
    assert [r.ratios["train_peak_fraction"].median for r in result.records] == [
        r["ratios"]["train_peak_fraction"]["median"] for r in saved["records"]
    ]


def test_bench_agree_command(tmp_path):
    same = _run_record("torch", train_vs_book=(1.20, 1.10, 1.30))
    apart = _run_record("torch", train_vs_book=(1.60, 1.50, 1.70))
    for name, run in (("a", same), ("b", same), ("c", apart)):
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
    agree = _nin(
        "bench", "--agree", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json", str(tmp_path / "r.json")
    )
    assert agree.returncode == 0, agree.stderr
    assert "| torch | nin_d2l | 32 | train step vs book (plain SGD) | 1.20× (1.10×–1.30×) |" in agree.stdout
    assert "1 of 1 ratios agree" in agree.stdout and json.loads((tmp_path / "r.json").read_text())["agree"]
    differ = _nin("bench", "--agree", str(tmp_path / "a.json"), str(tmp_path / "c.json"))
    assert differ.returncode == 1 and "| **no** |" in differ.stdout and "0 of 1 ratios agree" in differ.stdout


@pytest.mark.parametrize("backend", selected_backends())
def test_bench_bf16(tmp_path, backend):
    """bf16 is measured, with bfloat16 GEMM probes, where the backend computes in it (torch,
    jax); elsewhere the case is an error record and the run exits 1, without a traceback."""
    backend_or_skip(backend)
    out = _nin(
        "bench", "--backends", backend, "--models", "nin_tiny", "--batch-sizes", "2", "--precision", "bf16", "--rounds", "1", "--repeats", "1",
        "--json", str(tmp_path / "b.json"), *QUICK_PEAK,
    )  # fmt: skip
    result = json.loads((tmp_path / "b.json").read_text())
    (record,) = result["records"]
    assert result["precision"] == record["precision"] == "bf16"
    if "bf16" in backend_precisions(backend):
        assert out.returncode == 0, out.stdout + out.stderr
        assert {backend, f"{backend} bf16"} <= set(result["peak_probes"]) and record["train_step_s"] > 0
    else:
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert record["error"].startswith("bf16 is available for torch and jax only")


def test_bench_on_a_missing_gpu_is_one_clear_line_per_case(tmp_path):
    if backend_or_skip("torch").gpu_available():
        pytest.skip("torch sees a GPU: this test is for machines without one")
    out = _nin(
        "bench", "--backends", "torch", "--models", "nin_tiny", "--batch-sizes", "2", "4", "--device", "gpu", "--rounds", "1",
        "--json", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    assert [r["error"].startswith("device='gpu' needs a CUDA GPU") for r in result["records"]] == [True, True]
    failed = [line for line in out.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 2 and all("device='gpu'" in line for line in failed), out.stderr
    assert result["peak_probe_errors"]["torch"].startswith("device='gpu' needs a CUDA GPU")
    # the probes a GPU would have run: 8192² and more, where a GPU's GEMM nears its peak
    assert result["peak_sizes"] == list(GPU_PEAK_SIZES) and min(GPU_PEAK_SIZES) >= 8192


@pytest.mark.gpu
@pytest.mark.parametrize("framework", gpu_probes())
def test_gpu_gemm_probe(framework):
    if not backend_or_skip(framework).gpu_available():
        pytest.skip(f"no GPU visible to {framework}")
    probes = gemm_gflops(framework, "gpu", "bf16", sizes=[4096])
    assert set(probes) == {framework, f"{framework} bf16"}, probes
    # tensor cores: a bfloat16 GEMM outruns a float32 one (TF32 off) several times on any recent GPU
    assert probes[f"{framework} bf16"] > probes[framework] > 0, probes


def test_train_visualize_every(tmp_path):
    out = _nin(
        "train", "--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic:3x16x16", "--epochs", "2",
        "--batch-size", "128", "--out", str(tmp_path), "--visualize-every", "2", "--no-progress",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (tmp_path / "visualize" / "epoch001").exists()
    pictures = {p.name for p in (tmp_path / "visualize" / "epoch002").iterdir()}
    assert {"block0_channels.gif", "block2_features.png", "cam.png", "cam_classes.gif"} <= pictures
