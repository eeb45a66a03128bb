"""Clustering: labels vs scikit-learn (adjusted Rand index), mean responses, dendrogram order, files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from pycro_gpu.cluster import CAPABILITIES, cluster, cluster_dataset, dendrogram_order, ward_linkage
from pycro_gpu.io.usid import Dimension, USIDataset, check_main, write_main
from tests.helpers import results_group, to_numpy


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Tiny matrices gain nothing from BLAS threads, and threaded OpenBLAS collapses on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def blobs(rng, n_per=60, n_spec=20, k=4, spread=0.05):
    centers = rng.standard_normal((k, n_spec)) * 3
    truth = np.repeat(np.arange(k), n_per)
    rng.shuffle(truth)
    X = centers[truth] + spread * rng.standard_normal((truth.size, n_spec))
    return X, truth


def mean_by_label(X, labels, k):
    return np.stack([X[labels == c].mean(axis=0) for c in range(k)])


def test_kmeans_matches_sklearn(xp, rng):
    X, truth = blobs(rng)
    r = cluster(xp.asarray(X), 4)
    ref = KMeans(4, random_state=0, n_init=10).fit_predict(X)
    labels = to_numpy(r.labels)
    assert adjusted_rand_score(labels, ref) == pytest.approx(1.0)
    assert adjusted_rand_score(labels, truth) == pytest.approx(1.0)
    # cuML on CuPy data where it imports, the array-API KMeans elsewhere: the values are checked
    assert r.engine in {"array-api", "cuml"} and not r.streamed
    tol = 1e-12 if r.engine == "array-api" else 1e-10
    np.testing.assert_allclose(to_numpy(r.mean_response), mean_by_label(X, labels, 4), rtol=tol, atol=tol)
    np.testing.assert_array_equal(to_numpy(r.counts), np.bincount(labels, minlength=4))
    assert type(r.labels) is type(xp.asarray([1]))


def test_labels_follow_dendrogram_order(rng):
    X, _ = blobs(rng, k=5)
    r = cluster(X, 5)
    cent = to_numpy(r.centroids)
    # after renumbering, the dendrogram of the centroids lists its leaves in label order
    np.testing.assert_array_equal(dendrogram_order(cent), np.arange(5))
    np.testing.assert_allclose(cent, mean_by_label(X, to_numpy(r.labels), 5), atol=1e-12)
    assert r.linkage.shape == (4, 4)
    from scipy.cluster.hierarchy import linkage

    np.testing.assert_allclose(r.linkage, linkage(cent, method="ward"), rtol=1e-12)
    unordered = cluster(X, 5, reorder=False)
    assert adjusted_rand_score(to_numpy(unordered.labels), to_numpy(r.labels)) == pytest.approx(1.0)


def test_streamed_minibatch_kmeans_from_hdf5(tmp_path, rng):
    X, truth = blobs(rng, n_per=150)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        ds = f.create_dataset("x", data=X)
        r = cluster(ds, 4, memory_mb=0.05)  # features exceed the budget: streams
    assert r.streamed
    labels = to_numpy(r.labels)
    assert adjusted_rand_score(labels, truth) == pytest.approx(1.0)
    np.testing.assert_allclose(to_numpy(r.mean_response), mean_by_label(X, labels, 4), atol=1e-12)


@pytest.mark.parametrize("method", ["agglomerative", "birch", "spectral", "minibatch_kmeans"])
def test_other_clusterers_recover_blobs(xp, rng, method):
    X, truth = blobs(rng, n_per=40)
    r = cluster(xp.asarray(X), 4, method)
    assert adjusted_rand_score(to_numpy(r.labels), truth) == pytest.approx(1.0)
    assert type(r.mean_response) is type(xp.asarray([1.0]))


def test_complex_data_and_features(rng):
    X, truth = blobs(rng, n_spec=8)
    Z = X[:, :4] + 1j * X[:, 4:]
    r = cluster(Z, 4)
    labels = to_numpy(r.labels)
    assert adjusted_rand_score(labels, truth) == pytest.approx(1.0)
    np.testing.assert_allclose(to_numpy(r.mean_response), mean_by_label(Z, labels, 4), atol=1e-12)
    # cluster on separate features (here: the real part only), mean responses of the data
    r2 = cluster(Z, 4, features=X[:, :4])
    assert adjusted_rand_score(to_numpy(r2.labels), truth) == pytest.approx(1.0)
    assert to_numpy(r2.mean_response).dtype == np.complex128


def test_errors(rng):
    X, _ = blobs(rng)
    with pytest.raises(ValueError, match="method must be one of"):
        cluster(X, 3, "dbscan")
    with pytest.raises(ValueError, match="cannot stream"):
        cluster(X, 3, "birch", streaming=True)
    with pytest.raises(ValueError, match="n_clusters must be between 1"):
        cluster(X, 0)
    assert CAPABILITIES["kmeans"]["gpu"] == "cuml.KMeans" and CAPABILITIES["birch"]["gpu"] is None


def test_cluster_dataset_writes_labels_and_mean_response(tmp_path, rng):
    X, truth = blobs(rng, n_per=50, n_spec=16)  # 200 positions = 20 x 10
    with h5py.File(tmp_path / "d.h5", "w") as f:
        grp = f.create_group("Measurement_000/Channel_000")
        main = write_main(
            grp,
            "Raw_Data",
            X.astype(np.float32),
            [Dimension("X", "m", 20), Dimension("Y", "m", 10)],
            Dimension("Bias", "V", 16),
            "Current",
            "A",
        )
        g = results_group(cluster_dataset(main, n_clusters=4, components=4), main)
        assert g.name.endswith("Raw_Data-Cluster_000")
        check_main(g["Labels"])
        check_main(g["Mean_Response"])
        labels = g["Labels"][()][:, 0]
        assert g["Labels"].shape == (200, 1) and g["Mean_Response"].shape == (4, 16)
        assert adjusted_rand_score(labels, truth) == pytest.approx(1.0)
        np.testing.assert_allclose(
            g["Mean_Response"][()], mean_by_label(X.astype(np.float32), labels, 4), rtol=1e-5
        )
        assert USIDataset(g["Mean_Response"]).spec_dims[0].name == "Bias"
        assert "Raw_Data-SVD_000" in grp  # features were the SVD abundance maps
        again = cluster_dataset(main, n_clusters=4, components=4)
        assert again.reused and again.group == g.name


@pytest.mark.gpu
def test_cuml_kmeans_on_cupy_matches_sklearn(rng):
    import cupy

    pytest.importorskip("cuml")
    X, truth = blobs(rng)
    r = cluster(cupy.asarray(X), 4)
    assert r.engine == "cuml" and isinstance(r.labels, cupy.ndarray)
    assert adjusted_rand_score(to_numpy(r.labels), truth) == pytest.approx(1.0)
    labels = to_numpy(r.labels)
    np.testing.assert_allclose(to_numpy(r.mean_response), mean_by_label(X, labels, 4), atol=1e-10)


def test_wide_spectra_cluster_svd_scores_by_default_with_the_same_labels(tmp_path):
    """``components='auto'``: spectra of >= 64 points are clustered on 16 SVD scores; same partition."""
    rng = np.random.default_rng(11)
    n, n_spec, k = 3000, 128, 4
    centers = rng.standard_normal((k, n_spec)) * 1.5
    truth = rng.integers(0, k, n)
    X = (centers[truth] + rng.standard_normal((n, n_spec))).astype(np.float32)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        main = write_main(f, "Raw_Data", X, [Dimension("X", "m", 60), Dimension("Y", "m", 50)],
                          Dimension("Energy", "eV", n_spec), "Counts", "a.u.")  # fmt: skip
        g = results_group(cluster_dataset(main, n_clusters=k, progress=False), main)
        labels = g["Labels"][()][:, 0]
        assert g.attrs["features"] == "SVD scores (16 components)"
        assert "Raw_Data-SVD_000" in f and f["Raw_Data-SVD_000"]["S"].shape == (16,)
        raw = results_group(cluster_dataset(main, n_clusters=k, components=None, progress=False), main)
        assert raw.attrs["features"] == "spectra"
    ref = KMeans(k, random_state=0, n_init=10).fit_predict(X.astype(np.float64))
    assert adjusted_rand_score(labels, ref) >= 0.99
    assert adjusted_rand_score(labels, truth) >= 0.99


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_ward_linkage_and_leaf_order_equal_scipy(rng, complex_):
    from scipy.cluster.hierarchy import leaves_list, linkage

    for _ in range(200):
        k, d = int(rng.integers(2, 12)), int(rng.integers(1, 20))
        c = rng.standard_normal((k, d)) * rng.uniform(0.1, 10)
        if complex_:
            c = c + 1j * rng.standard_normal((k, d))
        features = np.concatenate([c.real, c.imag], axis=1) if complex_ else c
        Z = linkage(features, method="ward")
        np.testing.assert_allclose(ward_linkage(c), Z, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(dendrogram_order(c), leaves_list(Z))
