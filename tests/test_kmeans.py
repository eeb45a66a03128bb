"""The array-API mini-batch KMeans (streamed KMeans on CuPy): same partition as scikit-learn's KMeans."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from pycro_gpu._lib.kmeans import MiniBatchKMeans, onehot_sums
from pycro_gpu.cluster import ARRAY_API_ENGINE, cluster
from tests.helpers import to_numpy


def blobs(rng, n=6000, d=24, k=5, spread=1.0):
    centres = rng.standard_normal((k, d)) * 6
    truth = rng.integers(k, size=n)
    return centres[truth] + spread * rng.standard_normal((n, d)), truth


def test_onehot_sums_equal_numpy(xp, rng):
    X = rng.standard_normal((50, 3))
    labels = rng.integers(4, size=50)
    sums, counts = onehot_sums(xp.asarray(labels), xp.asarray(X), 4, xp)
    ref = np.stack([X[labels == j].sum(axis=0) for j in range(4)])
    np.testing.assert_allclose(to_numpy(sums), ref, atol=1e-12)
    np.testing.assert_array_equal(to_numpy(counts), np.bincount(labels, minlength=4))


def test_streamed_batches_find_the_kmeans_partition(xp, rng):
    X, truth = blobs(rng)
    est = MiniBatchKMeans(5, random_state=0)
    Xx = xp.asarray(X)
    for _epoch in range(3):
        for s in range(0, X.shape[0], 512):
            est.partial_fit(Xx[s : min(s + 512, X.shape[0]), :])
    labels = to_numpy(est.predict(Xx))
    full = KMeans(5, n_init=10, random_state=0).fit_predict(X)
    assert adjusted_rand_score(full, labels) >= 0.99
    assert adjusted_rand_score(truth, labels) >= 0.99
    # the centres are the cluster means (running means of every row assigned)
    C = to_numpy(est.cluster_centers_)
    for j in range(5):
        np.testing.assert_allclose(C[j], X[labels == j].mean(axis=0), atol=0.15)
    assert to_numpy(est.counts_).sum() == 3 * X.shape[0]


def test_same_result_on_every_namespace(xp, rng):
    X, _ = blobs(rng, n=2000)
    ref = MiniBatchKMeans(5, random_state=3).fit_predict(X, batch_rows=400)
    got = MiniBatchKMeans(5, random_state=3).fit_predict(xp.asarray(X), batch_rows=400)
    assert adjusted_rand_score(ref, to_numpy(got)) == 1.0


def test_dead_centre_is_moved_to_a_far_row(rng):
    X = np.concatenate([np.zeros((100, 2)), np.full((5, 2), 50.0)])
    est = MiniBatchKMeans(2, random_state=0)
    est.cluster_centers_ = np.array([[0.0, 0.0], [-1000.0, -1000.0]])  # the second never wins a row
    est.counts_ = np.zeros(2)
    est.partial_fit(X)
    np.testing.assert_allclose(est.cluster_centers_[1], [50.0, 50.0])
    assert set(est.predict(X).tolist()) == {0, 1}


def test_refuses_a_first_batch_smaller_than_the_clusters():
    with pytest.raises(ValueError, match="fewer than n_clusters"):
        MiniBatchKMeans(4).partial_fit(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="partial_fit before predict"):
        MiniBatchKMeans(4).predict(np.zeros((3, 2)))


def test_cluster_streams_non_numpy_data_with_the_array_api_estimator(xp, rng):
    X, truth = blobs(rng, n=4000, d=16, k=4)
    res = cluster(xp.asarray(X), 4, streaming=True, memory_mb=0.5, progress=False)
    labels = to_numpy(res.labels)
    assert adjusted_rand_score(truth, labels) >= 0.99
    full = KMeans(4, n_init=10, random_state=0).fit_predict(X)
    assert adjusted_rand_score(full, labels) >= 0.99
    assert res.streamed
    if type(xp.asarray([1.0])) is not np.ndarray:
        assert res.engine == ARRAY_API_ENGINE


def test_full_kmeans_stops_on_the_centre_shift_as_scikit_learn_does(xp, rng, monkeypatch):
    """Data with no cluster structure: without a tolerance a few rows keep changing sides for many
    iterations; with scikit-learn's (1e-4 of the mean feature variance) Lloyd stops as it does, at the
    same inertia."""
    from pycro_gpu._lib import kmeans as km

    X = rng.standard_normal((3000, 6)) * np.linspace(3.0, 1.0, 6)
    iterations = []
    lloyd = km._lloyd

    def counted(*args, **kwargs):
        calls = {"n": 0}
        shifted = km._shifted_distances

        def count(*a):
            calls["n"] += 1
            return shifted(*a)

        monkeypatch.setattr(km, "_shifted_distances", count)
        try:
            return lloyd(*args, **kwargs)
        finally:
            monkeypatch.setattr(km, "_shifted_distances", shifted)
            iterations.append(calls["n"])

    monkeypatch.setattr(km, "_lloyd", counted)
    strict = km.KMeans(4, random_state=0, tol=0.0)
    strict.fit_predict(xp.asarray(X))
    strict_iters, iterations[:] = sum(iterations), []
    loose = km.KMeans(4, random_state=0)  # tol=1e-4
    labels = to_numpy(loose.fit_predict(xp.asarray(X)))
    assert sum(iterations) < 0.8 * strict_iters
    ref = KMeans(4, n_init=10, random_state=0).fit(X)
    assert loose.inertia_ <= ref.inertia_ * (1 + 1e-3)
    assert abs(loose.inertia_ - strict.inertia_) <= 1e-3 * strict.inertia_
    # (no partition to compare: data without structure have many of about the same inertia)
    np.testing.assert_array_equal(np.unique(labels), np.arange(4))
    with pytest.raises(ValueError, match="tol must be >= 0"):
        km.KMeans(4, tol=-1.0)
