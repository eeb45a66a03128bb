"""The figures of the library: maps, spectra, loops, SVD, clusters, filters (see :mod:`pycro_gpu.viz`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..errors import DataError

__all__ = [
    "Panel",
    "cluster_figure",
    "components_figure",
    "filter_figure",
    "loops_figure",
    "map_figure",
    "save_figure",
    "scree_figure",
    "si_scale",
    "spectra_figure",
]

_PREFIXES = (
    (1e-12, "p"),
    (1e-9, "n"),
    (1e-6, "µ"),
    (1e-3, "m"),
    (1.0, ""),
    (1e3, "k"),
    (1e6, "M"),
    (1e9, "G"),
)


def si_scale(max_abs: float, units: str) -> tuple[float, str]:
    """Return ``(factor, label)`` so that ``value / factor`` reads in a prefixed unit.

    Examples
    --------
    >>> si_scale(3.2e-7, "m")
    (1e-09, 'nm')
    >>> si_scale(350e3, "Hz")
    (1000.0, 'kHz')
    """
    if not units or units in ("a.u.", "rad", "1") or not math.isfinite(max_abs) or max_abs == 0:
        return 1.0, units
    factor, prefix = _PREFIXES[0]
    for f, p in _PREFIXES:
        if max_abs >= f:
            factor, prefix = f, p
    return factor, prefix + units


def save_figure(fig: Figure, path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG (Agg) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", facecolor="white")
    return path


@dataclass
class Panel:
    """One image panel of :func:`map_figure`.

    Attributes
    ----------
    title : str
        Panel title.
    data : (ny, nx) array
        Map values (NaN shows as blank).
    label : str
        Colorbar label, with units, e.g. ``"Frequency (kHz)"``.
    cmap : str
        Matplotlib colormap.
    vmin, vmax : float, optional
        Color limits; default the 1st and 99th percentiles of the finite values.
    """

    title: str
    data: Any
    label: str
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None


def _as_map(data: Any, what: str, ndim: int = 2) -> np.ndarray:
    """``data`` as an ndarray of ``ndim`` dimensions (a map ``(ny, nx)`` or a stack), else ``DataError``."""
    arr = np.asarray(data)
    if arr.ndim != ndim or 0 in arr.shape:
        shape = "(ny, nx)" if ndim == 2 else "(k, ny, nx)"
        msg = (
            f"{what} must be a non-empty {shape} array (build maps with USIDataset.position_maps), "
            f"got shape {arr.shape}"
        )
        raise DataError(msg)
    return arr


def _extent(shape, x, y) -> tuple[list[float] | None, str, str]:
    """Image extent and axis labels from position values in m (pixel indices when absent)."""
    ny, nx = shape
    if x is None or y is None or len(x) != nx or len(y) != ny:
        return None, "X (pixel)", "Y (pixel)"
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    factor, unit = si_scale(max(abs(x[-1] - x[0]), abs(y[-1] - y[0]), 1e-300), "m")
    dx = (x[-1] - x[0]) / max(nx - 1, 1) if nx > 1 else 1.0
    dy = (y[-1] - y[0]) / max(ny - 1, 1) if ny > 1 else 1.0
    ext = [
        (x[0] - dx / 2) / factor,
        (x[-1] + dx / 2) / factor,
        (y[-1] + dy / 2) / factor,
        (y[0] - dy / 2) / factor,
    ]
    return ext, f"X ({unit})", f"Y ({unit})"


def _aspect(shape) -> str:
    """``equal`` pixels, or ``auto`` for maps so elongated (> 3:1) that they would be a thin strip."""
    ny, nx = shape[-2:]
    return "auto" if max(ny / nx, nx / ny) > 3 else "equal"


def _limits(data: np.ndarray, vmin, vmax) -> tuple[float | None, float | None]:
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return vmin, vmax
    lo, hi = np.percentile(finite, [1, 99])
    if hi <= lo:
        lo, hi = finite.min(), finite.max()
        if hi <= lo:
            lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    return (lo if vmin is None else vmin), (hi if vmax is None else vmax)


def _panel_grid(n: int, ncols: int, width: float, height: float) -> tuple[Figure, list[Any]]:
    """A figure of ``n`` panels of ``width x height`` inches, ``ncols`` a row, and their axes.

    The spare axes that fill the last row are hidden.
    """
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def map_figure(
    panels: Sequence[Panel], *, title: str = "", x=None, y=None, ncols: int | None = None
) -> Figure:
    """A grid of 2-D maps, each with its title and colorbar.

    Parameters
    ----------
    panels : sequence of Panel
        The maps; each ``(ny, nx)``, drawn with row 0 at the top and X across (per-position values
        become maps with :meth:`~pycro_gpu.io.usid.USIDataset.position_maps`).
    title : str
        Figure title.
    x, y : (nx,), (ny,) arrays, optional
        Position values in m (axes in nm/µm); pixel indices when absent.
    ncols : int, optional
        Panels per row (default up to 4).
    """
    n = len(panels)
    data_maps = [_as_map(p.data, f"panel {p.title!r}").astype(float) for p in panels]
    fig, axes = _panel_grid(n, ncols or min(n, 4), 3.4, 3.0)
    for ax, panel, data in zip(axes, panels, data_maps, strict=True):
        ext, xl, yl = _extent(data.shape, x, y)
        vmin, vmax = _limits(data, panel.vmin, panel.vmax)
        im = ax.imshow(
            data,
            cmap=panel.cmap,
            vmin=vmin,
            vmax=vmax,
            extent=ext,
            interpolation="nearest",
            aspect=_aspect(data.shape),
        )
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        fig.colorbar(im, ax=ax, label=panel.label, shrink=0.85)
    if title:
        fig.suptitle(title)
    return fig


def spectra_figure(
    frequency,
    measured,
    fitted=None,
    *,
    labels: Sequence[str] | None = None,
    title: str = "SHO fits of band-excitation spectra",
    units: str = "V",
) -> Figure:
    """Amplitude and phase of a few complex spectra with their fitted model.

    Parameters
    ----------
    frequency : (n_freq,) array
        Frequencies (Hz).
    measured : (n, n_freq) complex array
        Spectra (dots).
    fitted : (n, n_freq) complex array, optional
        Model spectra (lines).
    labels : sequence of str, optional
        Legend entry of each spectrum.
    """
    f = np.asarray(frequency, dtype=float)
    meas = np.atleast_2d(np.asarray(measured))
    fit = None if fitted is None else np.atleast_2d(np.asarray(fitted))
    factor, funit = si_scale(float(np.max(np.abs(f))), "Hz")
    afactor, aunit = si_scale(float(np.max(np.abs(meas))), units)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_a, ax_p = fig.subplots(1, 2)
    colors = [f"C{i}" for i in range(10)]
    fx = f / factor
    for i in range(meas.shape[0]):
        c = colors[i % 10]
        label = labels[i] if labels is not None else f"spectrum {i}"
        ax_a.plot(fx, np.abs(meas[i]) / afactor, "o", ms=3, color=c, label=label)
        if fit is not None:
            # unwrapped model phase; each measured point drawn within pi of it (no 2 pi jumps)
            ref = np.unwrap(np.angle(fit[i]))
            ax_p.plot(fx, ref + np.angle(meas[i] * np.exp(-1j * ref)), "o", ms=3, color=c)
            ax_a.plot(fx, np.abs(fit[i]) / afactor, "-", color=c, lw=1.5)
            ax_p.plot(fx, ref, "-", color=c, lw=1.5)
        else:
            ax_p.plot(fx, np.unwrap(np.angle(meas[i])), "o", ms=3, color=c)
    ax_a.set_xlabel(f"Frequency ({funit})")
    ax_a.set_ylabel(f"Amplitude ({aunit})")
    ax_a.set_title("Amplitude (dots: data, lines: SHO fit)" if fit is not None else "Amplitude")
    ax_p.set_xlabel(f"Frequency ({funit})")
    ax_p.set_ylabel("Phase (rad)")
    ax_p.set_title("Phase")
    ax_a.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def _closed(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, x[..., :1]], axis=-1)


def loops_figure(
    dc,
    measured,
    fitted=None,
    truth=None,
    *,
    labels: Sequence[str] | None = None,
    title: str = "Piezoresponse hysteresis loops",
    ylabel: str = "Piezoresponse",
    units: str = "V",
) -> Figure:
    """Hysteresis loops: measured points, fitted loop and ground truth against DC bias.

    Parameters
    ----------
    dc : (n_dc,) array
        DC bias (V) in acquisition order (the loop closes on itself).
    measured : (n, n_dc) array
        Loop values per position (dots).
    fitted, truth : (n, n_dc) arrays, optional
        Fitted model (solid) and ground truth (dashed).
    labels : sequence of str, optional
        Title of each panel (e.g. the position).
    """
    v = np.asarray(dc, dtype=float)
    meas = np.atleast_2d(np.asarray(measured, dtype=float))
    n = meas.shape[0]
    fig, axes = _panel_grid(n, min(n, 4), 3.3, 2.9)
    true = None if truth is None else np.asarray(truth, dtype=float)
    factor, unit = si_scale(float(np.nanmax(np.abs(meas if true is None else true))), units)
    fit = None if fitted is None else np.asarray(fitted, dtype=float)
    v_loop = _closed(v)
    for i, ax in enumerate(axes):
        ax.plot(v, meas[i] / factor, "o", ms=3, color="C0", label="measured (SHO fit)")
        if fit is not None:
            ax.plot(v_loop, _closed(fit[i]) / factor, "-", color="C1", label="loop fit")
        if true is not None:
            ax.plot(v_loop, _closed(true[i]) / factor, "--", color="k", lw=1, label="ground truth")
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_xlabel("DC bias (V)")
        ax.set_ylabel(f"{ylabel} ({unit})")
        if labels is not None:
            ax.set_title(labels[i], fontsize=10)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize=8)
    fig.suptitle(title)
    return fig


def scree_figure(singular_values, *, title: str = "SVD scree plot", n_show: int | None = None) -> Figure:
    """Singular values (log scale) and the cumulative fraction of variance they explain.

    Parameters
    ----------
    singular_values : (k,) array
        Descending singular values.
    """
    s = np.asarray(singular_values, dtype=float)
    if n_show is not None:
        s = s[:n_show]
    idx = np.arange(1, s.size + 1)
    var = s**2
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.semilogy(idx, s, "o-", ms=4)
    ax1.set_xlabel("Component index")
    ax1.set_ylabel("Singular value (a.u.)")
    ax1.set_title("Singular values")
    ax1.grid(True, which="both", alpha=0.3)
    from matplotlib.ticker import FormatStrFormatter

    ax1.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    if s.size and s.min() > 0 and s.max() / s.min() < 30:  # few decades: label the minor ticks too
        ax1.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax2.plot(idx, np.cumsum(var) / var.sum() * 100, "o-", ms=4, color="C2")
    ax2.set_xlabel("Number of components")
    ax2.set_ylabel("Variance explained (%)")
    ax2.set_title("Cumulative share of the computed components")
    ax2.set_ylim(0, 101)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(title)
    return fig


def components_figure(
    maps,
    components,
    *,
    component_axis=None,
    component_label: str = "Spectral index",
    component_image_axes: tuple | None = None,
    x=None,
    y=None,
    title: str = "SVD components",
) -> Figure:
    """Score maps (top) and component vectors (bottom) of a decomposition.

    Parameters
    ----------
    maps : (k, ny, nx) array
        Score (abundance) maps, e.g. ``raw.position_maps((U * S).T, axis=-1)`` for SVD scores ``U S``
        of the Main dataset ``raw`` (:meth:`~pycro_gpu.io.usid.USIDataset.position_maps`).
    components : (k, n) or (k, a, b) array (real or complex: the magnitude is shown)
        Component vectors; 2-D components are drawn as images.
    component_axis : (n,) array, optional
        x values of 1-D components (default the index).
    component_label : str
        x label of 1-D components, with units.
    component_image_axes : ((x_label, x_values), (y_label, y_values)), optional
        Axes of 2-D components: columns then rows.
    x, y : arrays, optional
        Position values (m) of the maps.
    """
    maps = _as_map(maps, "maps", ndim=3)
    comps = np.asarray(components)
    k = maps.shape[0]
    if comps.ndim < 2 or comps.shape[0] < k:
        msg = f"components must hold one vector per map ({k}), got shape {comps.shape}"
        raise DataError(msg)
    fig = Figure(figsize=(3.2 * k, 6.0), layout="constrained")
    axes = fig.subplots(2, k, squeeze=False)
    for i in range(k):
        ax = axes[0, i]
        m = np.real(maps[i]) if not np.iscomplexobj(maps) else np.abs(maps[i])
        ext, xl, yl = _extent(m.shape, x, y)
        vmin, vmax = _limits(m, None, None)
        cmap = "viridis"
        if vmin is not None and vmax is not None and vmin < 0 < vmax:
            cmap, vmax = "RdBu_r", max(-vmin, vmax)  # diverging, centred on zero
            vmin = -vmax
        im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, extent=ext, aspect=_aspect(m.shape))
        ax.set_title(f"Score map {i + 1}", fontsize=10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        fig.colorbar(
            im, ax=ax, shrink=0.8, label="score (a.u.)" if not np.iscomplexobj(maps) else "|score| (a.u.)"
        )
        ax = axes[1, i]
        c = comps[i]
        mag = np.abs(c) if np.iscomplexobj(c) else c
        what = "|component|" if np.iscomplexobj(c) else "component"
        if c.ndim == 1:
            xs = np.arange(c.size) if component_axis is None else np.asarray(component_axis)
            ax.plot(xs, mag, "-", lw=1.2)
            ax.set_xlabel(component_label)
            ax.set_ylabel(f"{what} (a.u.)")
        else:
            (xl2, xv), (yl2, yv) = component_image_axes or (("column", None), ("row", None))
            ext2 = None
            if xv is not None and yv is not None:
                ext2 = [float(xv[0]), float(xv[-1]), float(yv[-1]), float(yv[0])]
            im = ax.imshow(mag, aspect="auto", extent=ext2, cmap="magma")
            ax.set_xlabel(xl2)
            ax.set_ylabel(yl2)
            fig.colorbar(im, ax=ax, shrink=0.8, label=f"{what} (a.u.)")
        ax.set_title(f"Component {i + 1}", fontsize=10)
    fig.suptitle(title)
    return fig


def _label_map(
    fig: Figure, ax, labels: np.ndarray, colors: list[str], *, title: str, label: str, frame
) -> None:
    """Map of integer labels ``0..len(colors) - 1``, one colour each, with a colorbar tick per label.

    ``frame`` is the ``(extent, x label, y label)`` of :func:`_extent`.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    extent, xlabel, ylabel = frame
    k = len(colors)
    im = ax.imshow(
        labels,
        cmap=ListedColormap(colors),
        norm=BoundaryNorm(np.arange(-0.5, k + 0.5), k),
        extent=extent,
        interpolation="nearest",
        aspect=_aspect(labels.shape),
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, ticks=np.arange(k), label=label, shrink=0.85)


def cluster_figure(
    labels,
    centers=None,
    *,
    center_axis=None,
    center_label: str = "",
    center_ylabel: str = "",
    truth=None,
    x=None,
    y=None,
    title: str = "K-means clusters",
    closed: bool = False,
) -> Figure:
    """Cluster map, optional ground-truth map, and the mean response of each cluster.

    Parameters
    ----------
    labels : (ny, nx) int array
        Cluster of each position as a map (``raw.position_maps(labels)`` for one label per row of the
        Main dataset ``raw``, :meth:`~pycro_gpu.io.usid.USIDataset.position_maps`).
    centers : (k, n) array, optional
        Mean response of each cluster, drawn against ``center_axis``.
    truth : (ny, nx) int array, optional
        Ground-truth domains, shown next to the clusters.
    closed : bool
        Close the center curves on themselves (loops over a DC cycle).
    """
    labels = _as_map(labels, "labels")
    if truth is not None and np.shape(truth) != labels.shape:
        msg = f"truth must have the shape of labels {labels.shape}, got {np.shape(truth)}"
        raise DataError(msg)
    k = int(labels.max()) + 1
    colors = [f"C{i % 10}" for i in range(k)]
    n_panels = 1 + (truth is not None) + (centers is not None)
    fig = Figure(figsize=(3.8 * n_panels, 3.6), layout="constrained")
    axes = list(fig.subplots(1, n_panels, squeeze=False).flat)
    frame = _extent(labels.shape, x, y)
    _label_map(fig, axes.pop(0), labels, colors, title=f"Cluster map (k = {k})", label="cluster", frame=frame)
    if truth is not None:
        t = np.asarray(truth)
        greys = [str(g) for g in np.linspace(0.85, 0.25, int(t.max()) + 1)]  # one grey per domain
        _label_map(fig, axes.pop(0), t, greys, title="Ground-truth domains", label="domain", frame=frame)
    if centers is not None:
        ax = axes.pop(0)
        cen = np.asarray(centers, dtype=float)
        xs = np.arange(cen.shape[1]) if center_axis is None else np.asarray(center_axis, dtype=float)
        for i in range(cen.shape[0]):
            xi, ci = (_closed(xs), _closed(cen[i])) if closed else (xs, cen[i])
            ax.plot(xi, ci, "-", color=colors[i], label=f"cluster {i}")
        ax.set_xlabel(center_label)
        ax.set_ylabel(center_ylabel)
        ax.set_title("Mean response per cluster", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return fig


def filter_figure(
    time,
    noisy,
    filtered,
    clean=None,
    *,
    mask=None,
    sample_rate: float | None = None,
    n_show: int | None = None,
    title: str = "FFT filter: before and after",
    units: str = "V",
) -> Figure:
    """One signal before and after a frequency-domain filter: time trace and power spectrum.

    Parameters
    ----------
    time : (n,) array
        Sample times (s).
    noisy, filtered : (n,) arrays
        Signal before and after filtering.
    clean : (n,) array, optional
        Ground truth, drawn dashed.
    mask : (n // 2 + 1,) array, optional
        Pass mask of the filter over the rFFT bins (shaded where it passes).
    sample_rate : float, optional
        Hz; default from ``time``.
    n_show : int, optional
        Samples shown in the time trace (default: 4 periods' worth, or 200).
    """
    t = np.asarray(time, dtype=float)
    a = np.asarray(noisy, dtype=float)
    b = np.asarray(filtered, dtype=float)
    rate = sample_rate or 1.0 / (t[1] - t[0])
    n_show = min(n_show or 200, t.size)
    tf, tunit = si_scale(float(t[n_show - 1]), "s")
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_t, ax_f = fig.subplots(1, 2)
    ax_t.plot(t[:n_show] / tf, a[:n_show], "-", color="0.65", lw=0.8, label="raw (noisy)")
    ax_t.plot(t[:n_show] / tf, b[:n_show], "-", color="C3", lw=1.4, label="filtered")
    if clean is not None:
        ax_t.plot(
            t[:n_show] / tf,
            np.asarray(clean, dtype=float)[:n_show],
            "--",
            color="k",
            lw=1,
            label="ground truth",
        )
    ax_t.set_xlabel(f"Time ({tunit})")
    ax_t.set_ylabel(f"Signal ({units})")
    ax_t.set_title("Time trace (one position)")
    ax_t.legend(fontsize=8, loc="upper right")
    freqs = np.fft.rfftfreq(t.size, 1.0 / rate)
    ff, funit = si_scale(float(freqs[-1]), "Hz")
    pa = np.abs(np.fft.rfft(a)) ** 2
    pb = np.abs(np.fft.rfft(b)) ** 2
    floor = pa.max() * 1e-12
    ax_f.semilogy(freqs / ff, pa + floor, "-", color="0.65", lw=0.8, label="raw")
    ax_f.semilogy(freqs / ff, pb + floor, "-", color="C3", lw=1.0, label="filtered")
    if mask is not None:
        m = np.asarray(mask, dtype=float) > 0
        ax_f.fill_between(
            freqs / ff, floor, pa.max() * 10, where=m, color="C2", alpha=0.15, step="mid", label="pass band"
        )
    ax_f.set_xlabel(f"Frequency ({funit})")
    ax_f.set_ylabel(f"Power ({units}² per bin, a.u.)")
    ax_f.set_title("Power spectrum")
    ax_f.legend(fontsize=8, loc="upper right")
    fig.suptitle(title)
    return fig
