"""Streamed batch engine: results against NumPy references, reuse, resume, executors, bad input."""

from __future__ import annotations

import functools
import hashlib
import pickle
import shutil

import h5py
import numpy as np
import pytest

from pycro_gpu.errors import DataError, USIDError
from pycro_gpu.io.hdf5 import BatchReader, batch_slices, open_h5, plan_batch_rows
from pycro_gpu.io.usid import Dimension, USIDataset, find_results, write_main
from pycro_gpu.process import (
    COMPLETED,
    Job,
    LocalExecutor,
    Output,
    SliceTask,
    compute_slice,
    run_job,
)

SHO = np.dtype([("Amplitude [V]", np.float32), ("Frequency [Hz]", np.float32), ("R2 Criterion", np.float32)])
N_X, N_Y, N_F = 6, 5, 16


def stats(batch, xp, *, scale=1.0):
    """Module-level compute (picklable): mean, scaled spectrum and a 3-field compound per position."""
    mean = xp.mean(batch, axis=1)
    peak = xp.max(batch, axis=1)
    arg = xp.astype(xp.argmax(batch, axis=1), batch.dtype)
    return {
        "mean": mean,
        "scaled": batch * scale,
        "fit": xp.stack([peak, arg, mean], axis=1),
    }


def reference(raw, scale=1.0):
    fit = np.zeros(raw.shape[0], SHO)
    fit["Amplitude [V]"] = raw.max(axis=1)
    fit["Frequency [Hz]"] = raw.argmax(axis=1)
    fit["R2 Criterion"] = raw.mean(axis=1, dtype=raw.dtype)
    return {"mean": raw.mean(axis=1, dtype=raw.dtype), "scaled": raw * np.float32(scale), "fit": fit}


def make_job(scale=1.0, **kw):
    freq = Dimension("Frequency", "Hz", np.linspace(1e5, 2e5, N_F))
    return Job(
        tool="Stats",
        compute=functools.partial(stats, scale=scale),
        outputs=[
            Output("mean", (), np.float32),
            Output("scaled", spec_dims=[freq], dtype=np.float32, quantity="Scaled", units="V"),
            Output("fit", (), SHO),
        ],
        parameters={"scale": scale},
        **kw,
    )


@pytest.fixture
def raw_file(tmp_path, rng):
    path = tmp_path / "raw.h5"
    data = rng.standard_normal((N_X, N_Y, N_F)).astype(np.float32)
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(
            g,
            "Raw_Data",
            data,
            [Dimension("X", "m", N_X), Dimension("Y", "m", N_Y)],
            Dimension("Frequency", "Hz", np.linspace(1e5, 2e5, N_F)),
            "Deflection",
            "V",
            chunks=(4, N_F),
        )
    return path


RAW = "/Measurement_000/Channel_000/Raw_Data"


def _digest(path, name=RAW):
    with h5py.File(path, "r") as f:
        return hashlib.sha256(f[name][()].tobytes()).hexdigest()


def test_run_matches_reference_and_writes_usid(raw_file):
    before = _digest(raw_file)
    res = run_job(make_job(2.0), raw_file, RAW, batch_rows=7, progress=False)
    assert not res.reused and not res.resumed and res.n_computed == N_X * N_Y and res.batch_rows == 7
    assert res.group == "/Measurement_000/Channel_000/Raw_Data-Stats_000"
    with h5py.File(raw_file, "r") as f:
        raw = f[RAW][()]
        g = f[res.group]
        ref = reference(raw, 2.0)
        np.testing.assert_array_equal(g["mean"][()], ref["mean"])
        np.testing.assert_array_equal(g["scaled"][()], ref["scaled"])
        assert g["fit"].dtype == SHO
        np.testing.assert_array_equal(g["fit"][()], ref["fit"])
        assert g[COMPLETED].dtype == np.uint8 and g[COMPLETED][()].all()
        assert g.attrs["status"] == "complete" and g.attrs["scale"] == 2.0 and g.attrs["tool"] == "Stats"
        assert f[g.attrs["source_000"]].name == RAW
        # the Main output shares the source's position ancillaries and reshapes like it
        m = USIDataset(g["scaled"])
        assert m.h5_pos_inds == f["/Measurement_000/Channel_000/Position_Indices"]
        assert m.n_dim_labels == ["X", "Y", "Frequency"] and (m.quantity, m.units) == ("Scaled", "V")
        np.testing.assert_array_equal(m.get_n_dim_form(), USIDataset(f[RAW]).get_n_dim_form() * 2)
    assert _digest(raw_file) == before


def test_rerun_reuses_finished_group_and_override(raw_file):
    first = run_job(make_job(), raw_file, RAW, batch_rows=8, progress=False)
    again = run_job(make_job(), raw_file, RAW, batch_rows=8, progress=False)
    assert again.reused and again.group == first.group and again.n_computed == 0
    other = run_job(make_job(3.0), raw_file, RAW, batch_rows=8, progress=False)
    assert not other.reused and other.group.endswith("Raw_Data-Stats_001")
    forced = run_job(make_job(), raw_file, RAW, batch_rows=8, override=True, progress=False)
    assert forced.group.endswith("Raw_Data-Stats_002") and forced.n_computed == N_X * N_Y


def test_resume_from_completed_positions(raw_file):
    """Fake an interrupted run: unmark some batches and scribble on them; resume recomputes only those."""
    res = run_job(make_job(), raw_file, RAW, batch_rows=4, progress=False)
    with h5py.File(raw_file, "r+") as f:
        g = f[res.group]
        clean = g["scaled"][()]
        g.attrs["status"] = "running"
        g[COMPLETED][8:13] = 0
        g["scaled"][8:13] = -1.0
    calls = []
    again = run_job(
        make_job(), raw_file, RAW, batch_rows=4, progress=False, on_batch=lambda d, t: calls.append(d)
    )
    assert again.resumed and again.group == res.group
    # batches [8, 12) and [12, 16) minus the finished 13..15: slices 8:12 and 12:13
    assert again.n_computed == 5 and calls == [N_X * N_Y - 1, N_X * N_Y]
    with h5py.File(raw_file, "r") as f:
        np.testing.assert_array_equal(f[res.group]["scaled"][()], clean)
        assert f[res.group].attrs["status"] == "complete"


def test_results_in_another_file_raw_read_only(raw_file, tmp_path):
    before = _digest(raw_file)
    raw_file.chmod(0o444)  # a raw file we may not write: must still work
    out = tmp_path / "results.h5"
    res = run_job(make_job(), raw_file, RAW, results=out, batch_rows=9, progress=False)
    assert res.file == str(out) and res.group == "/Raw_Data-Stats_000"
    with h5py.File(out, "r") as f, h5py.File(raw_file, "r") as r:
        g = f[res.group]
        assert g.attrs["source_file"] == str(raw_file) and g.attrs["source_path"] == RAW
        m = USIDataset(g["scaled"])  # ancillaries copied into the results file
        np.testing.assert_array_equal(
            m.h5_pos_vals[()], r["/Measurement_000/Channel_000/Position_Values"][()]
        )
        np.testing.assert_array_equal(m[()], r[RAW][()])
    again = run_job(make_job(), raw_file, RAW, results=out, progress=False)
    assert again.reused
    assert _digest(raw_file) == before


def test_prefetch_and_memory_budget_batches(raw_file, tmp_path):
    copy = tmp_path / "copy.h5"
    shutil.copy(raw_file, copy)
    # 64 B in, 80 B out per position, one batch of results in the writer: 1.25 * (64 * 4 + 3 * 80) = 620 B;
    # 4 KiB -> 6 rows -> chunk multiple 4
    a = run_job(make_job(), raw_file, RAW, memory_mb=4 / 1024, progress=False)
    expected = plan_batch_rows(
        N_X * N_Y, 64, 4 + 64 + 12, memory_mb=4 / 1024, chunk_rows=4, pending_results=1
    )
    assert a.batch_rows == expected == 4
    b = run_job(make_job(), copy, RAW, batch_rows=5, executor=LocalExecutor(prefetch=False), progress=False)
    with h5py.File(raw_file, "r") as fa, h5py.File(copy, "r") as fb:
        for name in ("mean", "scaled", "fit"):
            assert fa[a.group][name][()].tobytes() == fb[b.group][name][()].tobytes()


def test_compute_slice_is_picklable_and_matches(raw_file):
    job = make_job(0.5)
    task = SliceTask(str(raw_file), RAW, job.compute, "numpy", tuple(job.outputs))
    task2 = pickle.loads(pickle.dumps(task))
    out = compute_slice(task2.file_path, task2.dataset_path, slice(3, 11), task2.compute, task2.backend,
                        task2.outputs)  # fmt: skip
    with h5py.File(raw_file, "r") as f:
        ref = reference(f[RAW][3:11], 0.5)
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


def test_array_api_strict_backend_compute(raw_file, xp):
    """compute sees arrays of the backend namespace; the engine works with any array-API namespace."""
    seen = []

    def compute(batch, xp_):
        seen.append(type(batch).__module__.split(".")[0])
        return {"mean": xp_.mean(batch, axis=1)}

    job = Job("Mean", compute, [Output("mean")])
    task = SliceTask(str(raw_file), RAW, compute, "numpy", tuple(job.outputs))
    with h5py.File(raw_file, "r") as f:
        out = [res for _, res in LocalExecutor().map(task, [slice(0, 10), slice(10, 30)], f[RAW])]
        ref = f[RAW][()].mean(axis=1, dtype=np.float32)
    np.testing.assert_allclose(np.concatenate([out[0]["mean"], out[1]["mean"]]), ref,
                               rtol=1e-6)  # fmt: skip
    assert seen == ["numpy", "numpy"]
    # the same compute on array_api_strict / cupy arrays through compute_batch
    from pycro_gpu.process._engine import compute_batch

    with h5py.File(raw_file, "r") as f:
        res = compute_batch(f[RAW][:5], compute, xp, job.outputs)
    np.testing.assert_allclose(res["mean"], ref[:5], rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# helpers in io.hdf5
# ---------------------------------------------------------------------------------------------------


def test_plan_batch_rows_and_slices():
    # 1 MiB, 4 KiB rows, (2 buffers + 2 work) * 1.25 = 20 KiB per row -> 51 rows
    assert plan_batch_rows(10_000, 4096, memory_mb=1) == 51
    assert plan_batch_rows(10_000, 4096, memory_mb=1, chunk_rows=16) == 48
    assert plan_batch_rows(10, 4096, memory_mb=1) == 10
    assert plan_batch_rows(10_000, 10**9, memory_mb=1) == 1
    with pytest.raises(ValueError, match="memory_mb must be a positive"):
        plan_batch_rows(10, 8, memory_mb=-1)
    done = np.zeros(10, np.uint8)
    done[[0, 1, 5, 9]] = 1
    assert batch_slices(10, 5, done) == [slice(2, 5), slice(6, 9)]
    assert batch_slices(10, 5, np.ones(10, np.uint8)) == []


def test_batch_reader_reuses_buffers(tmp_path):
    with h5py.File(tmp_path / "b.h5", "w") as f:
        d = f.create_dataset("d", data=np.arange(40, dtype=np.float64).reshape(20, 2), chunks=(4, 2))
        r = BatchReader(d, 8, dtype=np.float32)
        a = r.read(slice(0, 8), 0)
        b = r.read(slice(8, 11), 1)
        assert a.dtype == np.float32 and a.base is r.buffers[0] and b.base is r.buffers[1]
        np.testing.assert_array_equal(b, [[16, 17], [18, 19], [20, 21]])
        with pytest.raises(ValueError, match="more than the buffer"):
            r.read(slice(0, 9), 0)


# ---------------------------------------------------------------------------------------------------
# bad input: one clear error each, nothing written
# ---------------------------------------------------------------------------------------------------


def _tree(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visit(names.append)
    return names


def test_unknown_dataset_path(raw_file):
    before = _tree(raw_file)
    with pytest.raises(
        DataError, match=r"'/nope' does not exist; Main datasets in the file: \['/Measurement"
    ):
        run_job(make_job(), raw_file, "/nope", progress=False)
    assert _tree(raw_file) == before


def test_non_usid_dataset(raw_file):
    with h5py.File(raw_file, "r+") as f:
        f.create_dataset("plain", data=np.zeros((4, 4)))
    before = _tree(raw_file)
    with pytest.raises(USIDError, match=r"/plain is not a USID Main dataset: missing attribute"):
        run_job(make_job(), raw_file, "/plain", progress=False)
    assert _tree(raw_file) == before


def test_missing_reference(raw_file):
    with h5py.File(raw_file, "r+") as f:
        del f[RAW].attrs["Position_Values"]
    before = _tree(raw_file)
    with pytest.raises(USIDError, match=r"missing attribute\(s\) Position_Values"):
        run_job(make_job(), raw_file, RAW, progress=False)
    assert _tree(raw_file) == before


def test_mismatched_ancillary_shapes(raw_file):
    with h5py.File(raw_file, "r+") as f:
        g = f["Measurement_000/Channel_000"]
        short = g.create_dataset("Short_Values", data=np.zeros((N_X * N_Y - 1, 2), np.float32))
        short.attrs["labels"] = np.array([b"X", b"Y"])
        short.attrs["units"] = np.array([b"m", b"m"])
        f[RAW].attrs["Position_Values"] = short.ref
    before = _tree(raw_file)
    with pytest.raises(USIDError, match=r"\(30, 2\) and Position_Values .*\(29, 2\) have mismatched shapes"):
        run_job(make_job(), raw_file, RAW, progress=False)
    assert _tree(raw_file) == before


def test_truncated_file(raw_file, tmp_path):
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(raw_file.read_bytes()[:3000])
    # opened read-only even when the results would go into it: nothing is written before the job validated
    with pytest.raises(DataError, match=r"truncated.h5' \(mode 'r'\): truncated, corrupt or locked"):
        run_job(make_job(), bad, RAW, progress=False)
    with pytest.raises(DataError, match=r"truncated.h5' \(mode 'r'\): truncated"):
        run_job(make_job(), bad, RAW, results=tmp_path / "out.h5", progress=False)
    assert bad.stat().st_size == 3000
    assert not (tmp_path / "out.h5").exists() or _tree(tmp_path / "out.h5") == []
    not_h5 = tmp_path / "text.h5"
    not_h5.write_text("hello")
    with pytest.raises(DataError, match=r"is not an HDF5 file \(5 bytes"):
        open_h5(not_h5)
    with pytest.raises(DataError, match="does not exist"):
        open_h5(tmp_path / "missing.h5")


def test_read_only_source_without_results_target(raw_file):
    with (
        h5py.File(raw_file, "r") as f,
        pytest.raises(DataError, match="open read-only; open it with mode 'r\\+'"),
    ):
        run_job(make_job(), f[RAW], progress=False)


def test_compute_errors_leave_nothing(raw_file):
    def wrong_keys(batch, xp):
        return {"mean": xp.mean(batch, axis=1)}

    before = _tree(raw_file)
    job = Job("Stats", wrong_keys, make_job().outputs)
    with pytest.raises(DataError, match=r"missing \['fit', 'scaled'\], unexpected \[\]"):
        run_job(job, raw_file, RAW, progress=False)
    out = raw_file.parent / "new_results.h5"
    with pytest.raises(DataError, match=r"missing \['fit', 'scaled'\]"):
        run_job(job, raw_file, RAW, results=out, progress=False)
    assert not out.exists()  # the results file this run created is removed again

    def wrong_shape(batch, xp):
        return {"m": batch[:, :3]}

    with pytest.raises(DataError, match=r"output 'm': compute returned shape \(30, 3\), expected \(30, 2\)"):
        run_job(Job("Shape", wrong_shape, [Output("m", 2)]), raw_file, RAW, progress=False)

    def complex_out(batch, xp):
        return {"m": batch[:, :2] * 1j}

    with pytest.raises(DataError, match="dtype complex64, which does not cast to float32"):
        run_job(Job("Cplx", complex_out, [Output("m", 2)]), raw_file, RAW, progress=False)
    assert _tree(raw_file) == before
    with h5py.File(raw_file, "r") as f:
        assert find_results(f[RAW], "Stats", status=None) == []


def test_output_and_job_validation():
    with pytest.raises(ValueError, match="does not match 16 spectroscopic steps"):
        Output("x", 3, spec_dims=[Dimension("F", "Hz", 16)])
    with pytest.raises(ValueError, match="not 'completed_positions'"):
        Output(COMPLETED)
    with pytest.raises(ValueError, match="output names repeat"):
        Job("T", stats, [Output("a"), Output("a")])


@pytest.mark.gpu
def test_run_job_on_cupy_matches_numpy(raw_file, tmp_path):
    from pycro_gpu.backend import cupy_available

    if not cupy_available():
        pytest.skip("no usable CUDA device for cupy")
    copy = tmp_path / "gpu.h5"
    shutil.copy(raw_file, copy)
    a = run_job(make_job(2.0), raw_file, RAW, backend="numpy", batch_rows=7, progress=False)
    b = run_job(make_job(2.0), copy, RAW, backend="cupy", batch_rows=7, progress=False)
    with h5py.File(raw_file, "r") as fa, h5py.File(copy, "r") as fb:
        assert fb[b.group].attrs["backend"] == "cupy"
        for name in ("mean", "scaled"):
            np.testing.assert_allclose(fb[b.group][name][()], fa[a.group][name][()], rtol=1e-6)
        for field in SHO.names:
            np.testing.assert_allclose(fb[b.group]["fit"][field], fa[a.group]["fit"][field], rtol=1e-6)
