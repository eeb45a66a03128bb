"""benchmarks/bench_gpu_fit.py: its helpers, a quick CPU run with every row, and the sm_90 ptxas rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import bench_gpu_fit as bench
from pycro_gpu.backend import cupy_available

SIZES = (512, 2048)
DTYPES = ("complex64", "complex128")


def test_divergence_factor_against_known_values():
    assert bench.divergence_factor(np.full(64, 7)) == 1.0
    # one fit of 100 iterations in a warp of 3-iteration fits: that warp pays 100, the other 3
    it = np.full(64, 3)
    it[5] = 100
    assert bench.divergence_factor(it) == pytest.approx(((100 + 3) / 2) / it.mean())
    # a partial last warp counts its own fits only
    assert bench.divergence_factor(np.array([2] * 32 + [4])) == pytest.approx(3.0 / (68 / 33))
    assert bench.iteration_stats(it)["niter_max"] == 100.0


def test_theoretical_occupancy_on_sm90():
    # 72 registers: 2304 per warp, 28 warps of 64 resident; 64 threads per block -> 14 blocks, 28 warps
    assert bench.theoretical_occupancy(72, 64) == pytest.approx(28 / 64)
    assert bench.theoretical_occupancy(72, 256) == pytest.approx(24 / 64)  # 3 blocks of 8 warps
    assert bench.theoretical_occupancy(32, 256) == 1.0
    assert bench.theoretical_occupancy(32, 32) == pytest.approx(0.5)  # 32 blocks per SM at most
    assert bench.theoretical_occupancy(255, 64) == pytest.approx(8 / 64)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    if cupy_available():
        pytest.skip("checks the CPU report; on a GPU node make gpu-check runs the benchmark itself")
    out = tmp_path_factory.mktemp("gpu_fit")
    argv = ["--quick", "--no-ptx", "--repeats", "1", "--dataset-side", "32", "--out", str(out)]
    report = bench.main([*argv, "--sizes", *map(str, SIZES)])
    return report, out


@pytest.mark.slow
def test_quick_run_reports_every_row(quick_report):
    report, out = quick_report
    assert json.loads((out / "gpu_fit.json").read_text())["rows"] == json.loads(json.dumps(report["rows"]))
    md = (out / "gpu_fit.md").read_text()
    assert md.startswith("# GPU SHO fit benchmark (quick sizes)")
    assert "bench_gpu_fit.py" in report["command"] and report["device"].startswith("none")
    key = ("section", "case", "dtype", "n_fits", "tpb")
    rows = {tuple(r.get(k) for k in key): r for r in report["rows"]}

    def measured(key):
        row = rows[key]
        assert row["status"] == "ok", row
        assert row["fits_per_s"] > 0 and row["seconds"] > 0, row
        return row

    for dtype in DTYPES:
        for n in SIZES:
            assert measured(("end_to_end", "fit_sho (guess + LM)", dtype, n, None))["first_call_s"] > 0
            measured(("kernel", "sho_guess", dtype, n, 64))
            measured(("kernel", "lm/sho", dtype, n, 64))
            for tpb in bench.TPB:  # GPU-only rows say why they are empty, in the table too
                assert rows[("tpb_sweep", "lm/sho", dtype, n, tpb)]["status"] == bench.NO_GPU
        it = rows[("iterations", "lm/sho", dtype, SIZES[-1], None)]
        assert it["divergence_factor"] >= 1.0
        assert 1 <= it["niter_mean"] <= it["niter_p99"] <= it["niter_max"] <= 100
        acc = rows[("accuracy", "fit_sho vs truth", dtype, SIZES[-1], None)]
        assert acc["converged"] > 0.95
        assert acc["w0_median_rel_err"] < 1e-3 and acc["Q_median_rel_err"] < 0.05
        assert acc["A_median_rel_err"] < 0.05
        assert rows[("cpu_agreement", f"first {SIZES[-1]} spectra", dtype, SIZES[-1], None)]["status"] == (
            bench.NO_GPU
        )
    for case in ("pageable", "pinned"):
        assert rows[("h2d", case, None, None, None)]["status"] == bench.NO_GPU
    ds = measured(("dataset", "fit_sho_dataset (HDF5 -> fit -> HDF5)", "complex64", 32 * 32, None))
    assert ds["n_batches"] > 1 and ds["memory_mb"] < ds["file_mb"]
    assert md.count(bench.NO_GPU) == sum(r["status"] == bench.NO_GPU for r in report["rows"])


@pytest.mark.ptx
def test_ptxas_rows_report_registers_and_no_spills():
    b = bench.Bench(gpu=False, repeats=1)
    bench.bench_ptx(b, DTYPES, bench.TPB)
    rows = {(r["case"], r["dtype"]): r for r in b.rows}
    assert set(rows) == {(k, d) for k in ("sho_guess", "lm/sho") for d in ("float32", "float64")}
    for row in rows.values():
        assert row["status"] == "ok", row
        assert 0 < row["registers"] <= 255
        assert row["spill_store_bytes"] == 0 and row["spill_load_bytes"] == 0, row
        for tpb in bench.TPB:
            assert 0 < row[f"occupancy_tpb{tpb}"] <= 1
    md = bench.markdown({"quick": True, "device": "-", "backend": "-", "command": "-", "machine": "-",
                         "environment": {"cpu_count": 1, "python": "3"}, "rows": b.rows})  # fmt: skip
    assert "| lm/sho | float32 | - |" in md and "occ @64" in md
