"""Figures of results groups (matplotlib Figure objects, no pyplot; host data), to the demo's standards.

* :func:`svd_figures` / :func:`plot_svd`: scree plot, each component ``V`` beside its abundance map
  ``U``, and the abundance maps.
* :func:`cluster_figures` / :func:`plot_clusters`: label map and the mean response of each cluster.
* :func:`decomposition_figures` / :func:`plot_decomposition`: each component beside its ``Projection``
  (score) map.
* :func:`fit_figures` / :func:`plot_fit`: a map of each fitted parameter with its units, the R^2 map and
  the share of converged fits, the switching parameters of loop fits and the parameters against the
  remaining spectroscopic dimension (SHO fits over DC bias).
* :func:`image_figures` / :func:`plot_image`: the source image and the processed one of an Image group.

The ``*_figures`` functions return the figures by name; the ``plot_*`` functions write them as PNG files
(``pycro-gpu ... --plot DIR``). Standards (see :mod:`pycro_gpu.viz._panels`): maps are built with
:meth:`~pycro_gpu.io.usid.USIDataset.position_maps` and drawn ``origin="lower"`` with X across, in the
position dimensions' units, each with a colorbar of its quantity and units; positions that form no 2-D
grid are drawn as curves over the position. Components and mean responses are drawn against the real
spectroscopic axes (energy in eV, bias in V), as images over frequency x DC bias for band-excitation
data. Complex values are drawn as their magnitude ``|.|``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._lib.checks import check_int
from ._panels import (
    Positions,
    Spectra,
    host_real,
    label,
    pair_grid,
    panel_grid,
    quantity_label,
    scale,
    split_field,
    usid,
)
from .figures import save_figure, scree_figure

__all__ = [
    "cluster_figures",
    "decomposition_figures",
    "fit_figures",
    "image_figures",
    "plot_clusters",
    "plot_decomposition",
    "plot_fit",
    "plot_image",
    "plot_svd",
    "svd_figures",
]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _attr_text(dset: Any, key: str, default: str) -> str:
    return _text(dset.attrs[key]) if key in dset.attrs else default


def _quantity(dset: Any, default: str, *, magnitude: bool = False) -> str:
    """The label ``"Quantity (units)"`` of a dataset's values (``"|Quantity| (units)"`` for magnitudes)."""
    quantity = _attr_text(dset, "quantity", default)
    return label(f"|{quantity}|" if magnitude else quantity, _attr_text(dset, "units", "a.u."))


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN (all-NaN rows give NaN without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _components_beside_maps(
    components: np.ndarray,
    scores: np.ndarray | None,
    h5_components: Any,
    h5_scores: Any,
    *,
    names: tuple[str, str],
    title: str,
) -> Figure:
    """Each score map (``scores[:, i]``) beside its component (``components[i]``), one pair per component.

    ``names`` are the panel titles' stems, e.g. ``("Abundance U", "Component V")``. Without ``scores``
    (a group that holds none) the components alone.
    """
    n = components.shape[0]
    comps, complex_c = host_real(components.reshape(n, -1))
    spectra = Spectra(h5_components, comps.shape[1])
    comp_q = label("|component|" if complex_c else "component", "a.u.")
    if scores is None:
        fig, axes = panel_grid(n, min(n, 3), 3.8, 3.0)
        pairs = [(None, ax) for ax in axes]
    else:
        fig, pairs = pair_grid(n)
        maps, complex_s = host_real(scores)
        positions = Positions.of(h5_scores, n=maps.shape[0])
        score_q = _quantity(h5_scores, "score", magnitude=complex_s)
    for i, (ax_map, ax_comp) in enumerate(pairs):
        if ax_map is not None:
            positions.draw(fig, ax_map, maps[:, i], title=f"{names[0]} {i}", quantity=score_q, diverging=True)
        spectra.draw(fig, ax_comp, comps[i], title=f"{names[1]} {i}", quantity=comp_q)
    fig.suptitle(title)
    return fig


def svd_figures(h5_svd_group: Any, *, n_show: int = 9) -> dict[str, Figure]:
    """The scree plot, the components ``V`` beside their abundance maps ``U``, and the abundance maps.

    Parameters
    ----------
    h5_svd_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.svd_dataset`.
    n_show : int
        Number of components drawn (>= 1).

    Returns
    -------
    dict of str to Figure
        ``svd_scree`` (singular values and cumulative variance), ``svd_components`` (abundance map
        ``U i`` beside component ``V i``, the component against the spectroscopic axes: a curve over
        energy or bias, an image over frequency x DC bias) and ``svd_abundance`` (the maps ``U i``).
        Maps are oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps` (rows Y, columns X,
        drawn with Y upwards); positions that form no 2-D grid are drawn as curves.
    """
    n_show = check_int(n_show, "n_show", minimum=1)
    S = np.asarray(h5_svd_group["S"][()])
    h5_u, h5_v = h5_svd_group["U"], h5_svd_group["V"]
    n = min(n_show, S.size)
    U = np.asarray(h5_u[:, :n])
    V = np.asarray(h5_v[:n])
    source = _attr_text(h5_svd_group, "source_path", h5_svd_group.name)
    return {
        "svd_scree": scree_figure(S, title=f"SVD scree plot: {source}"),
        "svd_components": _components_beside_maps(
            V, U, h5_v, h5_u, names=("Abundance U", "Component V"), title=f"SVD components: {source}"
        ),
        "svd_abundance": _abundance_maps(U, h5_u, title=f"SVD abundance maps: {source}"),
    }


def _abundance_maps(U: np.ndarray, h5_u: Any, *, title: str) -> Figure:
    """The maps (or curves) of the columns ``U[:, i]``, titled ``U i``."""
    values, is_complex = host_real(U)
    positions = Positions.of(h5_u, n=values.shape[0])
    q = _quantity(h5_u, "Abundance", magnitude=is_complex)
    n = values.shape[1]
    fig, axes = panel_grid(n, min(n, 3), 3.6, 3.0)
    for i, ax in enumerate(axes):
        positions.draw(fig, ax, values[:, i], title=f"U {i}", quantity=q, diverging=True)
    fig.suptitle(title)
    return fig


def plot_svd(h5_svd_group: Any, out_dir: str | Path, *, n_show: int = 9) -> list[Path]:
    """Write ``svd_scree.png``, ``svd_components.png`` and ``svd_abundance.png`` (:func:`svd_figures`).

    Parameters
    ----------
    h5_svd_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.svd_dataset`.
    out_dir : path
        Folder (created).
    n_show : int
        Number of components drawn.

    Returns
    -------
    list of Path
        The files written.
    """
    return _save_all(svd_figures(h5_svd_group, n_show=n_show), out_dir)


def cluster_figures(h5_cluster_group: Any) -> dict[str, Figure]:
    """The label map and the mean response of each cluster of a Cluster group.

    Parameters
    ----------
    h5_cluster_group : h5py.Group
        Group written by :func:`pycro_gpu.cluster.cluster_dataset`.

    Returns
    -------
    dict of str to Figure
        ``cluster_labels`` (a map oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps`, one
        colour and colorbar tick per cluster; the labels over the position where the positions form no
        2-D grid) and ``cluster_mean_response`` (one curve per cluster against the spectroscopic axis,
        or one image per cluster over two spectroscopic dimensions, e.g. frequency x DC bias).
    """
    h5_lab, h5_mean = h5_cluster_group["Labels"], h5_cluster_group["Mean_Response"]
    labels = np.asarray(h5_lab[()]).reshape(h5_lab.shape[0], -1)[:, 0]
    mean, is_complex = host_real(h5_mean[()])
    k = mean.shape[0]
    source = _attr_text(h5_cluster_group, "source_path", h5_cluster_group.name)
    fig = Figure(figsize=(5.2, 4.4), layout="constrained")
    ax = fig.subplots()
    Positions.of(h5_lab, n=labels.size).draw_labels(fig, ax, labels, k, title="Cluster labels")
    fig.suptitle(f"{k} clusters: {source}")
    factor, q = quantity_label(
        _attr_text(h5_mean, "quantity", "Response"), _attr_text(h5_mean, "units", ""), mean,
        magnitude=is_complex,
    )  # fmt: skip
    return {"cluster_labels": fig, "cluster_mean_response": _mean_responses(mean / factor, h5_mean, q)}


def _mean_responses(mean: np.ndarray, h5_mean: Any, quantity: str) -> Figure:
    """One curve per cluster on one axes, or one image per cluster over two spectroscopic dimensions."""
    k = mean.shape[0]
    spectra = Spectra(h5_mean, mean.shape[1])
    if spectra.is_image:
        fig, axes = panel_grid(k, min(k, 3), 4.0, 3.2)
        for c, ax in enumerate(axes):
            spectra.draw(fig, ax, mean[c], title=f"Cluster {c}", quantity=quantity)
    else:
        fig = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = fig.subplots()
        x, xlabel = spectra.abscissa()
        for c in range(k):
            ax.plot(x, mean[c], "-", color=f"C{c % 10}", label=f"cluster {c}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(quantity)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.suptitle("Mean response per cluster")
    return fig


def plot_clusters(h5_cluster_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``cluster_labels.png`` (label map) and ``cluster_mean_response.png`` (:func:`cluster_figures`).

    Parameters
    ----------
    h5_cluster_group : h5py.Group
        Group written by :func:`pycro_gpu.cluster.cluster_dataset`.
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    return _save_all(cluster_figures(h5_cluster_group), out_dir)


def decomposition_figures(h5_decomposition_group: Any, *, n_show: int = 9) -> dict[str, Figure]:
    """``decomposition_components``: each component beside its score (``Projection``) map, if any.

    Parameters
    ----------
    h5_decomposition_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.decompose_dataset`.
    n_show : int
        Number of components drawn (>= 1).

    Returns
    -------
    dict of str to Figure
        Score map ``Projection i`` (oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps`,
        a curve where the positions form no 2-D grid) beside ``Component i`` against the spectroscopic
        axes (a curve, or an image over frequency x DC bias); complex values as magnitudes.
    """
    n_show = check_int(n_show, "n_show", minimum=1)
    h5_c, h5_p = h5_decomposition_group["Components"], h5_decomposition_group.get("Projection")
    n = min(n_show, h5_c.shape[0])
    method = _attr_text(h5_decomposition_group, "method", "decomposition").upper()
    source = _attr_text(h5_decomposition_group, "source_path", h5_decomposition_group.name)
    fig = _components_beside_maps(
        np.asarray(h5_c[:n]), None if h5_p is None else np.asarray(h5_p[:, :n]), h5_c, h5_p,
        names=("Projection", "Component"), title=f"{method} components: {source}",
    )  # fmt: skip
    return {"decomposition_components": fig}


def plot_decomposition(h5_decomposition_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``decomposition_components.png`` (:func:`decomposition_figures`).

    Parameters
    ----------
    h5_decomposition_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.decompose_dataset`.
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    return _save_all(decomposition_figures(h5_decomposition_group), out_dir)


# ------------------------------------------------------------------------------------------- fits

#: units of the loop-fit and switching fields: R the response's units, B the bias's (DC) units
_LOOP_UNITS = {
    **dict.fromkeys(("a0", "a1", "R+", "R-", "Switchable Polarization"), "R"),
    **dict.fromkeys(("a2", "a3", "b0", "b1", "b2", "b3", "V-", "V+", "Imprint"), "B"),
    "a4": "R/B",
    "Work of Switching": "R B",
}


def _source(group: Any) -> Any:
    """The Main dataset a results group was computed from (same file), or None."""
    path = group.attrs.get("source_path")
    dset = group.file.get(_text(path)) if path is not None else None
    return usid(dset) if dset is not None else None


def _field_units(field: str, source: Any) -> tuple[str, str]:
    """``(name, units)`` of a compound field: from ``"Name [units]"``, or the loop model's units."""
    name, units = split_field(field)
    if units or name not in _LOOP_UNITS or source is None:
        return name, units
    r = source.units
    b = source.spec_dims[0].units if len(source.spec_dims) == 1 else ""
    if not (r and b):
        return name, ""
    form = _LOOP_UNITS[name]
    if form == "R B":
        return name, f"{r}²" if r == b else f"{r}·{b}"
    return name, form.replace("R", r).replace("B", b)


def _field_label(field: str, source: Any, values: np.ndarray) -> tuple[str, float, str]:
    """``(title, factor, colorbar label)`` of a field: ``("Amplitude", 1e-3, "Amplitude (mV)")``."""
    name, units = _field_units(field, source)
    if name == "R2 Criterion":
        return name, 1.0, "R²"
    factor, units = scale(values, units)
    return name, factor, label(name, units)


def _field_maps(
    records: np.ndarray, positions: Positions, source: Any, *, title: str, note: str = ""
) -> Figure:
    """A map (or curve) of each field of ``records`` ``(n_pos, n_steps)``, averaged over the steps."""
    names = records.dtype.names
    fig, axes = panel_grid(len(names), min(len(names), 4), 3.6, 3.0)
    for field, ax in zip(names, axes, strict=True):
        values = _nanmean(records[field].astype(np.float64), axis=1)
        name, factor, q = _field_label(field, source, values)
        positions.draw(fig, ax, values / factor, title=name, quantity=q)
    fig.suptitle(title + note)
    return fig


def _converged_code(group: Any) -> int:
    """The ``Status`` code that means converged (from ``status_codes``; 0 by default)."""
    try:
        codes = json.loads(_text(group.attrs["status_codes"]))
    except (KeyError, ValueError):
        return 0
    found = [int(k) for k, v in codes.items() if str(v).strip().lower() == "converged"]
    return found[0] if found else 0


def _status(group: Any, n: int) -> tuple[np.ndarray, str] | None:
    """Per position, the fraction of its fits that converged; and a one-line summary. None without status."""
    if "Status" in group:
        codes = np.asarray(group["Status"][()]).reshape(n, -1)
        converged = codes == _converged_code(group)
    elif "Converged" in group:
        converged = np.asarray(group["Converged"][()]).reshape(n, -1) != 0
    else:
        return None
    total = converged.size
    share = np.count_nonzero(converged) / total if total else 0.0
    summary = f"{share:.1%} of {total} fits converged ({np.count_nonzero(converged)})"
    return converged.mean(axis=1), summary


def _fit_quality(group: Any, records: np.ndarray, positions: Positions, note: str) -> Figure | None:
    """The R^2 map and the map of the fraction of converged fits per position."""
    status = _status(group, records.shape[0])
    has_r2 = "R2 Criterion" in records.dtype.names
    panels = int(has_r2) + int(status is not None)
    if panels == 0:
        return None
    fig, axes = panel_grid(panels, panels, 4.2, 3.4)
    if has_r2:
        r2 = _nanmean(records["R2 Criterion"].astype(np.float64), axis=1)
        positions.draw(fig, axes.pop(0), r2, title="R²" + note, quantity="R²", cmap="cividis")
    summary = ""
    if status is not None:
        fraction, summary = status
        positions.draw(
            fig, axes.pop(0), fraction, title=summary, quantity="fraction of fits converged",
            cmap="RdYlGn", vmin=0.0, vmax=1.0,
        )  # fmt: skip
    fig.suptitle(f"Fit quality: {group.name}" + (f"\n{summary}" if summary else ""))
    return fig


def _fit_steps(records: np.ndarray, h5_fit: Any, source: Any) -> Figure:
    """Each field's median over the positions (bars: 25 to 75 %) against the spectroscopic steps."""
    spectra = Spectra(h5_fit, records.shape[1])
    x, xlabel = spectra.abscissa()
    names = records.dtype.names
    fig, axes = panel_grid(len(names), min(len(names), 3), 3.8, 2.9)
    for field, ax in zip(names, axes, strict=True):
        values = records[field].astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q25, q50, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
        name, factor, q = _field_label(field, source, q50)
        spread = np.abs(np.stack([q50 - q25, q75 - q50])) / factor
        ax.errorbar(x, q50 / factor, yerr=spread, fmt="o-", ms=2.5, lw=1, capsize=2, color="C0")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(q)
        ax.set_title(name, fontsize=9)
    fig.suptitle("Fitted parameters over the steps (median over positions, bars: 25-75 %)")
    return fig


def _step_name(h5_fit: Any, steps: int) -> str:
    """``"DC_Offset "``: the names of the spectroscopic dimensions of a fit's steps (with a space)."""
    names = [a.name for a in Spectra(h5_fit, steps).axes]
    return " x ".join(names) + " " if names else ""


def fit_figures(h5_fit_group: Any) -> dict[str, Figure]:
    """Maps of the fitted parameters, R^2 and converged share of a fit group (SHO or loop fit).

    Parameters
    ----------
    h5_fit_group : h5py.Group
        Group written by :func:`pycro_gpu.fitting.fit_sho_dataset` or
        :func:`~pycro_gpu.fitting.fit_loop_dataset` (a compound ``Fit`` dataset, optionally ``Status``
        with the codes of the group's ``status_codes`` attribute, ``Converged`` and ``Switching``).

    Returns
    -------
    dict of str to Figure
        ``fit_parameters``: a map of each field, titled by its name and with its units on the colorbar
        (``"Amplitude [V]"`` -> ``"Amplitude (mV)"``; loop parameters in the units of the response and
        the bias), averaged over the remaining spectroscopic steps; ``fit_quality``: the R^2 map
        (``R2 Criterion``) and the fraction of converged fits per position, the share of all fits in
        the title; ``fit_switching`` (loop fits): the switching parameters; ``fit_steps`` (fits over
        several spectroscopic steps, e.g. SHO over DC bias): each parameter against the steps. Maps
        are oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps` of the ``Fit`` dataset,
        or of the fitted source (a loop ``Fit`` of one record per position); curves over the position
        where the positions form no 2-D grid.
    """
    h5_fit = h5_fit_group["Fit"]
    n = int(h5_fit.shape[0])
    records = np.asarray(h5_fit[()]).reshape(n, -1)
    source = _source(h5_fit_group)
    positions = Positions.of(h5_fit, source, n=n)
    steps = records.shape[1]
    note = f" (mean over {steps} {_step_name(h5_fit, steps)}steps)" if steps > 1 else ""
    figures = {
        "fit_parameters": _field_maps(
            records, positions, source, title=f"Fit: {h5_fit_group.name}", note=note
        )
    }
    quality = _fit_quality(h5_fit_group, records, positions, note)
    if quality is not None:
        figures["fit_quality"] = quality
    if "Switching" in h5_fit_group:
        switching = np.asarray(h5_fit_group["Switching"][()]).reshape(n, -1)
        figures["fit_switching"] = _field_maps(switching, positions, source, title="Switching parameters")
    if steps > 1:
        figures["fit_steps"] = _fit_steps(records, h5_fit, source)
    return figures


def plot_fit(h5_fit_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``fit_parameters.png``, ``fit_quality.png`` ... (:func:`fit_figures`).

    Parameters
    ----------
    h5_fit_group : h5py.Group
        Group written by :func:`pycro_gpu.fitting.fit_sho_dataset` or
        :func:`~pycro_gpu.fitting.fit_loop_dataset` (a compound ``Fit`` dataset).
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    return _save_all(fit_figures(h5_fit_group), out_dir)


# ------------------------------------------------------------------------------------------ images


def image_figures(h5_image_group: Any) -> dict[str, Figure]:
    """``image``: the source image and the processed one side by side (first spectroscopic step).

    Parameters
    ----------
    h5_image_group : h5py.Group
        Group written by :func:`pycro_gpu.filters.image_dataset.process_image_dataset`.

    Returns
    -------
    dict of str to Figure
        Maps oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps` (X across, Y upwards) in
        the position units, each with a colorbar of its quantity and units.
    """
    processed = h5_image_group["Processed"]
    path = h5_image_group.attrs.get("source_path")
    source = h5_image_group.file.get(_text(path)) if path is not None else None
    panels = [("processed: " + _attr_text(h5_image_group, "operations", ""), processed)]
    if source is not None:
        panels.insert(0, ("source", source))
    fig, axes = panel_grid(len(panels), len(panels), 5.0, 4.2)
    for (title, dset), ax in zip(panels, axes, strict=True):
        values = np.asarray(dset[:, 0], dtype=np.float64)
        factor, q = quantity_label(
            _attr_text(dset, "quantity", "value"), _attr_text(dset, "units", ""), values
        )
        Positions.of(dset, n=values.size).draw(fig, ax, values / factor, title=title, quantity=q)
    steps = int(processed.shape[1])
    fig.suptitle(h5_image_group.name + (f" (step 0 of {steps})" if steps > 1 else ""))
    return {"image": fig}


def plot_image(h5_image_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``image.png`` (:func:`image_figures`).

    Parameters
    ----------
    h5_image_group : h5py.Group
        Group written by :func:`pycro_gpu.filters.image_dataset.process_image_dataset`.
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    return _save_all(image_figures(h5_image_group), out_dir)


def _save_all(figures: dict[str, Figure], out_dir: str | Path) -> list[Path]:
    """Write each figure as ``<out_dir>/<name>.png`` and return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [save_figure(fig, out / f"{name}.png", dpi=100) for name, fig in figures.items()]
