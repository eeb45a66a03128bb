"""Rebuild: the denoised Rebuilt_Data of a USID dataset from chosen SVD components."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from .._config import rows_for_budget
from .._lib.checks import check_int, check_memory_mb
from ..backend import device_of, from_host, to_host
from ..errors import ParameterError, USIDError
from ..process import JobResult
from ._svd import _usid


def _components_list(components: Any, k: int) -> list[int]:
    """The component indices chosen by ``components`` among ``k`` stored ones (ParameterError if invalid)."""
    if components is None:
        return list(range(k))
    if _is_integer(components):
        return list(range(check_int(components, "components", minimum=1, maximum=k)))
    if isinstance(components, slice):
        comps = list(range(k))[components]
    elif isinstance(components, (Sequence, np.ndarray)) and not isinstance(components, (str, bytes)):
        if np.ndim(components) != 1:
            msg = f"components must be an int, a slice or a 1-D list of ints, got {components!r}"
            raise ParameterError(msg)
        comps = [check_int(c, f"components[{i}]") for i, c in enumerate(components)]
        if len(set(comps)) != len(comps):
            msg = f"components must not repeat an index, got {components!r}"
            raise ParameterError(msg)
    else:
        msg = f"components must be None, an int, a slice or a list of ints, got {components!r}"
        raise ParameterError(msg)
    if not comps or any(c < 0 or c >= k for c in comps):
        msg = f"components must select among the {k} stored components (0..{k - 1}), got {components!r}"
        raise ParameterError(msg)
    return comps


def _is_integer(value: Any) -> bool:
    """An int-like scalar (not a bool): the number of leading components."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _svd_group(source: Any, dataset_path: str | None) -> tuple[Any, Any]:
    """(SVD group, file this call opened or None) from a group, or a file path and the group's path."""
    import os

    import h5py

    from ..io.hdf5 import open_h5

    if isinstance(source, h5py.Group):
        return source, None
    if not isinstance(source, (str, os.PathLike)):
        msg = f"rebuild: source must be an SVD results group or a file path, got {type(source).__name__}"
        raise TypeError(msg)
    if dataset_path is None:
        msg = "rebuild: give the path of the SVD results group in the file (dataset_path)"
        raise USIDError(msg)
    f = open_h5(source, "r")
    if dataset_path not in f or not isinstance(f[dataset_path], h5py.Group):
        f.close()
        msg = f"rebuild: {source}: no group {dataset_path!r}"
        raise USIDError(msg)
    return f[dataset_path], f


def rebuild(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
    components: Any = None,
) -> JobResult:
    """Write ``U[:, c] diag(S[c]) V[c]`` as the Main dataset ``Rebuilt_Data`` (denoised data).

    A dataset job over ``U`` (one read, :func:`pycro_gpu.process.run_passes`): a finished rebuild with
    the same components is reused, an interrupted one is run again, results can go elsewhere and the
    read can run on Dask workers.

    Parameters
    ----------
    source : h5py.Group, str or path-like
        A group written by :func:`svd_dataset` (or pycroscopy's SVD) with ``U``, ``S``, ``V``, or the
        path of its file (then ``dataset_path`` is the group's path).
    dataset_path : str, optional
        Path of the SVD group when ``source`` is a file path.
    results, backend, memory_mb, executor, override, progress
        As in :func:`pycro_gpu.process.run_job`; by default the rebuilt data go into the SVD group.
    components : int, slice or sequence of int, optional
        Components to keep: ``n`` means the first ``n``; default all.

    Returns
    -------
    JobResult
        ``group`` is ``<svd group>/Rebuilt_Data_NNN`` holding ``Rebuilt_Data``, with the shape and the
        ancillary datasets of the SVD's source.
    """
    from ..io.usid import create_main
    from ..process import PassSpec, run_pass, run_passes, source_ancillaries

    check_memory_mb(memory_mb)
    svd, opened = _svd_group(source, dataset_path)
    try:
        for name in ("U", "S", "V"):
            if name not in svd:
                msg = f"rebuild: {svd.name} has no {name!r} dataset; pass a group written by svd_dataset"
                raise USIDError(msg)
        h5_u, h5_v = _usid(svd["U"]), _usid(svd["V"])
        k = int(svd["S"].shape[0])
        comps = _components_list(components, k)
        S = to_host(svd["S"][()]).astype(np.float64)[comps]
        V = np.asarray(h5_v[()])[comps, :]
        u_path, file_path = h5_u.name, h5_u.file.filename
        quantity, units, source_dtype = h5_v.quantity, h5_v.units, _source_dtype(svd)
    finally:
        if opened is not None:
            opened.close()
    cdt = np.dtype(np.complex128 if (V.dtype.kind == "c" or h5_u.dtype.kind == "c") else np.float64)
    SV = (S[:, None] * V).astype(cdt)
    out_dtype = source_dtype if source_dtype.kind in "fc" else np.dtype(np.float32)
    if out_dtype.kind != "c" and cdt.kind == "c":
        out_dtype = np.dtype(np.complex64 if out_dtype.itemsize <= 4 else np.complex128)
    n_spec = SV.shape[1]

    def setup(group: Any, u: Any, same_file: bool) -> None:
        group.attrs["components_used"] = np.asarray(comps, dtype=np.int64)
        pos = source_ancillaries(u, group, same_file, "Position")
        spec = source_ancillaries(_usid(u.file[h5_v.name]), group, same_file, "Spectroscopic")
        create_main(
            group, "Rebuilt_Data", None, None, quantity, units, out_dtype, early_allocation=True,
            h5_pos_inds=pos[0], h5_pos_vals=pos[1], h5_spec_inds=spec[0], h5_spec_vals=spec[1],
        )  # fmt: skip

    def algorithm(runner: Any, checkpoint: Any, group: Any) -> None:
        out = group["Rebuilt_Data"]
        spec = PassSpec(
            partial(rebuild_rows, SV=SV, components=np.asarray(comps)), rows={"R": ((n_spec,), cdt)}
        )

        def write(start: int, stop: int, rows: dict[str, Any]) -> None:
            out[start:stop, :] = np.asarray(to_host(rows["R"])).astype(out_dtype, copy=False)

        rows = rows_for_budget(n_spec, 3 * cdt.itemsize, memory_mb)
        run_pass(runner, spec, rows=rows, desc="rebuild", progress=progress, on_rows=write)

    u_source = svd["U"] if opened is None else file_path
    return run_passes(
        "Rebuild", {"components": [int(c) for c in comps]}, algorithm, u_source,
        None if opened is None else u_path, setup=setup, results=results, backend=backend,
        executor=executor, override=override, name_prefix="Rebuilt_Data_",
        output_bytes=lambda u: u.shape[0] * n_spec * out_dtype.itemsize,
    )  # fmt: skip


def rebuild_rows(
    u: Any, xp: Any, start: int, stop: int, *, SV: np.ndarray, components: np.ndarray
) -> dict[str, Any]:
    """Rows of the rebuilt data: ``U[start:stop, components] @ (diag(S) V)[components]``."""
    sv = from_host(SV, xp, device=device_of(u))
    cols = xp.take(u, from_host(components, xp, device=device_of(u)), axis=1)
    return {"R": xp.astype(cols, sv.dtype) @ sv}


def _source_dtype(svd: Any) -> np.dtype:
    """dtype of the SVD's source dataset (the rebuilt data keep it), else V's."""
    ref = svd.attrs.get("source_000")
    try:
        if ref is not None:
            return np.dtype(svd.file[ref].dtype)
        path = svd.attrs.get("source_path")
        if path is not None and str(path) in svd.file:
            return np.dtype(svd.file[str(path)].dtype)
    except (KeyError, ValueError):
        pass
    return np.dtype(svd["V"].dtype)
