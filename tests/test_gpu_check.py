"""benchmarks/gpu_check.py: runs to completion without a GPU, compares backends, reports pytest counts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benchmarks import gpu_check
from pycro_gpu.backend import cupy_available
from tests.conftest import REPO_ROOT

OK_STATUSES = {"ok", "ok (CPU only: no GPU)", "not available", "timeout", "skipped: time budget spent"}


def test_max_rel_error_against_known_values():
    a = np.array([1.0, 2.0, 4.0])
    assert gpu_check.max_rel_error(a, a) == 0.0
    assert gpu_check.max_rel_error(a * (1 + 1e-3), a) == pytest.approx(1e-3)
    assert gpu_check.max_rel_error((a, {"x": a + 0.5}), (a, {"x": a})) == pytest.approx(0.5)
    assert gpu_check.max_rel_error(np.array([np.nan, 1.0]), np.array([1.0, 1.0])) == float("inf")
    assert gpu_check.max_rel_error(np.ones(3), np.ones(4)) == float("inf")
    # Differences under atol count as zero.
    assert gpu_check.max_rel_error(np.array([1e-12]), np.array([0.0]), atol=1e-9) == 0.0


def test_sho_spectra_follow_the_design_model():
    rng = np.random.default_rng(0)
    h, w, truth = gpu_check.sho_spectra(rng, 4, noise=0.0)
    amp, w0, q, phi = truth[0]
    i = int(np.argmin(np.abs(w - w0)))
    expected = amp * np.exp(1j * phi) * w0**2 / (w[i] ** 2 - 1j * w[i] * w0 / q - w0**2)
    assert h[0, i] == pytest.approx(expected)
    # At resonance the response is A Q e^{i(phi + pi/2)}: magnitude A*Q.
    at_w0 = amp * np.exp(1j * phi) * w0**2 / (w0**2 - 1j * w0 * w0 / q - w0**2)
    assert abs(at_w0) == pytest.approx(amp * q)


@pytest.fixture
def fake_gpu(monkeypatch):
    """Route the harness's 'cupy' backend to array_api_strict, so the compare path runs on a CPU."""
    array_api_strict = pytest.importorskip("array_api_strict")

    from pycro_gpu import backend

    real = backend.get_namespace
    monkeypatch.setattr(
        backend, "get_namespace", lambda name=None: array_api_strict if name == "cupy" else real(name)
    )


def _section(func, **kw):
    return gpu_check.Section("t", "test", func, quick={"n": 64}, full={"n": 64}, **kw)


def test_run_section_compares_backends(fake_gpu):
    def same(xp, rng, n):
        x = xp.asarray(rng.standard_normal(n))
        return lambda: xp.cumulative_sum(x)

    row = gpu_check.run_section(_section(same), quick=True, gpu=True, repeats=2, timeout=10)
    assert row["status"] == "ok"
    assert row["check"]["ok"] and row["check"]["error"] < 1e-12
    assert row["numpy"]["runs"] == 2 and row["cupy"]["runs"] == 2
    assert row["speedup"] > 0


def test_run_section_reports_a_mismatch(fake_gpu):
    def differs(xp, rng, n):
        x = xp.asarray(rng.standard_normal(n))
        bias = 1e-3 if "strict" in xp.__name__ else 0.0
        return lambda: x + bias

    row = gpu_check.run_section(_section(differs, atol=1e-6), quick=True, gpu=True, repeats=1, timeout=10)
    assert row["status"] == "MISMATCH"
    assert not row["check"]["ok"]


def test_run_section_reports_missing_errors_and_timeouts():
    def missing(xp, rng, n):
        from pycro_gpu import no_such_module  # noqa: F401

    def broken(xp, rng, n):
        return lambda: 1 / 0

    def slow(xp, rng, n):
        import time

        return lambda: time.sleep(5)

    row = gpu_check.run_section(_section(missing), quick=True, gpu=False, repeats=1, timeout=5)
    assert row["status"] == "not available" and "no_such_module" in row["detail"]
    row = gpu_check.run_section(_section(broken), quick=True, gpu=False, repeats=1, timeout=5)
    assert row["status"] == "error" and "ZeroDivisionError" in row["detail"]
    row = gpu_check.run_section(_section(slow), quick=True, gpu=False, repeats=1, timeout=0.3)
    assert row["status"] == "timeout"


def _fake_suite(tmp_path):
    tests = tmp_path / "fake_suite"
    tests.mkdir()
    (tests / "test_fake.py").write_text(
        textwrap.dedent(
            """
            import os, time, pytest

            @pytest.mark.parametrize("backend", ["numpy", "cupy"])
            def test_param(backend):
                assert backend

            def test_fails():
                assert 1 == 2

            def test_skipped():
                pytest.skip("not here")

            def test_slow():
                if os.environ.get("FAKE_SLOW"):
                    time.sleep(60)
            """
        )
    )
    return tests


@pytest.mark.slow
def test_pytest_part_counts_results(tmp_path, monkeypatch):
    tests = _fake_suite(tmp_path)
    summary = gpu_check.run_pytest(tmp_path, "all", 60, [str(tests), "--rootdir", str(tests)])
    assert summary["all"] == {"passed": 3, "failed": 1, "skipped": 1}
    assert summary["gpu"] == {"passed": 1}
    assert [f["nodeid"].split("::")[-1] for f in summary["failures"]] == ["test_fails"]
    assert not summary["timed_out"] and summary["returncode"] == 1
    # A time-out kills pytest and still reports what ran before it.
    monkeypatch.setenv("FAKE_SLOW", "1")
    summary = gpu_check.run_pytest(tmp_path, "all", 10, [str(tests), "--rootdir", str(tests)])
    assert summary["timed_out"]
    # test_slow never finished; the others did (pytest starts in ~1 s; 10 s leaves room on a busy machine)
    assert summary["all"] == {"passed": 2, "failed": 1, "skipped": 1}, summary


@pytest.mark.slow
def test_quick_run_without_pytest_writes_json(tmp_path, capsys):
    if cupy_available():
        pytest.skip("checks the CPU-only report; the GPU check itself runs on a GPU")
    out = tmp_path / "out"
    # In this process (kernels compiled by earlier tests are reused), without the fit sections: a time
    # box must not interrupt a numba compile that later tests of this process need. The budget keeps it
    # short on a loaded machine: later sections may report 'skipped: time budget spent'.
    names = [sec.name for sec in gpu_check.SECTIONS if not sec.name.startswith("fit_")]
    argv = ["--quick", "--no-pytest", "--repeats", "1", "--section-timeout", "10", "--budget", "12"]
    argv += ["--out", str(out), "--only", *names]
    assert gpu_check.main(argv) == 0
    assert "no GPU" in capsys.readouterr().out
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["ok"] is True
    assert report["environment"]["gpu"] is False
    assert "pytest" not in report
    rows = {row["name"]: row for row in report["sections"]}
    assert list(rows) == names
    for row in rows.values():
        assert row["status"] in OK_STATUSES, row
        assert "cupy" not in row
    # The first section ran on NumPy and timed at least one call (later ones may meet the time box).
    first = rows["fft_roundtrip"]
    assert first["status"] == "ok (CPU only: no GPU)", first
    assert first["numpy"]["runs"] >= 1 and first["numpy"]["best_s"] > 0
    ran = [r for r in rows.values() if r["status"] == "ok (CPU only: no GPU)"]
    assert all(r["numpy"]["best_s"] > 0 and r["numpy"]["first_s"] > 0 for r in ran)
    assert (out / "gpu_check.md").read_text().startswith("# GPU check (quick sizes)")


@pytest.mark.slow
def test_script_runs_from_any_folder(tmp_path):
    # `python benchmarks/gpu_check.py` (the Makefile's gpu-check) works as a script, outside the tree
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [s.name for s in gpu_check.SECTIONS]
