"""Drawing blocks of the results figures: per-position values and spectra against the file's own axes.

* :class:`Positions`: one value per position drawn as a map when the positions form a complete 2-D grid,
  as a curve otherwise (over the one position dimension's values, or over the row index).
* :class:`Spectra`: one vector over the spectroscopic steps drawn against the real spectroscopic axes:
  a curve over one dimension (energy in eV, bias in V ...), an image over two or more (band-excitation
  frequency x DC bias), instead of one flattened index.

Invariants:

* A map is :meth:`~pycro_gpu.io.usid.USIDataset.position_maps` of the values: rows the slowest position
  dimension (Y of a raster scan), columns the fastest (X). It is drawn with ``origin="lower"`` and an
  extent in the dimensions' values (pixel centres at the values), so the pixel of the position
  ``(x_i, y_j)`` lies at the coordinates ``(x_i, y_j)`` of the axes, whatever order the file lists the
  dimensions in. Every map has axis labels ``name (units)`` and a colorbar labelled with the quantity.
* A spectroscopic vector of a regular grid is reshaped slowest dimension first (the stored C order):
  the rows of a spectroscopic image are the slower dimensions' steps, its columns the fastest
  dimension's values. A slower dimension whose values repeat or turn (a bipolar DC sweep) is drawn over
  its steps, the ticks labelled with its values.
* Values in a unit that takes an SI prefix are drawn scaled (``350e3 Hz`` as ``350 kHz``); ``eV``,
  ``a.u.`` and compound units are drawn as stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from .figures import _limits, si_scale

#: units drawn with an SI prefix (``m`` as nm or µm, ``Hz`` as kHz ...)
PREFIXED_UNITS = frozenset({"m", "s", "Hz", "V", "A", "N", "F", "W", "C", "Pa", "T"})

_FIELD = re.compile(r"^(?P<name>.*?)\s*\[(?P<units>[^\]]*)\]\s*$")


def split_field(field: str) -> tuple[str, str]:
    """``"Amplitude [V]" -> ("Amplitude", "V")``; a field without ``[units]`` keeps its name, no units."""
    m = _FIELD.match(field)
    return (m["name"], m["units"]) if m else (field, "")


def label(name: str, units: str) -> str:
    """An axis or colorbar label: ``"Frequency (kHz)"``, or the name alone when there are no units."""
    return f"{name} ({units})" if units else name


def scale(values: Any, units: str) -> tuple[float, str]:
    """``(factor, units)`` to draw ``values / factor`` in a prefixed unit (``(1, units)`` if none applies)."""
    if units not in PREFIXED_UNITS:
        return 1.0, units
    arr = np.abs(np.asarray(values, dtype=float))
    finite = arr[np.isfinite(arr)]
    return si_scale(float(finite.max()) if finite.size else 0.0, units)


def usid(h5_dset: Any) -> Any:
    """``h5_dset`` as a :class:`~pycro_gpu.io.usid.USIDataset`, or None when it is not a Main dataset."""
    from ..errors import USIDError
    from ..io.usid import USIDataset

    try:
        return USIDataset(h5_dset)
    except (USIDError, KeyError, TypeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class Axis:
    """A dimension drawn on an axis: its name, units and values (in the file's units).

    A dimension without units whose values are ``0, 1, ..., n - 1`` is in pixels (``"x (pixel)"``).
    """

    name: str
    units: str
    values: np.ndarray

    @classmethod
    def of(cls, dim: Any) -> Axis:
        values = np.asarray(dim.values, dtype=float)
        units = dim.units
        if not units and np.array_equal(values, np.arange(values.size)):
            units = "pixel"
        return cls(dim.name, units, values)

    @property
    def monotonic(self) -> bool:
        """True when the values strictly rise or strictly fall (they can set an image extent)."""
        step = np.diff(self.values)
        return bool(np.all(step > 0) or np.all(step < 0)) and bool(np.all(np.isfinite(self.values)))

    def scaled(self, factor_units: tuple[float, str] | None = None) -> tuple[np.ndarray, str]:
        """The values in a prefixed unit and the label, e.g. ``(values / 1e3, "Frequency (kHz)")``."""
        factor, units = factor_units or scale(self.values, self.units)
        return self.values / factor, label(self.name, units)


def edges(values: np.ndarray) -> tuple[float, float]:
    """Image extent along one axis whose pixel centres are ``values`` (uniform steps assumed)."""
    if values.size < 2:
        return float(values[0]) - 0.5, float(values[0]) + 0.5
    half = (values[-1] - values[0]) / (values.size - 1) / 2
    return float(values[0] - half), float(values[-1] + half)


def _aspect(width: float, height: float, same_units: bool) -> str:
    """``equal`` (square pixels in physical units) unless the units differ or the map is > 3:1."""
    ratio = abs(width / height) if height else np.inf
    return "equal" if same_units and 1 / 3 <= ratio <= 3 else "auto"


class Positions:
    """How one value per position of a Main dataset is drawn: a map, or a curve over the positions.

    Parameters
    ----------
    main : USIDataset or None
        The Main dataset whose rows the values follow (None: the positions are only row numbers).
    n : int
        Number of positions (rows).
    """

    def __init__(self, main: Any, n: int) -> None:
        self.main = main if main is not None and main.n_positions == n else None
        self.n = n
        self.y: Axis | None = None
        self.x: Axis | None = None
        if self.main is not None and len(self.main.pos_dims) == 2 and self._has_grid():
            self.y, self.x = (Axis.of(d) for d in self.main.map_dims)

    @classmethod
    def of(cls, *candidates: Any, n: int) -> Positions:
        """The positions of the first of ``candidates`` (datasets) that is a Main dataset of ``n`` rows."""
        for dset in candidates:
            main = usid(dset) if dset is not None else None
            if main is not None and main.n_positions == n:
                return cls(main, n)
        return cls(None, n)

    def _has_grid(self) -> bool:
        from ..errors import USIDError

        try:
            self.main.position_maps(np.zeros(self.n))
        except USIDError:  # sparse sampling: no grid
            return False
        return True

    @property
    def is_map(self) -> bool:
        return self.x is not None

    def maps(self, values: Any, *, axis: int = 0) -> np.ndarray:
        """``values`` with the position axis replaced by ``(n_y, n_x)`` (see ``position_maps``)."""
        return self.main.position_maps(values, axis=axis)

    def frame(self) -> tuple[tuple[float, float, float, float], str, str, str]:
        """``(extent, x label, y label, aspect)`` of the maps, in the position dimensions' units."""
        same = self.x.units == self.y.units
        both = np.concatenate([self.x.values, self.y.values])
        common = scale(both, self.x.units) if same else None
        xs, xlabel = self.x.scaled(common)
        ys, ylabel = self.y.scaled(common)
        extent = (*edges(xs), *edges(ys))
        return extent, xlabel, ylabel, _aspect(extent[1] - extent[0], extent[3] - extent[2], same)

    def position_axis(self) -> tuple[np.ndarray, str]:
        """The abscissa of curves over the positions: the one dimension's values, else the row index."""
        if self.main is not None and len(self.main.pos_dims) == 1:
            return Axis.of(self.main.pos_dims[0]).scaled()
        return np.arange(self.n), "position (row index)"

    def draw(
        self,
        fig: Figure,
        ax: Any,
        values: Any,
        *,
        title: str,
        quantity: str,
        cmap: str = "viridis",
        vmin: float | None = None,
        vmax: float | None = None,
        diverging: bool = False,
    ) -> None:
        """One value per position: a map with axis labels and a colorbar ``quantity``, or a curve.

        ``diverging``: values of both signs (scores) are drawn ``RdBu_r``, centred on zero.
        """
        values = np.asarray(values, dtype=float)
        ax.set_title(title, fontsize=9)
        if not self.is_map:
            x, xlabel = self.position_axis()
            ax.plot(x, values, ".-", lw=1)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(quantity)
            return
        image = self.maps(values)
        extent, xlabel, ylabel, aspect = self.frame()
        lo, hi = _limits(image, vmin, vmax)
        if diverging and lo is not None and hi is not None and lo < 0 < hi:
            cmap, hi = "RdBu_r", max(-lo, hi)
            lo = -hi
        im = ax.imshow(
            image, origin="lower", extent=extent, aspect=aspect, cmap=cmap, vmin=lo, vmax=hi,
            interpolation="nearest",
        )  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(im, ax=ax, label=quantity, shrink=0.85)

    def draw_labels(self, fig: Figure, ax: Any, labels: Any, k: int, *, title: str) -> None:
        """Labels ``0 .. k - 1``: a map of one colour per label (a tick each), or dots per position."""
        labels = np.asarray(labels, dtype=int)
        colors = [f"C{i % 10}" for i in range(k)]
        ax.set_title(title, fontsize=9)
        if not self.is_map:
            x, xlabel = self.position_axis()
            ax.scatter(x, labels, c=[colors[i] for i in labels], s=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("cluster")
            ax.set_yticks(np.arange(k))
            return
        extent, xlabel, ylabel, aspect = self.frame()
        im = ax.imshow(
            self.maps(labels), origin="lower", extent=extent, aspect=aspect, interpolation="nearest",
            cmap=ListedColormap(colors), norm=BoundaryNorm(np.arange(-0.5, k + 0.5), k),
        )  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(im, ax=ax, ticks=np.arange(k), label="cluster", shrink=0.85)


class Spectra:
    """How a vector over the spectroscopic steps of a Main dataset is drawn against the real axes.

    Parameters
    ----------
    h5_dset : h5py.Dataset or None
        A Main dataset whose rows are such vectors (SVD ``V``, ``Components``, ``Mean_Response``).
    n : int
        Length of the vectors; the file's axes are used only when it equals the dataset's spectroscopic
        steps on a regular grid, else the vectors are drawn over the step index.
    """

    def __init__(self, h5_dset: Any, n: int) -> None:
        main = usid(h5_dset) if h5_dset is not None else None
        self.n = n
        self.axes: list[Axis] = []
        if main is not None and main.n_spectral == n and main.spec_is_regular:
            self.axes = [Axis.of(main.spec_dims[k]) for k in reversed(main.spec_order)]  # slowest first

    @property
    def is_image(self) -> bool:
        """True when the vectors are drawn as images (two or more spectroscopic dimensions)."""
        return len(self.axes) >= 2

    def abscissa(self) -> tuple[np.ndarray, str]:
        """x values and label of curves: the one dimension's values, else the step index."""
        if len(self.axes) == 1:
            return self.axes[0].scaled()
        return np.arange(self.n), "spectroscopic step (index)"

    def draw(self, fig: Figure, ax: Any, vector: Any, *, title: str, quantity: str) -> None:
        """``vector`` as a curve against its axis (y label ``quantity``) or an image with a colorbar."""
        vector = np.asarray(vector, dtype=float)
        ax.set_title(title, fontsize=9)
        if not self.is_image:
            x, xlabel = self.abscissa()
            ax.plot(x, vector, ".-" if self.n <= 64 else "-", lw=1.2, ms=3)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(quantity)
            return
        fast, slow = self.axes[-1], self.axes[:-1]
        image = vector.reshape(-1, len(fast.values))  # rows: the slower dimensions' steps
        xs, xlabel = fast.scaled()
        if len(slow) == 1 and slow[0].monotonic:
            ys, ylabel = slow[0].scaled()
            y_extent = edges(ys)
        else:
            y_extent = (-0.5, image.shape[0] - 0.5)
            ylabel = self._step_ticks(ax, slow)
        im = ax.imshow(
            image, origin="lower", extent=(*edges(xs), *y_extent), aspect="auto", cmap="magma",
            interpolation="nearest",
        )  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(im, ax=ax, label=quantity, shrink=0.85)

    @staticmethod
    def _step_ticks(ax: Any, slow: list[Axis]) -> str:
        """Ticks over the steps of the slower dimensions, labelled with the values of a single one."""
        if len(slow) > 1:
            return " x ".join(a.name for a in slow) + " (step)"
        values, ylabel = slow[0].scaled()
        ticks = np.arange(0, values.size, -(-values.size // 7))
        ax.set_yticks(ticks, [f"{values[t]:.3g}" for t in ticks])
        return ylabel


def quantity_label(quantity: str, units: str, values: Any, *, magnitude: bool = False) -> tuple[float, str]:
    """``(factor, label)`` of values of ``quantity`` in ``units``: ``(1e-3, "|Response| (mV)")``."""
    factor, units = scale(values, units)
    return factor, label(f"|{quantity}|" if magnitude else quantity, units)


def host_real(values: Any) -> tuple[np.ndarray, bool]:
    """``(values, False)`` for real data, ``(|values|, True)`` for complex data (float64)."""
    arr = np.asarray(values)
    if np.iscomplexobj(arr):
        return np.abs(arr).astype(np.float64), True
    return arr.astype(np.float64), False


def panel_grid(n: int, ncols: int, width: float, height: float) -> tuple[Figure, list[Any]]:
    """A constrained figure of ``n`` panels, ``ncols`` a row, each ``width x height`` inches."""
    nrows = -(-n // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def pair_grid(n: int, *, per_row: int = 3) -> tuple[Figure, list[tuple[Any, Any]]]:
    """A figure of ``n`` side-by-side pairs of panels (map, component), ``per_row`` pairs a row."""
    per_row = min(n, per_row)
    fig, axes = panel_grid(2 * -(-n // per_row) * per_row, 2 * per_row, 3.5, 3.0)
    for ax in axes[2 * n :]:
        ax.set_visible(False)
    return fig, [(axes[2 * i], axes[2 * i + 1]) for i in range(n)]
