"""benchmarks/bench_cluster.py runs (small sizes) and its clusters agree with scikit-learn's."""

from __future__ import annotations

import json


def test_quick_cluster_benchmark_agrees_with_sklearn(tmp_path):
    from benchmarks.bench_cluster import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    (result,) = [json.loads(p.read_text()) for p in tmp_path.glob("bench_cluster_*.json")]
    assert result["features"] == "SVD scores (16 components)"
    assert result["ari_vs_sklearn"] >= 0.99 and result["ari_vs_truth"] >= 0.99
    assert result["peer_seconds"] > 0 and result["pycro_gpu_seconds"] > 0
    # the array-API mini-batch KMeans, streamed from the file, finds the same partition as full KMeans
    assert result["minibatch_ari_vs_sklearn"] >= 0.99 and result["minibatch_seconds"] > 0
