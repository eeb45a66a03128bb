"""Figures (pycro_gpu.viz) and the HTML report (pycro_gpu.viz.report)."""

import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.image import imread

from pycro_gpu import datasets, viz
from pycro_gpu.viz.report import ReportFigure, Section, format_value, write_report


def _png_stats(path):
    img = imread(path)  # float RGBA in [0, 1]
    gray = img[..., :3].mean(axis=-1)
    return img.shape, float(gray.std()), float((gray < 0.9).mean())


def _labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) for ax in fig.axes]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


# ------------------------------------------------------------------------------------------- viz


def test_si_scale():
    assert viz.si_scale(3.2e-7, "m") == (1e-9, "nm")
    assert viz.si_scale(120e-6, "m") == (1e-6, "µm")
    assert viz.si_scale(350e3, "Hz") == (1e3, "kHz")
    assert viz.si_scale(2.5, "V") == (1.0, "V")
    assert viz.si_scale(0.0, "V") == (1.0, "V")
    assert viz.si_scale(5.0, "rad") == (1.0, "rad")


def test_map_figure_axes_in_nm_with_colorbars(tmp_path):
    rng = np.random.default_rng(0)
    x = np.arange(10) * 10e-9
    y = np.arange(6) * 10e-9
    panels = [viz.Panel("A", rng.random((6, 10)), "Amplitude (mV)"), viz.Panel("B", rng.random((6, 10)), "Q")]
    fig = viz.map_figure(panels, title="maps", x=x, y=y)
    img_axes = [ax for ax in fig.axes if ax.images]
    assert len(img_axes) == 2
    assert img_axes[0].get_xlabel() == "X (nm)" and img_axes[0].get_ylabel() == "Y (nm)"
    # extent: pixel centres at 0..90 nm, so the image spans -5..95 nm
    np.testing.assert_allclose(img_axes[0].images[0].get_extent(), [-5, 95, 55, -5])
    cbar_labels = {ax.get_ylabel() for ax in fig.axes if not ax.images}
    assert {"Amplitude (mV)", "Q"} <= cbar_labels
    shape, std, _ = _png_stats(viz.save_figure(fig, tmp_path / "m.png"))
    assert shape[0] > 100 and std > 0.05


def test_map_figure_handles_nan_and_constant_maps(tmp_path):
    data = np.full((4, 4), 2.0)
    data[0, 0] = np.nan
    fig = viz.map_figure([viz.Panel("const", data, "V")])
    im = fig.axes[0].images[0]
    lo, hi = im.get_clim()
    assert lo < 2.0 < hi
    viz.save_figure(fig, tmp_path / "c.png")


def test_every_figure_renders_non_blank_with_units(tmp_path):
    b = datasets.beps((4, 4), 16, 24, seed=0)
    t = b.truth
    g = datasets.gmode((1, 2), 1024, seed=0)
    figs = {
        "spectra": viz.spectra_figure(
            t["frequency"], b.data[0, 0, :2], t["clean"][0, 0, :2], labels=["a", "b"]
        ),
        "loops": viz.loops_figure(
            t["dc_offset"], t["loop"][0], t["loop"][0], t["loop"][0], labels=["p0"] * 4
        ),
        "scree": viz.scree_figure(np.array([10.0, 3.0, 1.0, 0.3])),
        "components": viz.components_figure(
            np.random.default_rng(0).standard_normal((2, 4, 4)),
            np.random.default_rng(1).standard_normal((2, 24, 16)) + 0j,
            component_image_axes=(("Frequency (kHz)", t["frequency"] / 1e3), ("DC step", np.arange(24))),
        ),
        "cluster": viz.cluster_figure(
            t["domains"], t["loop"][:2, 0] * 1e3, center_axis=t["dc_offset"], truth=t["domains"], closed=True
        ),
        "filter": viz.filter_figure(
            g.truth["time"], g.data[0, 0], g.truth["clean"][0, 0], g.truth["clean"][0, 0], mask=np.ones(513)
        ),
    }
    labels = {k: _labels(f) for k, f in figs.items()}
    assert ("Frequency (kHz)", "Amplitude (mV)") in [lab[:2] for lab in labels["spectra"]]
    assert ("DC bias (V)", "Piezoresponse (mV)") in [lab[:2] for lab in labels["loops"]]
    assert ("Time (µs)", "Signal (V)") in [lab[:2] for lab in labels["filter"]]
    assert ("Frequency (kHz)", "DC step") in [lab[:2] for lab in labels["components"]]
    for name, fig in figs.items():
        assert fig._suptitle is not None and fig._suptitle.get_text(), name
        _, std, ink = _png_stats(viz.save_figure(fig, tmp_path / f"{name}.png"))
        assert std > 0.05 and ink > 0.01, name


def test_components_figure_centres_diverging_maps():
    maps = np.stack([np.linspace(-1, 3, 16).reshape(4, 4), np.linspace(1, 2, 16).reshape(4, 4)])
    fig = viz.components_figure(maps, np.ones((2, 5)))
    first, second = (ax.images[0] for ax in fig.axes if ax.images)
    lo, hi = first.get_clim()
    assert lo == pytest.approx(-hi) and first.get_cmap().name == "RdBu_r"
    assert second.get_cmap().name == "viridis"


def test_viz_never_imports_pyplot():
    code = (
        "import sys, numpy as np\n"
        "from pycro_gpu import viz\n"
        "fig = viz.scree_figure(np.array([3.0, 1.0]))\n"
        "viz.save_figure(fig, sys.argv[1])\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            [sys.executable, "-c", code, f"{d}/s.png"], capture_output=True, text=True, check=True
        )
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------- report


def test_format_value():
    assert format_value(0.012345) == "0.01235"
    assert format_value(123456.0) == "1.235e+05"
    assert format_value(3) == "3"
    assert format_value(True) == "yes"
    assert format_value("a<b") == "a<b"


def test_write_report_links_figures_and_escapes(tmp_path):
    figdir = tmp_path / "figures"
    p1 = viz.save_figure(viz.scree_figure(np.array([3.0, 2.0, 1.0])), figdir / "scree.png")
    sections = [
        Section(
            "SVD <streamed>",
            "ok",
            1.5,
            "text with <b>tags</b> & more",
            [("S1", 3.0), ("k", 3)],
            [ReportFigure(p1, "scree & caption")],
        ),
        Section("Fit", "skipped", 0.01, "not available: no fit_sho"),
        Section("Bad", "failed", None, "RuntimeError: boom"),
    ]
    path = write_report(
        tmp_path / "report.html",
        title="T & T",
        sections=sections,
        meta=[("backend", "numpy")],
        highlights=[("error (Hz)", 12.5)],
    )
    html = path.read_text()
    parser = _Links()
    parser.feed(html)
    assert [i["src"] for i in parser.imgs] == ["figures/scree.png"]  # relative to the report
    assert (tmp_path / parser.imgs[0]["src"]).is_file()
    assert parser.imgs[0]["alt"] == "scree & caption"
    text = "".join(parser.text)
    assert "text with <b>tags</b> & more" in text  # shown literally, not as markup
    assert "<b>" not in html.replace("&lt;b&gt;", "")
    assert html.count('class="status ok"') == 2 and html.count('class="status failed"') == 2
    assert "1.500" in html and "T &amp; T" in html
    assert '<td class="num">3</td>' in html
    assert "Key results" in html and '<td>error (Hz)</td><td class="num">12.5</td>' in html


def test_elongated_maps_are_stretched_square_ones_kept():
    strip = viz.map_figure([viz.Panel("strip", np.random.default_rng(0).random((49, 6)), "counts")])
    square = viz.map_figure([viz.Panel("square", np.random.default_rng(0).random((10, 12)), "counts")])
    assert strip.axes[0].get_aspect() == "auto"
    assert square.axes[0].get_aspect() == 1.0


def test_viz_uses_no_pyplot(tmp_path):
    # figures are Figure objects: drawing and saving them imports no pyplot (no global figure state)
    import subprocess
    import sys

    code = (
        "import sys, h5py, numpy as np\n"
        "from pycro_gpu.viz import plot_decomposition\n"
        f"with h5py.File({str(tmp_path / 'd.h5')!r}, 'w') as f:\n"
        "    g = f.create_group('g'); g['Components'] = np.arange(12.0).reshape(3, 4)\n"
        f"    files = plot_decomposition(g, {str(tmp_path)!r})\n"
        "assert files[0].stat().st_size > 1000\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**__import__("os").environ, "MPLBACKEND": ""}
    )
