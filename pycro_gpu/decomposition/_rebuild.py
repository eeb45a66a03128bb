"""Rebuild: the denoised Rebuilt_Data of a USID dataset from chosen SVD components."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._config import rows_for_budget
from ..backend import from_host, get_namespace, to_host
from ..errors import USIDError
from ._svd import _usid


def _components_list(components: Any, k: int) -> list[int]:
    if components is None:
        comps = list(range(k))
    elif isinstance(components, (int, np.integer)):
        comps = list(range(int(components)))
    elif isinstance(components, slice):
        comps = list(range(k))[components]
    elif isinstance(components, (Sequence, np.ndarray)):
        comps = [int(c) for c in components]
    else:
        msg = f"components must be None, an int, a slice or a list of ints, got {components!r}"
        raise ValueError(msg)
    if not comps or any(c < 0 or c >= k for c in comps):
        msg = f"components must select among the {k} stored components (0..{k - 1}), got {components!r}"
        raise ValueError(msg)
    return comps


def rebuild(
    h5_svd_group: Any,
    components: Any = None,
    *,
    memory_mb: float | None = None,
    backend: str | None = None,
    progress: bool | None = None,
) -> Any:
    """Write ``U[:, c] diag(S[c]) V[c]`` as the Main dataset ``Rebuilt_Data`` (denoised data).

    Parameters
    ----------
    h5_svd_group : h5py.Group
        A group written by :func:`svd_dataset` (or pycroscopy's SVD) with ``U``, ``S``, ``V``.
    components : int, slice or sequence of int, optional
        Components to keep: ``n`` means the first ``n``; default all.
    memory_mb : float, optional
        Working-memory budget that sets the batch of positions rebuilt at once.
    backend : str, optional
        Compute backend.
    progress : bool, optional
        Progress bar.

    Returns
    -------
    USIDataset
        ``<svd group>/Rebuilt_Data_NNN/Rebuilt_Data``, shape and ancillaries of the source.
    """
    from ..io.usid import create_main, writing_results

    for name in ("U", "S", "V"):
        if name not in h5_svd_group:
            msg = f"rebuild: {h5_svd_group.name} has no {name!r} dataset; pass a group written by svd_dataset"
            raise USIDError(msg)
    h5_u, h5_s, h5_v = h5_svd_group["U"], h5_svd_group["S"], h5_svd_group["V"]
    k = int(h5_s.shape[0])
    comps = _components_list(components, k)
    src_ref = h5_svd_group.attrs.get("source_000")
    if src_ref is not None:
        source = _usid(h5_svd_group.file[src_ref])
    else:
        source = _usid(h5_svd_group.file[h5_svd_group.attrs["source_path"]])
    xp = get_namespace(backend)
    S = to_host(h5_s[()]).astype(np.float64)[comps]
    V = np.asarray(h5_v[()])[comps, :]
    cdt = np.complex128 if (V.dtype.kind == "c" or h5_u.dtype.kind == "c") else np.float64
    SV = from_host((S[:, None] * V).astype(cdt), xp)
    used = [n for n in h5_svd_group if n.startswith("Rebuilt_Data_") and n[13:].isdigit()]
    index = max(int(n[13:]) for n in used) + 1 if used else 0
    grp = h5_svd_group.create_group(f"Rebuilt_Data_{index:03d}")
    with writing_results(grp):  # an error or interrupt leaves no half-written Rebuilt_Data behind
        grp.attrs["components_used"] = np.asarray(comps, dtype=np.int64)
        out_dtype = source.dtype if source.dtype.kind in "fc" else np.dtype(np.float32)
        if out_dtype.kind != "c" and cdt is np.complex128:
            out_dtype = np.dtype(np.complex64 if out_dtype.itemsize <= 4 else np.complex128)
        out = create_main(
            grp,
            "Rebuilt_Data",
            None,
            None,
            source.quantity,
            source.units,
            out_dtype,
            h5_pos_inds=source.h5_pos_inds,
            h5_pos_vals=source.h5_pos_vals,
            h5_spec_inds=source.h5_spec_inds,
            h5_spec_vals=source.h5_spec_vals,
        )
        n_pos, n_spec = source.shape
        rows = rows_for_budget(n_spec, 3 * np.dtype(cdt).itemsize, memory_mb)
        u_cols = np.asarray(comps)
        contiguous = list(comps) == list(range(comps[0], comps[-1] + 1))
        for start in range(0, n_pos, rows):
            stop = min(start + rows, n_pos)
            if contiguous:
                u = h5_u[start:stop, comps[0] : comps[-1] + 1]
            else:
                u = h5_u[start:stop, :][:, u_cols]
            block = from_host(np.asarray(u).astype(cdt, copy=False), xp) @ SV
            out[start:stop, :] = to_host(block).astype(out_dtype, copy=False)
    return out
