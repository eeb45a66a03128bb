"""``--workers 2`` on every file command: the same results as one process, the raw file untouched.

Each command runs twice from the command line's ``main()``, with ``--results`` in two new files: in
this process and on a local Dask cluster of two worker processes. The position-wise jobs (fit, filter)
are bit-identical; the multi-pass ones (svd, cluster, decompose) sum the workers' partial results in
row order on the driver and agree to rounding (the workers run BLAS single-threaded).
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from pycro_gpu import datasets
from pycro_gpu.cli import main
from pycro_gpu.io.usid import Dimension, write_main
from tests.helpers import h5_arrays


def _spectra(path):
    rng = np.random.default_rng(5)
    centers = np.abs(rng.standard_normal((3, 32))) * 4
    data = centers[rng.integers(0, 3, 600)] + np.abs(0.2 * rng.standard_normal((600, 32)))
    with h5py.File(path, "w") as f:
        write_main(f.create_group("Measurement_000/Channel_000"), "Raw_Data", data,
                   [Dimension("X", "m", 30), Dimension("Y", "m", 20)], Dimension("Bias", "V", 32),
                   "Current", "nA", chunks=(50, 32))  # fmt: skip
    return path


def _inputs(tmp_path):
    be = datasets.write_usid(datasets.band_excitation(shape=(8, 6), n_freq=32, seed=1), tmp_path / "be.h5")
    g = datasets.write_usid(datasets.gmode((6, 4), 512, seed=0), tmp_path / "g.h5")
    spectra = _spectra(tmp_path / "s.h5")
    return {
        "fit": (be, ["fit", "sho", "--backend", "numpy"], True),
        "filter": (g, ["filter", "--low-pass", "2e5"], True),
        "svd": (spectra, ["svd", "-k", "4", "--method", "gram"], False),
        "cluster": (spectra, ["cluster", "-n", "3", "-k", "4"], False),
        "decompose": (spectra, ["decompose", "--method", "incremental_pca", "-k", "3"], False),
        "image": (
            _image(tmp_path / "i.h5"),
            ["image", "--flatten", "plane", "--fft", "low", "--cutoff", "0.2"],
            True,
        ),
    }


def _image(path):
    rng = np.random.default_rng(6)
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        pos = [Dimension("X", "m", 30), Dimension("Y", "m", 20)]
        write_main(g, "Raw_Data", rng.standard_normal((600, 1)), pos, Dimension("arb", "", 1), "Height", "m")
    return path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("command", ["fit", "filter", "svd", "cluster", "decompose", "image"])
def test_two_workers_equal_one_process(command, tmp_path, monkeypatch):
    from pycro_gpu.process.distributed import DaskExecutor

    batches_on_dask = []
    real_map = DaskExecutor.map

    def counting_map(self, task, slices, source):
        for item in real_map(self, task, slices, source):
            batches_on_dask.append(item[0])
            yield item

    monkeypatch.setattr(DaskExecutor, "map", counting_map)
    raw, argv, bitwise = _inputs(tmp_path)[command]
    before = _sha(raw)
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    common = ["--memory-mb", "0.05", "-q"]  # many small batches, so that both workers get some
    assert main([*argv[:2], str(raw), *argv[2:], "--results", str(one), *common] if command == "fit" else
                [argv[0], str(raw), *argv[1:], "--results", str(one), *common]) == 0  # fmt: skip
    with_workers = ["--workers", "2", "--results", str(two), *common]
    assert main([*argv[:2], str(raw), *argv[2:], *with_workers] if command == "fit" else
                [argv[0], str(raw), *argv[1:], *with_workers]) == 0  # fmt: skip
    # the reads of the second run went through the workers (an image is processed whole: one read)
    assert len(batches_on_dask) >= (1 if command == "image" else 3)
    a, b = h5_arrays(one), h5_arrays(two)
    assert sorted(a) == sorted(b) and len(a) >= 3
    for name, value in a.items():
        if bitwise or value.dtype.kind not in "fc":
            np.testing.assert_array_equal(b[name], value, err_msg=name)
        else:
            scale = float(np.max(np.abs(value))) or 1.0
            np.testing.assert_allclose(b[name], value, rtol=1e-10, atol=1e-12 * scale, err_msg=name)
    assert _sha(raw) == before  # raw file byte-identical: read-only when results go elsewhere
