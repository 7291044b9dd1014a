"""The commands that run backends: ``nin compare``, ``nin conformance``, ``nin bench`` and
``nin summary --backend``, end to end in subprocesses, on the small models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import backend_or_skip, selected_backends

import nin
from nin.bench import GPU_PROBES, machine_peak
from nin.frameworks import backend_precisions

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _nin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nin.cli", *args], capture_output=True, text=True, env=ENV)


def test_compare_table_and_json(tmp_path):
    out = _nin("compare", "nin_tiny", "--backends", *selected_backends(), "--json", str(tmp_path / "c.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "c.json").read_text())
    assert [r["backend"] for r in result["rows"]] == selected_backends()
    for row in result["rows"]:
        if row["status"] == "unavailable":
            continue
        assert row["status"] == "ok", row
        assert row["params"] == nin.param_count(nin.get_spec("nin_tiny"))
        assert row["output_shape"] == [8, 10] and row["max_abs_diff"] <= 1e-4
    assert "max|Δ| vs ref" in out.stdout


def test_compare_reports_an_unavailable_backend(monkeypatch):
    from nin import compare, frameworks

    monkeypatch.setitem(frameworks._REQUIRES, "mxnet", ("surely_not_installed_module",))
    result = compare.compare("nin_tiny", ["mxnet"], batch_size=2, repeats=1)
    assert result["rows"][0]["status"] == "unavailable"
    assert "nin-suite[mxnet]" in compare.compare_text(result)


def test_conformance_matrix(tmp_path):
    # a backend named with --backends that cannot run fails the matrix, so name those that can
    names = [b for b in selected_backends() if b in nin.available_backends()]
    out = _nin(
        "conformance", "--models", "nin_tiny", "nin3d", "--backends", *names,
        "--json", str(tmp_path / "m.json"), "--markdown", str(tmp_path / "m.md"),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["passed"] and len(result["cells"]) == 2 * len(names) and not result["unavailable"]
    assert all(c["forward_err"] <= 1e-4 and c["grad_err"] <= 1e-3 for c in result["cells"])
    assert (tmp_path / "m.md").read_text().startswith("| backend | model |")


def test_conformance_fails_loudly_on_unknown_model():
    out = _nin("conformance", "--models", "nin_nope")
    assert out.returncode == 2 and "known models" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("backend", selected_backends())
def test_summary_read_off_the_live_model(backend):
    backend_or_skip(backend)
    out = _nin("summary", "nin_cifar10", "--backend", backend, "--json")
    assert out.returncode == 0, out.stderr
    live = json.loads(out.stdout)
    spec = json.loads(_nin("summary", "nin_cifar10", "--json").stdout)
    assert live == spec


# the GEMM probes at a size that takes milliseconds (the default, 2048 and 4096, takes seconds)
QUICK_PEAK = ("--peak-sizes", "256")


def test_bench_record(tmp_path):
    backend = selected_backends()[0]
    out = _nin(
        "bench", "--backends", backend, "--models", "nin_tiny", "--batch-sizes", "2", "--repeats", "1",
        "--warmup", "0", "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md"),
        "--plot", str(tmp_path / "b.png"), *QUICK_PEAK,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    assert set(result["peak_probes"]) == {"numpy", backend}, result["peak_probe_errors"]
    assert result["peak_probe"] == max(result["peak_probes"], key=result["peak_probes"].get)
    assert result["peak_gflops"] == result["peak_probes"][result["peak_probe"]] > 0
    named = f"from the {result['peak_probe']} GEMM"
    assert named in out.stdout and named in (tmp_path / "b.md").read_text()
    (record,) = result["records"]
    assert record["precision"] == "float32" and record["peak_gflops"] == result["peak_gflops"]
    for key in (
        "peak_gflops",
        "forward_s",
        "train_step_s",
        "train_gflops",
        "peak_fraction",
        "first_call_s",
        "peak_rss_mb",
    ):
        assert record[key] > 0, key
    assert record["train_gflops"] == pytest.approx(
        3 * 2 * 2 * nin.mac_count(nin.get_spec("nin_tiny")) / record["train_step_s"] / 1e9
    )
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("backend", selected_backends())
def test_bench_bf16(tmp_path, backend):
    """bf16 is measured, with bfloat16 GEMM probes, where the backend computes in it (torch,
    jax); elsewhere the case is an error record and the run exits 1, without a traceback."""
    backend_or_skip(backend)
    out = _nin(
        "bench", "--backends", backend, "--models", "nin_tiny", "--batch-sizes", "2", "--precision", "bf16",
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
        "bench", "--backends", "torch", "--models", "nin_tiny", "--batch-sizes", "2", "4", "--device", "gpu",
        "--json", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    assert [r["error"].startswith("device='gpu' needs a CUDA GPU") for r in result["records"]] == [True, True]
    failed = [line for line in out.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 2 and all("device='gpu'" in line for line in failed), out.stderr
    assert result["peak_probe_errors"]["torch"].startswith("device='gpu' needs a CUDA GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("framework", GPU_PROBES)
def test_gpu_gemm_probe(framework):
    if not backend_or_skip(framework).gpu_available():
        pytest.skip(f"no GPU visible to {framework}")
    peak = machine_peak([framework], "gpu", "bf16", os.cpu_count() or 1, [4096], ENV, log=lambda line: None)
    probes = peak["peak_probes"]
    assert set(probes) == {framework, f"{framework} bf16"}, peak["peak_probe_errors"]
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
