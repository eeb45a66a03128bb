"""benchmarks/bench_end_to_end.py: whole processes, file to file; every contender timed and checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import bench_end_to_end as e2e

#: (task prefix, contender) of every row of a run at one fit size
CONTENDERS = [
    ("fit sho", "pycro-gpu fit sho (cold cache)"),
    ("fit sho", "pycro-gpu fit sho (warm cache)"),
    ("fit sho", "SciPy script"),
    ("fit sho", "pycro-gpu fit sho --workers 2 (warm cache)"),
    ("filter", "pycro-gpu filter (cold cache)"),
    ("filter", "pycro-gpu filter (warm cache)"),
    ("filter", "NumPy script"),
    ("svd", "pycro-gpu svd (cold cache)"),
    ("svd", "pycro-gpu svd (warm cache)"),
    ("svd", "scikit-learn script"),
]


def test_peer_scripts_are_python_with_the_benchmarks_model():
    scripts = e2e.peer_scripts()
    assert sorted(scripts) == ["filter_numpy.py", "fit_sho_scipy.py", "svd_sklearn.py"]
    for name, text in scripts.items():
        compile(text, name, "exec")
    assert "def _jacobian(p, w, y):" in scripts["fit_sho_scipy.py"]
    assert 'method="lm"' in scripts["fit_sho_scipy.py"]
    assert "def numpy_reference(" in scripts["filter_numpy.py"]
    assert "randomized_svd(data, k, n_iter=3" in scripts["svd_sklearn.py"]


def test_grid_shape_covers_every_position():
    assert e2e.grid_shape(1024) == (32, 32)
    assert e2e.grid_shape(2**20) == (1024, 1024)
    assert e2e.grid_shape(16384) == (128, 128)
    rows, cols = e2e.grid_shape(1000)
    assert rows * cols == 1000


def test_wrong_or_failed_contenders_are_flagged_not_timed_as_fast():
    truth = np.array([[1e-3, 350e3, 200.0, 0.1]] * 8)
    assert e2e.fit_check(truth, truth) == (e2e.fit_check(truth, truth)[0], None)
    off = truth * [1, 1.01, 1, 1]  # resonance 1 % off: far above the limit
    _, problem = e2e.fit_check(off, truth)
    assert "w0_median_rel_err" in problem
    _, problem = e2e.fit_check(truth[:4], truth)
    assert problem == "4 fits for 8 spectra"
    run = {"command": "x", "seconds": 0.1, "cpu_seconds": 0.1, "returncode": 0, "tail": ""}
    row = e2e.make_row("fit sho", 8, "ours", run, lambda: e2e.fit_check(off, truth), n_fits=8)
    assert row["status"].startswith("WRONG: w0_median_rel_err")

    def unreadable():
        raise RuntimeError("no results group")

    assert (
        e2e.make_row("t", 8, "ours", run, unreadable)["status"]
        == "WRONG: output not readable: no results group"
    )
    failed = e2e.make_row("t", 8, "ours", {**run, "returncode": 2, "tail": "boom\nValueError: bad"})
    assert failed["status"].startswith("FAILED (exit 2)") and "ValueError: bad" in failed["status"]
    ref = e2e.make_row("t", 8, "peer", {**run, "seconds": 1.0})
    e2e.speedup(failed, ref, "peer")
    assert "speedup" not in failed


def test_a_skipped_peer_is_a_row_of_the_table():
    row = e2e.skipped("fit sho", 2**20, "SciPy script", "--skip-peer-above 262144")
    report = {
        "machine": {"cores": 2, "cpu_model": "cpu", "memory_gib": 1.0},
        "backend": "numpy",
        "command": "python -m benchmarks.bench_end_to_end",
        "repeats": 1,
        "load_before": 0.0,
        "load_after": 0.0,
        "peer_scripts": "bench_out/end_to_end_scripts",
        "rows": [row],
    }
    line = next(ln for ln in e2e.markdown(report).splitlines() if "SciPy script" in ln)
    assert "skipped: --skip-peer-above 262144" in line and "1,048,576" in line


@pytest.mark.slow
def test_quick_run_times_and_checks_every_contender(tmp_path):
    out = tmp_path / "out"
    scratch = tmp_path / "scratch"  # made when missing
    assert e2e.main(["--quick", "--out", str(out), "--dir", str(scratch)]) == 0
    report = json.loads((out / "end_to_end.json").read_text())
    assert report["ok"] is True
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu_model"]
    rows = report["rows"]
    assert [(r["task"].split(" (")[0], r["contender"]) for r in rows] == CONTENDERS
    for r in rows:
        assert r["status"] == "ok", r
        assert r["seconds"] > 0 and r["cpu_seconds"] > 0, r
        assert r["command"]
    fits = [r for r in rows if r["task"] == "fit sho"]
    for r in fits:
        assert r["size"] == 256 and r["fits_per_s"] > 0
        assert 0 <= r["accuracy"]["w0_median_rel_err"] <= e2e.LIMITS["w0_median_rel_err"]
        assert 0 <= r["accuracy"]["Q_median_rel_err"] <= e2e.LIMITS["Q_median_rel_err"]
    ours = [r for r in rows if r["contender"].startswith("pycro-gpu")]
    assert all(r["speedup"] > 0 and r["speedup_vs"] for r in ours)
    assert "PYCRO_GPU_CACHE_DIR=" in fits[0]["command"] and "--workers 2" in fits[3]["command"]
    by_name = {r["contender"]: r for r in rows}
    for cache in ("cold cache", "warm cache"):
        filtered = by_name[f"pycro-gpu filter ({cache})"]["accuracy"]["max_rel_err_vs_numpy"]
        assert 0 <= filtered <= e2e.LIMITS["filter_rel_err"]
        svd = by_name[f"pycro-gpu svd ({cache})"]["accuracy"]["max_rel_dS_vs_sklearn"]
        assert 0 <= svd <= e2e.LIMITS["svd_rel_dS"]
    table = (out / "end_to_end.md").read_text()
    assert table.startswith("### End to end")
    assert all(f"| {name} |" in table for _, name in CONTENDERS)
    assert sorted(p.name for p in (out / "end_to_end_scripts").iterdir()) == sorted(e2e.peer_scripts())
    assert scratch.is_dir() and not list(scratch.glob("bench_e2e_*"))  # scratch files removed
