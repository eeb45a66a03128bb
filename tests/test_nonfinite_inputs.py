"""NaN or inf in the data: one clear DataError from every decomposition and clustering entry point."""

import h5py
import numpy as np
import pytest

from pycro_gpu import DataError
from pycro_gpu.cluster import cluster
from pycro_gpu.decomposition import decompose, svd


@pytest.fixture
def bad(rng):
    x = rng.standard_normal((40, 12))
    x[17, 3] = np.nan
    x[30, 0] = np.inf
    return x


@pytest.mark.parametrize(
    "call",
    [
        lambda x: decompose(x, "pca", 2),
        lambda x: decompose(x, "incremental_pca", 2),
        lambda x: cluster(x, 2),
        lambda x: svd(x, 2, progress=False),
    ],
    ids=["pca", "incremental_pca", "kmeans", "svd"],
)
def test_in_memory_nonfinite_is_one_clear_error(bad, call):
    with pytest.raises(DataError, match=r"non-finite values \(NaN or inf\)") as info:
        call(bad)
    assert "\n" not in str(info.value)


def test_streamed_nonfinite_names_the_rows(bad, tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = bad
        with pytest.raises(DataError, match=r"rows \d+:\d+ of the data contain non-finite"):
            cluster(f["x"], 2, method="minibatch_kmeans", streaming=True, memory_mb=0.001)
