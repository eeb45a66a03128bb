"""Validation at every public edge outside fitting: one ParameterError line naming the parameter and value.

Integer-like parameters take Python and NumPy integers only (1.5, 3.0, '3' and True are refused, never
rounded or parsed), ranges are checked and memory budgets must be positive finite numbers. A refused
dataset job leaves its file as it was.
"""

from __future__ import annotations

import hashlib
import math

import h5py
import numpy as np
import pytest

import pycro_gpu
from pycro_gpu import datasets
from pycro_gpu.cluster import cluster, cluster_dataset
from pycro_gpu.decomposition import choose_method, decompose, decompose_dataset, rebuild, svd, svd_dataset
from pycro_gpu.errors import ParameterError
from pycro_gpu.filters import (
    BandPassFilter,
    HarmonicPassFilter,
    LowPassFilter,
    NoiseBandFilter,
    butterworth_mask,
    extract_windows,
    gaussian_mask,
    notch_mask,
    svd_denoise,
)
from pycro_gpu.io.usid import Dimension, write_main

NAN, INF = math.nan, math.inf
X = np.random.default_rng(7).standard_normal((24, 10))
IMAGE = np.random.default_rng(8).standard_normal((16, 16))


@pytest.fixture(scope="module")
def usid_file(tmp_path_factory):
    """A 6 x 4-position USID file (10 spectral points) with one SVD group, for the dataset jobs."""
    path = tmp_path_factory.mktemp("validation") / "raw.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(
            g, "Raw_Data", X, [Dimension("X", "m", 6), Dimension("Y", "m", 4)],
            Dimension("Energy", "eV", 10), "Counts", "a.u.",
        )  # fmt: skip
    res = svd_dataset(path, k=4, progress=False)
    return path, res.group


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# (id, call(bad, ctx), parameter named in the message, bad value, text of the value in the message)
# ctx is (file path, SVD group path); None as the shown text means repr(bad)
def _cases():
    svd_bad = {
        "k": [1.5, "3", True, 0, -1, 2.0],
        "n_iter": [1.5, -1, "4"],
        "oversample": [-5, 2.5],
        "tol": [-1, 1.5, NAN, INF, "0.1"],
        "memory_mb": [0, -1, NAN, INF, "64", True],
        "seed": [1.5, -1, "0", 2**32],
        "method": ["fast", 3],
    }
    out = []
    for name, bads in svd_bad.items():
        for bad in bads:
            out.append((f"svd-{name}", lambda b, c, n=name: svd(X, **{"k": 2, n: b}), name, bad, None))
            if name != "oversample":
                out.append(
                    (
                        f"svd_dataset-{name}",
                        lambda b, c, n=name: svd_dataset(c[0], **{"k": 2, "progress": False, n: b}),
                        name,
                        bad,
                        None,
                    )
                )
    common = {"seed": [1.5, -1, "0"], "memory_mb": [0, NAN, INF, "64"]}
    for fname, call, count in (
        ("decompose", lambda c, **kw: decompose(X, **{"n_components": 2, **kw}), "n_components"),
        (
            "decompose_dataset",
            lambda c, **kw: decompose_dataset(c[0], **{"n_components": 2, "progress": False, **kw}),
            "n_components",
        ),
        ("cluster", lambda c, **kw: cluster(X, **{"n_clusters": 2, **kw}), "n_clusters"),
        (
            "cluster_dataset",
            lambda c, **kw: cluster_dataset(c[0], **{"n_clusters": 2, "progress": False, **kw}),
            "n_clusters",
        ),
    ):
        bads = {count: [1.5, "3", True, 0, 99], **common}
        if fname == "cluster":
            bads["epochs"] = [0, 1.5, "3"]
        if fname == "cluster_dataset":
            bads["components"] = [1.5, "3", True, 0, 11]
        for name, values in bads.items():
            for bad in values:
                out.append((f"{fname}-{name}", lambda b, c, f=call, n=name: f(c, **{n: b}), name, bad, None))
    for bad, name, shown in (
        (1.5, "components", None),
        ("3", "components", None),
        (True, "components", None),
        (0, "components", None),
        (9, "components", None),
        ([0, 0], "components", None),
        ([0.5], "components[0]", "0.5"),
        ([[0, 1]], "components", None),
        ([9], "components", None),
    ):
        out.append(("rebuild-components", lambda b, c: rebuild(c[0], c[1], components=b), name, bad, shown))
    out.append(("rebuild-memory_mb", lambda b, c: rebuild(c[0], c[1], memory_mb=b), "memory_mb", 0, None))
    out += [
        ("choose_method-k", lambda b, c: choose_method((100, 10), np.float64, k=b), "k", 1.5, None),
        (
            "choose_method-oversample",
            lambda b, c: choose_method((100, 10), np.float64, k=2, oversample=b),
            "oversample",
            -1,
            None,
        ),
        ("set_config-memory_mb", lambda b, c: pycro_gpu.set_config(memory_mb=b), "memory_mb", True, None),
        ("set_config-memory_mb", lambda b, c: pycro_gpu.set_config(memory_mb=b), "memory_mb", "64", None),
    ]
    lpf = {"signal_length": 1000, "samp_rate": 1e6, "f_cutoff": 100e3}
    for name, bads in {
        "signal_length": [1.5, "1000", True, 0, 1000.0],
        "samp_rate": [0, -1.0, NAN, INF, "1e6"],
        "f_cutoff": [0, -5.0, "1e5"],
        "roll_off": [1, -0.1, NAN],
    }.items():
        for bad in bads:
            out.append(
                (
                    "LowPassFilter-" + name,
                    lambda b, c, n=name: LowPassFilter(**{**lpf, n: b}),
                    name,
                    bad,
                    None,
                )
            )
    out += [
        (
            "BandPassFilter-fir_taps",
            lambda b, c: BandPassFilter(1000, 1e6, 100e3, 10e3, fir=True, fir_taps=b),
            "fir_taps",
            3.5,
            None,
        ),
        (
            "BandPassFilter-f_width",
            lambda b, c: BandPassFilter(1000, 1e6, 100e3, b),
            "f_width",
            0,
            None,
        ),
    ]
    for name, bad in (("num_harm", 2.5), ("num_harm", True), ("num_harm", 0), ("band_width", 0)):
        kw = {"first_freq": 50e3, "band_width": 5e3, "num_harm": 3, name: bad}
        out.append(
            (
                f"HarmonicPassFilter-{name}",
                lambda b, c, k=kw: HarmonicPassFilter(1000, 1e6, **k),
                name,
                bad,
                None,
            )
        )
    for name, bad, shown in (
        ("freqs", [-1.0], None),
        ("freqs", ["a"], None),
        ("freqs", [[1e3, 2e3]], None),
        ("freqs", [], None),
        ("freqs", [600e3], "600000.0"),
        ("freq_widths", [0.0], None),
        ("freq_widths", [-1.0], None),
        ("freq_widths", [NAN], None),
        ("freq_widths", [1.0, 2.0, 3.0], None),  # two frequencies, three widths
    ):
        kw = {"freqs": [1e3, 2e3], "freq_widths": [10.0], name: bad}
        out.append(
            (f"NoiseBandFilter-{name}", lambda b, c, k=kw: NoiseBandFilter(1000, 1e6, **k), name, bad, shown)
        )
    out += [
        ("gaussian_mask-cutoff", lambda b, c: gaussian_mask((16, 16), b), "cutoff", -1, None),
        ("butterworth_mask-order", lambda b, c: butterworth_mask((16, 16), 0.1, order=b), "order", 0, None),
        ("notch_mask-radius", lambda b, c: notch_mask((16, 16), [(0.1, 0.1)], b), "radius", 0, None),
        ("notch_mask-spots", lambda b, c: notch_mask((16, 16), b, 0.05), "spots[0]", [(0.7, 0.0)], "0.7"),
        ("notch_mask-spots", lambda b, c: notch_mask((16, 16), b, 0.05), "spots[0]", ["ab"], "'ab'"),
        ("extract_windows-window_size", lambda b, c: extract_windows(IMAGE, b), "window_size", 2.5, None),
        ("extract_windows-window_size", lambda b, c: extract_windows(IMAGE, b), "window_size", 0, None),
        (
            "extract_windows-window_size",
            lambda b, c: extract_windows(IMAGE, b),
            "window_size[1]",
            (4, True),
            "True",
        ),
        ("extract_windows-step", lambda b, c: extract_windows(IMAGE, 4, b), "step", 1.5, None),
    ]
    for bad in (1.5, "2", True):
        out.append(
            ("svd_denoise-n_components", lambda b, c: svd_denoise(IMAGE, 4, b), "n_components", bad, None)
        )
    for name, bad, shown in (
        ("shape", (4.5, 4), "4.5"),
        ("shape", ("4", 4), "'4'"),
        ("shape", (True, 4), "True"),
        ("shape", 5, None),
        ("n_freq", 32.0, None),
        ("seed", 1.5, None),
        ("seed", -1, None),
        ("pixel_size", 0, None),
        ("pixel_size", NAN, None),
        ("noise", NAN, None),
    ):
        kw = {"shape": (4, 4), "n_freq": 8, name: bad}
        out.append(
            (f"band_excitation-{name}", lambda b, c, k=kw: datasets.band_excitation(**k), name, bad, shown)
        )
    return out


CASES = _cases()


@pytest.mark.parametrize(
    ("call", "name", "bad", "shown"),
    [pytest.param(call, name, bad, shown, id=f"{cid}={bad!r}") for cid, call, name, bad, shown in CASES],
)
def test_bad_parameter_is_refused_with_one_line_naming_it(usid_file, call, name, bad, shown):
    path, _ = usid_file
    before = _digest(path)
    with pycro_gpu.config_context(progress=False), pytest.raises(ParameterError) as err:
        call(bad, usid_file)
    msg = str(err.value)
    assert "\n" not in msg
    assert name in msg, msg
    assert (repr(bad) if shown is None else shown) in msg, msg
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)  # catchable either way
    assert _digest(path) == before  # a refused job writes nothing


def test_every_public_edge_is_covered():
    covered = {cid.split("-")[0] for cid, *_ in CASES}
    assert covered >= {
        "svd", "svd_dataset", "decompose", "decompose_dataset", "cluster", "cluster_dataset", "rebuild",
        "choose_method", "set_config", "LowPassFilter", "BandPassFilter", "HarmonicPassFilter",
        "NoiseBandFilter", "gaussian_mask", "butterworth_mask", "notch_mask", "extract_windows",
        "svd_denoise", "band_excitation",
    }  # fmt: skip


def test_numpy_integers_are_accepted_and_used(usid_file, tmp_path):
    path, svd_group = usid_file
    kw = {"n_iter": np.int32(2), "oversample": np.uint8(4), "seed": np.int64(1), "progress": False}
    res = svd(X, k=np.int64(3), method="gram", **kw)  # the exact method: S equals LAPACK's
    np.testing.assert_allclose(res.S, np.linalg.svd(X, compute_uv=False)[:3], rtol=1e-8)
    labels = cluster(np.repeat([[0.0, 0.0], [5.0, 5.0]], 6, axis=0), n_clusters=np.int32(2)).labels
    assert sorted(np.bincount(labels).tolist()) == [6, 6]
    assert decompose(X, "pca", np.int64(2)).components.shape == (2, 10)
    w = LowPassFilter(np.int64(1000), np.float32(1e6), np.float64(100e3)).host_mask()
    assert w.shape == (501,) and w[0] == 1.0 and w[-1] == 0.0
    data, _ = datasets.band_excitation((np.int64(3), np.int32(4)), np.int64(8), seed=np.int64(2))
    assert data.shape == (3, 4, 8)
    with h5py.File(path, "r") as f:
        out = rebuild(f[svd_group], components=np.int64(2), results=tmp_path / "rebuilt.h5", progress=False)
    with h5py.File(out.file, "r") as f:
        u, s, vh = np.linalg.svd(X, full_matrices=False)
        np.testing.assert_allclose(f[out.group]["Rebuilt_Data"][()], (u[:, :2] * s[:2]) @ vh[:2], atol=1e-6)


def test_noise_band_filter_keeps_valid_bands():
    """The checks refuse nonsense only: DC (0 Hz), one width for all and per-band widths still work."""
    f = NoiseBandFilter(1000, 1e6, [0.0, 100e3, 200e3], 5e3)
    assert f.freq_widths.tolist() == [5e3, 5e3, 5e3]
    w = f.host_mask()
    assert w[0] == 0.0 and w[100] == 0.0 and w[200] == 0.0 and w[150] == 1.0
    g = NoiseBandFilter(1000, 1e6, np.array([100e3, 200e3]), [1e3, 20e3])
    assert g.host_mask()[205] == 0.0 and f.host_mask()[205] == 1.0
