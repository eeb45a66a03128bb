"""The asynchronous pipeline of the streamed engine: write-behind, errors and interrupts, resume.

The reference everywhere is the synchronous path (``LocalExecutor(write_behind=False)``): every dataset
a job writes must be byte-identical to it, also after an error in the writer and a resumed run.
"""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

from pycro_gpu.datasets import beps, write_usid
from pycro_gpu.fitting.dataset import _sho_job, fit_sho_dataset
from pycro_gpu.io.hdf5 import plan_batch_rows
from pycro_gpu.io.usid import Dimension, USIDataset
from pycro_gpu.process import COMPLETED, Job, LocalExecutor, Output, run_job
from pycro_gpu.process._engine import _BatchWriter

RAW = "/Measurement_000/Channel_000/Raw_Data"
N_POS, N_FREQ, N_DC = 36, 24, 8
BATCH = 5  # 8 batches, the last one short


@pytest.fixture(scope="module")
def be_file(tmp_path_factory):
    d = beps(shape=(6, 6), n_freq=N_FREQ, n_dc=N_DC, noise=0.02, seed=3)
    return write_usid(d, tmp_path_factory.mktemp("pipe") / "be.h5", exclude=("clean",))


def _copy(src, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(src.read_bytes())
    return path


def _datasets(path, group):
    """Every dataset of a results group: name -> (dtype, bytes)."""
    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype, obj[()].tobytes())

        f[group].visititems(visit)
    return out


def _job(be_file, maxiter=100):
    """The SHO fit job of the file's Raw_Data (the job ``fit_sho_dataset`` runs)."""
    with h5py.File(be_file, "r") as f:
        return _sho_job(USIDataset(f[RAW]), maxiter=maxiter)


def _assert_same(got, ref):
    """Every dataset of ``ref`` (from :func:`_datasets`) is in ``got`` with its dtype and bytes."""
    for name, (dtype, data) in ref.items():
        assert got[name][0] == dtype and got[name][1] == data, name


def _writers_alive():
    return [t for t in threading.enumerate() if t.name == "pycro_gpu-write"]


@pytest.fixture(scope="module")
def reference(be_file, tmp_path_factory):
    """The SHO fit on the synchronous path: (path, group, datasets)."""
    path = _copy(be_file, tmp_path_factory.mktemp("ref"), "ref.h5")
    res = fit_sho_dataset(
        path,
        RAW,
        backend="numpy",
        batch_rows=BATCH,
        executor=LocalExecutor(write_behind=False),
        progress=False,
    )
    return path, res.group, _datasets(path, res.group)


def test_write_behind_sho_fit_is_byte_identical(be_file, reference, tmp_path):
    _, group, ref = reference
    path = _copy(be_file, tmp_path, "behind.h5")
    calls = []
    res = run_job(
        _job(be_file),
        path,
        RAW,
        backend="numpy",
        batch_rows=BATCH,
        executor=LocalExecutor(write_behind=True),
        progress=False,
        on_batch=lambda done, total: calls.append((done, total, threading.current_thread().name)),
    )
    assert res.group == group and res.n_computed == N_POS and not res.resumed
    got = _datasets(path, res.group)
    assert sorted(got) == sorted(ref) and {"Fit", "Guess", "Converged", "Status", COMPLETED} <= set(got)
    _assert_same(got, ref)
    # on_batch follows every write, in row order, from the writer thread
    assert [c[:2] for c in calls] == [(min(k * BATCH, N_POS), N_POS) for k in range(1, 9)]
    assert {c[2] for c in calls} == {"pycro_gpu-write"}
    assert not _writers_alive()


def identity(batch, xp):
    """A compute whose result is the batch itself (a view of the reader's buffer)."""
    return {"copy": batch}


def test_results_that_alias_the_read_buffer_are_copied_before_write_behind(tmp_path, rng):
    data = rng.standard_normal((40, 8)).astype(np.float32)
    path = tmp_path / "raw.h5"
    from pycro_gpu.io.usid import write_main

    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(g, "Raw_Data", data, [Dimension("X", "m", 40)], Dimension("T", "s", 8), "D", "V")
    job = Job("Copy", identity, [Output("copy", 8, np.float32)])
    res = run_job(job, path, RAW, batch_rows=3, progress=False)  # default executor: prefetch + write-behind
    with h5py.File(path, "r") as f:
        assert f[res.group]["copy"][()].tobytes() == data.tobytes()


def test_writer_error_reaches_caller_marks_only_written_batches_and_resumes(
    be_file, reference, tmp_path, monkeypatch
):
    _, group, ref = reference
    path = _copy(be_file, tmp_path, "err.h5")
    error = OSError(28, "No space left on device (injected)")
    writes = []
    original = h5py.Dataset.__setitem__

    def failing(self, key, value):
        if self.name.endswith("/Fit") and threading.current_thread().name == "pycro_gpu-write":
            writes.append(key)
            if len(writes) == 3:
                raise error
        original(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    with pytest.raises(OSError) as caught:
        fit_sho_dataset(path, RAW, backend="numpy", batch_rows=BATCH, progress=False)
    assert caught.value is error  # the writer's very exception, not a wrapper
    assert not _writers_alive()  # nothing left running (and nothing hung)
    assert not [t for t in threading.enumerate() if t.name.startswith("pycro_gpu-read")]  # reader stopped
    monkeypatch.setattr(h5py.Dataset, "__setitem__", original)
    with h5py.File(path, "r") as f:
        g = f[group]
        done = g[COMPLETED][()]
        assert g.attrs["status"] == "running"
        # exactly the two batches written before the failing one are marked, and hold their final values
        np.testing.assert_array_equal(done, np.arange(N_POS) < 2 * BATCH)
        fit = g["Fit"][()]
    ref_fit = np.frombuffer(ref["Fit"][1], dtype=ref["Fit"][0]).reshape(fit.shape)
    assert fit[: 2 * BATCH].tobytes() == ref_fit[: 2 * BATCH].tobytes()
    res = fit_sho_dataset(path, RAW, backend="numpy", batch_rows=BATCH, progress=False)
    assert res.resumed and res.group == group and res.n_computed == N_POS - 2 * BATCH
    _assert_same(_datasets(path, group), ref)


class Interrupt:
    """A compute that raises KeyboardInterrupt (as Ctrl-C or the CLI's SIGTERM do) at call ``at``."""

    def __init__(self, compute, at):
        self.compute, self.at, self.calls = compute, at, 0

    def __call__(self, batch, xp):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.compute(batch, xp)


def test_interrupt_in_the_driver_finishes_the_write_in_progress_and_resumes(be_file, reference, tmp_path):
    _, group, ref = reference
    path = _copy(be_file, tmp_path, "int.h5")
    job = _job(be_file)
    job.compute = Interrupt(job.compute, at=4)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, path, RAW, backend="numpy", batch_rows=BATCH, progress=False)
    assert not _writers_alive()
    with h5py.File(path, "r") as f:
        g = f[group]
        done = g[COMPLETED][()].astype(bool)
        fit = g["Fit"][()]
    n_marked = int(done.sum())
    # batches 0 and 1 were written before batch 2 was handed over; batch 2 is written or dropped whole
    assert n_marked in (2 * BATCH, 3 * BATCH) and done[:n_marked].all()
    ref_fit = np.frombuffer(ref["Fit"][1], dtype=ref["Fit"][0]).reshape(fit.shape)
    assert fit[done].tobytes() == ref_fit[done].tobytes()  # a marked position holds its final values
    res = fit_sho_dataset(path, RAW, backend="numpy", batch_rows=BATCH, progress=False)
    assert res.resumed and res.n_computed == N_POS - n_marked
    _assert_same(_datasets(path, group), ref)


def test_on_batch_interrupt_stops_after_that_batch(be_file, tmp_path):
    path = _copy(be_file, tmp_path, "stop.h5")
    seen = []

    def stop(done, total):
        seen.append(done)
        if done >= 3 * BATCH:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(
            _job(be_file),
            path,
            RAW,
            backend="numpy",
            batch_rows=BATCH,
            progress=False,
            on_batch=stop,
        )
    assert seen == [BATCH, 2 * BATCH, 3 * BATCH] and not _writers_alive()
    with h5py.File(path, "r") as f:
        g = f[RAW + "-SHO_Fit_000"]
        np.testing.assert_array_equal(g[COMPLETED][()], np.arange(N_POS) < 3 * BATCH)


def test_memory_budget_counts_the_batch_in_flight(be_file, tmp_path):
    behind = run_job(
        _job(be_file, maxiter=2),
        _copy(be_file, tmp_path, "a.h5"),
        RAW,
        memory_mb=0.05,
        progress=False,
    )
    sync = run_job(
        _job(be_file, maxiter=2),
        _copy(be_file, tmp_path, "b.h5"),
        RAW,
        memory_mb=0.05,
        executor=LocalExecutor(write_behind=False),
        progress=False,
    )
    job = _job(be_file)
    with h5py.File(be_file, "r") as f:
        bytes_in = f[RAW].shape[1] * f[RAW].dtype.itemsize
    bytes_out = sum(o.bytes_per_position for o in job.outputs)
    kw = {"memory_mb": 0.05, "work_multiplier": 6.0}
    assert behind.batch_rows == plan_batch_rows(N_POS, bytes_in, bytes_out, pending_results=1, **kw)
    assert sync.batch_rows == plan_batch_rows(N_POS, bytes_in, bytes_out, **kw)


def test_batch_writer_orders_bounds_and_propagates():
    order, gate, in_write = [], threading.Event(), threading.Event()

    def write(sl, res):
        in_write.set()
        gate.wait(5)
        order.append(sl.start)

    w = _BatchWriter(write, depth=1)
    w.submit(slice(0, 1), {})
    assert in_write.wait(5)
    blocked = threading.Thread(target=w.submit, args=(slice(1, 2), {}))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # depth 1: the second batch waits for the first to be written
    gate.set()
    blocked.join(5)
    w.close()
    assert order == [0, 1]

    boom = ValueError("boom")

    def fail(sl, res):
        raise boom

    w = _BatchWriter(fail)
    w.submit(slice(0, 1), {})
    with pytest.raises(ValueError) as caught:
        w.close()
    assert caught.value is boom
    w = _BatchWriter(fail)
    w.submit(slice(0, 1), {})
    with pytest.raises(ValueError):
        for k in range(1, 5):  # a submit after the failure raises it
            w.submit(slice(k, k + 1), {})
    w.abort()
    assert not _writers_alive()


# ---- the GPU pipeline's transfers (BatchTransfers), run on NumPy here -------------------------------


def mixed(batch, xp):
    """Outputs of every kind the packed copy back must restore: real, bool, int8, complex, 0-d rows."""
    n = batch.shape[0]
    return {
        "table": xp.reshape(xp.concat([batch[:, :5], batch[:, :5] * 2.0], axis=1), (n, 2, 5)),
        "flag": batch[:, 0] > 0,
        "code": xp.astype(xp.arange(n) % 7 - 3, xp.int8),
        "spec": xp.astype(batch[:, :3], xp.complex128) * 1j,
        "sum": xp.sum(batch, axis=1),
    }


MIXED = [
    Output("table", 2, np.dtype([(k, np.float32) for k in "abcde"])),
    Output("flag", (), np.uint8),
    Output("code", (), np.int8),
    Output("spec", 3, np.complex128),
    Output("sum", (), np.float64),
]


def test_batch_transfers_give_the_synchronous_results(be_file, rng):
    import array_api_compat.numpy as xp

    from pycro_gpu.backend import BatchTransfers
    from pycro_gpu.process._engine import compute_batch

    transfers = BatchTransfers(xp)
    assert not transfers.on_device and transfers.stream is None
    for n in (7, 3, 7):  # the staging buffer is reused and grown
        batch = rng.standard_normal((n, 8))
        a = compute_batch(batch, mixed, xp, MIXED)
        b = compute_batch(batch, mixed, xp, MIXED, transfers=transfers)
        for o in MIXED:
            assert b[o.name].dtype == a[o.name].dtype and b[o.name].shape == a[o.name].shape
            assert b[o.name].tobytes() == a[o.name].tobytes(), o.name
            assert not np.shares_memory(b[o.name], transfers._staging)  # copies: the next batch reuses it
    job = _job(be_file)
    with h5py.File(be_file, "r") as f:
        batch = f[RAW][:6]
    a = compute_batch(batch, job.compute, xp, job.outputs)
    b = compute_batch(batch, job.compute, xp, job.outputs, transfers=transfers)
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_batch_reader_allocates_with_the_given_function(tmp_path):
    from pycro_gpu.io.hdf5 import BatchReader

    made = []

    def empty(shape, dtype):
        made.append((shape, np.dtype(dtype)))
        return np.zeros(shape, dtype)

    with h5py.File(tmp_path / "r.h5", "w") as f:
        d = f.create_dataset("d", data=np.arange(20.0).reshape(10, 2))
        r = BatchReader(d, 4, n_buffers=2, empty=empty)
        assert made == [((4, 2), np.dtype(float))] * 2
        assert r.read(slice(8, 10), 1).tolist() == [[16.0, 17.0], [18.0, 19.0]]


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_on_an_explicit_stream_equal_the_default_launch_under_simulator(dtype):
    from numba import cuda
    from pycro_gpu.kernels._jit import numba_stream
    from pycro_gpu.kernels.lm import lm_fit_batch
    from pycro_gpu.kernels.model_sho import SHO, cuda_sho_guess_kernel, sho_guess_cuda

    from tests.test_lm import _kernel_inputs, _sho_case

    h, _ = _sho_case(12, noise=0.02)
    x, y, _, _ = _kernel_inputs(h, dtype)
    stream = numba_stream(0x1234)  # no external streams in the simulator: its own stream stands in
    assert stream is not None
    kernel = cuda_sho_guess_kernel(np.dtype(dtype).name)
    default = cuda.to_device(np.empty((12, 4), dtype))
    kernel[1, 16](cuda.to_device(x), cuda.to_device(y), default)
    on_stream = cuda.device_array((12, 4), dtype, stream=stream)
    sho_guess_cuda(
        cuda.to_device(x, stream=stream), cuda.to_device(y, stream=stream), on_stream, stream=stream
    )
    g = default.copy_to_host()
    assert on_stream.copy_to_host(stream=stream).tobytes() == g.tobytes()
    lo = np.array([0, x.min(), -np.inf, -np.inf], dtype)
    hi = np.array([np.inf, x.max(), np.inf, np.inf], dtype)
    ref = lm_fit_batch(SHO, x, y, g, lo, hi, maxiter=20, target="cuda", start_r2=True)
    got = lm_fit_batch(SHO, x, y, g, lo, hi, maxiter=20, target="cuda", stream=stream, start_r2=True)
    assert (ref[4] == 0).all()
    for a, b in zip(ref, got, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # the start's R^2 of the simulated CUDA kernel: the CPU kernel's (which computes in float64)
    cpu = lm_fit_batch(SHO, x, y, g, lo, hi, maxiter=20, start_r2=True)
    np.testing.assert_allclose(got[5], cpu[5], rtol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.gpu
def test_cupy_pipeline_equals_the_synchronous_transfers(be_file, tmp_path):
    # On a GPU: the executor's stream, pinned buffers and packed copy back (run_job) against batches
    # computed with plain synchronous transfers on the default stream (compute_batch without transfers).
    import array_api_compat.cupy as xp

    from pycro_gpu.process._engine import compute_batch

    path = _copy(be_file, tmp_path, "gpu.h5")
    job = _job(be_file)
    res = run_job(job, path, RAW, backend="cupy", batch_rows=BATCH, progress=False)
    with h5py.File(path, "r") as f:
        g, raw = f[res.group], f[RAW][()]
        for start in range(0, N_POS, BATCH):
            sl = slice(start, min(start + BATCH, N_POS))
            want = compute_batch(raw[sl], job.compute, xp, job.outputs)
            for o in job.outputs:
                assert g[o.name][sl].tobytes() == want[o.name].tobytes(), (o.name, sl)
