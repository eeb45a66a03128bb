"""The demo job end to end (small size): report, figures, results file and accuracy vs ground truth."""

import contextlib
import io
import json
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

import pycro_gpu
from pycro_gpu import demo
from pycro_gpu.viz.report import Section


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with pycro_gpu.config_context(backend="numpy", progress=False), contextlib.redirect_stdout(buf):
        summary = demo.run_demo(size="small", out=out, seed=0, quiet=False)
    return out, summary, buf.getvalue()


def test_demo_steps_all_ran(small_demo):
    out, summary, _ = small_demo
    assert summary["backend"] == "numpy" and summary["size"] == "small"
    statuses = {k: s["status"] for k, s in summary["steps"].items()}
    assert statuses == dict.fromkeys([key for key, _, _ in demo.STEPS], "ok") | (
        {"translate": statuses["translate"]}  # needs the io extra and ../shared/data
    )
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary, default=float))
    assert (out / "demo.log").read_text().startswith("all steps ran")


def test_report_references_every_figure_and_each_is_non_trivial(small_demo):
    out, summary, _ = small_demo
    parser = _Imgs()
    parser.feed((out / "report.html").read_text())
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "figures").glob("*.png"))
    assert sorted(parser.srcs) == on_disk == summary["files"]["figures"]
    expected = {
        "sho_maps",
        "sho_spectra",
        "loop_maps",
        "loops",
        "svd_scree",
        "svd_components",
        "kmeans_clusters",
        "fft_filter_gmode",
        "fft_filter_image",
    }
    assert expected <= {p.split("/")[-1][:-4] for p in on_disk}
    for src in parser.srcs:
        img = imread(out / src)[..., :3].mean(axis=-1)
        assert img.shape[0] > 200 and img.shape[1] > 300, src
        assert img.std() > 0.05, src  # not blank
        assert (img < 0.9).mean() > 0.02, src  # some ink beyond the white background


def test_report_shows_backend_timings_and_accuracy(small_demo):
    out, summary, _ = small_demo
    html = (out / "report.html").read_text()
    assert "numpy" in html and "total time (s)" in html
    files = [v for k, v in summary["files"].items() if k not in ("report", "figures")]
    assert files[0] == "beps.h5" and "gmode.h5" in files and ", ".join(files) in html
    assert "adjusted Rand index vs truth" in html and "rms error vs clean" in html
    assert "Key results" in html and "SHO fit: resonance frequency, median |error| (Hz)" in html
    for s in summary["steps"].values():
        assert f"{s['seconds']:.3f}" in html


def test_results_file_holds_raw_data_and_results(small_demo):
    out, summary, _ = small_demo
    from pycro_gpu.io.usid import USIDataset, find_results

    with h5py.File(out / summary["files"]["results"], "r") as f:
        raw = USIDataset(f["Measurement_000/Channel_000/Raw_Data"])
        assert raw.shape == (144, 48 * 32)
        assert [d.name for d in raw.spec_dims] == ["Frequency", "DC_Offset"]
        svd = find_results(raw, "SVD")
        assert len(svd) == 1 and svd[0]["U"].shape == (144, 8)
        (sho,) = find_results(raw, "SHO_Fit")
        fit = USIDataset(sho["Fit"])
        assert fit.shape == (144, 48) and fit.spec_dims[0].name == "DC_Offset"
        assert fit.dtype.names == (
            "Amplitude [V]",
            "Frequency [Hz]",
            "Quality Factor",
            "Phase [rad]",
            "R2 Criterion",
        )
        truth = f["Measurement_000/Ground_Truth"]
        w0 = fit[()]["Frequency [Hz]"]
        np.testing.assert_allclose(np.median(w0, axis=1), truth["resonance_frequency"][()].ravel(), rtol=2e-4)
        assert sho.attrs["status"] == "complete" and sho["completed_positions"][()].all()
        piezo = USIDataset(sho["Piezoresponse"])  # A cos(phi): the loops, input of the loop fit
        assert piezo.shape == (144, 48) and piezo.spec_dims[0].name == "DC_Offset"
        np.testing.assert_allclose(
            piezo[()], fit[()]["Amplitude [V]"] * np.cos(fit[()]["Phase [rad]"]), rtol=1e-5, atol=1e-9
        )
        (loop,) = find_results(piezo, "Loop_Fit")
        lp = loop["Fit"][()]
        assert lp.shape == (144,) and lp.dtype.names[:9] == (
            "a0",
            "a1",
            "a2",
            "a3",
            "a4",
            "b0",
            "b1",
            "b2",
            "b3",
        )
        np.testing.assert_allclose(lp["a3"], truth["loop_parameters"][()][..., 3].ravel(), atol=0.5)
        np.testing.assert_allclose(loop["Switching"][()]["V+"], lp["a3"])
        assert sho["Guess"].shape == (144, 48) and loop["Guess"].shape == (144,)


def test_demo_accuracy_vs_ground_truth(small_demo):
    _, summary, printed = small_demo
    steps = summary["steps"]
    # SHO fit: 3 % noise, 32 bins over 20 kHz; Q ~ 200 (FWHM ~ 1.75 kHz)
    sho = steps["sho_fit"]
    assert sho["converged_fraction"] > 0.99
    assert sho["resonance_median_abs_error_hz"] < 50  # ~ 1/35 of a bin
    assert sho["quality_median_rel_error"] < 0.05
    assert sho["amplitude_median_rel_error"] < 0.05
    assert sho["phase_median_abs_error_rad"] < 0.05
    # loop fit: switching voltages within a fraction of the 0.87 V DC step
    loop = steps["loop_fit"]
    assert loop["v_minus_median_abs_error_v"] < 0.2 and loop["v_plus_median_abs_error_v"] < 0.2
    assert loop["switchable_polarization_median_rel_error"] < 0.03
    # SVD singular values agree with LAPACK; 8 components hold most of the signal
    assert steps["svd"]["singular_value_rel_error"] < 1e-4
    assert steps["svd"]["variance_captured"] > 0.9
    # KMeans of the loops finds the two domains
    assert steps["kmeans"]["adjusted_rand_index"] > 0.9
    # harmonic pass: white noise of 0.5 V over 500 kHz, 3 bands of ~1 kHz kept -> ~10x less error
    assert steps["fft_filter"]["rms_error_before"] == pytest.approx(np.sqrt(0.5**2 + 0.3**2 / 2), rel=0.03)
    assert steps["fft_filter"]["rms_error_after"] < steps["fft_filter"]["rms_error_before"] / 5
    assert steps["image_filter"]["rms_error_after"] < steps["image_filter"]["rms_error_before"] / 2
    # the printed summary names the accuracy figures
    assert "kmeans.adjusted_rand_index" in printed and "report:" in printed
    assert "sho_fit.resonance_median_abs_error_hz" in printed


def _fake_steps(monkeypatch, funcs):
    monkeypatch.setattr(demo, "STEPS", [(k, k.title(), f) for k, f in funcs.items()])


def test_missing_capability_is_skipped_and_a_failure_reported(tmp_path, monkeypatch):
    def ok(ctx, sec: Section):
        sec.rows = [("value", 1.0)]
        ctx.metrics["ok"] = {"value": 1.0}

    def missing(ctx, sec):
        from pycro_gpu.fitting import no_such_capability  # noqa: F401

    def broken(ctx, sec):
        raise RuntimeError("boom")

    _fake_steps(monkeypatch, {"ok": ok, "missing": missing})
    with pycro_gpu.config_context(backend="numpy"):
        summary = demo.run_demo(out=tmp_path / "a", quiet=True)
    assert summary["steps"]["ok"]["status"] == "ok" and summary["steps"]["ok"]["value"] == 1.0
    assert summary["steps"]["missing"]["status"] == "skipped"
    assert "no_such_capability" in summary["steps"]["missing"]["message"]

    _fake_steps(monkeypatch, {"broken": broken, "ok": ok})
    with pycro_gpu.config_context(backend="numpy"), pytest.raises(demo.DemoError, match=r"broken.*boom"):
        demo.run_demo(out=tmp_path / "b", quiet=True)
    # the report and the log are still written, and the later step still ran
    saved = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert saved["steps"]["broken"]["status"] == "failed" and saved["steps"]["ok"]["status"] == "ok"
    assert "RuntimeError: boom" in (tmp_path / "b" / "demo.log").read_text()
    assert "failed" in (tmp_path / "b" / "report.html").read_text()


def test_bad_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="size must be one of small, medium, large"):
        demo.run_demo(size="huge", out=tmp_path)


@pytest.mark.gpu
def test_demo_on_cupy_matches_numpy(small_demo, tmp_path):
    _, ref, _ = small_demo
    with pycro_gpu.config_context(backend="cupy", progress=False):
        summary = demo.run_demo(size="small", out=tmp_path, seed=0, quiet=True)
    assert summary["backend"] == "cupy"
    assert {k: s["status"] for k, s in summary["steps"].items()} == {
        k: s["status"] for k, s in ref["steps"].items()
    }
    got, want = summary["steps"], ref["steps"]
    # same data, same algorithms: the accuracy figures agree (float32 fits: to a few per cent)
    for key, metric in [
        ("sho_fit", "resonance_median_abs_error_hz"),
        ("sho_fit", "quality_median_rel_error"),
        ("loop_fit", "v_plus_median_abs_error_v"),
    ]:
        assert got[key][metric] == pytest.approx(want[key][metric], rel=0.1), (key, metric)
    assert got["kmeans"]["adjusted_rand_index"] > 0.9
    for key in ("fft_filter", "image_filter"):
        assert got[key]["rms_error_after"] == pytest.approx(want[key]["rms_error_after"], rel=1e-3)
    assert got["svd"]["singular_value_rel_error"] < 1e-4


def test_progress_bars_and_quiet(tmp_path, monkeypatch, capsys):
    def ok(ctx, sec):
        sec.rows = [("value", 1.0)]

    _fake_steps(monkeypatch, {"first": ok, "second": ok})
    with pycro_gpu.config_context(backend="numpy", progress=True):
        demo.run_demo(out=tmp_path / "a", quiet=False)
    out, err = capsys.readouterr()
    assert "demo: First" in err and "0/2" in err  # one tqdm bar over the steps, on stderr
    assert "pycro-gpu demo (small, backend numpy)" in out and "First" in out
    with pycro_gpu.config_context(backend="numpy", progress=False):
        demo.run_demo(out=tmp_path / "b", quiet=False)
    out, err = capsys.readouterr()
    assert err == "" and "report:" in out  # progress off: summary only
    with pycro_gpu.config_context(backend="numpy", progress=True):
        demo.run_demo(out=tmp_path / "c", quiet=True)
    assert capsys.readouterr() == ("", "")  # --quiet: nothing at all
