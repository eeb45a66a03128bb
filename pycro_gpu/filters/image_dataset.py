"""Image processing of a USID map or image stack as a dataset job (``pycro-gpu image``).

:func:`process_image_dataset` reads a Main dataset whose positions form a 2-D scan (an AFM image: one
value per position; or a stack: one image per spectroscopic step), applies, in this order, flattening
(:mod:`pycro_gpu.filters.flatten`) and a 2-D FFT filter (:func:`~pycro_gpu.filters.gaussian_mask` or
:func:`~pycro_gpu.filters.butterworth_mask` with :func:`~pycro_gpu.filters.filter_image`), and writes
``<Source>-Image_NNN/Processed``, a Main dataset with the source's shape and dimensions. A finished
group with the same operations is reused; results can go to another file. The whole image is
processed at once (flattening and FFT filters need it): it must fit the memory budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._lib.image_methods import FFT_KINDS, FLATTEN, MASKS
from ..errors import DataError
from ..process import JobResult

__all__ = ["FFT_KINDS", "FLATTEN", "process_image_dataset"]


def _check(flatten: str | None, fft: str | None, cutoff: Any, mask: str, line_order: Any) -> dict[str, Any]:
    if flatten is not None and flatten not in FLATTEN:
        msg = f"flatten must be one of {', '.join(FLATTEN)}, got {flatten!r}"
        raise ValueError(msg)
    if fft is not None and fft not in FFT_KINDS:
        msg = f"fft must be one of {', '.join(FFT_KINDS)}, got {fft!r}"
        raise ValueError(msg)
    if mask not in MASKS:
        msg = f"mask must be one of {', '.join(MASKS)}, got {mask!r}"
        raise ValueError(msg)
    if isinstance(line_order, bool) or int(line_order) != line_order or not 0 <= int(line_order) <= 5:
        msg = f"line_order must be an integer from 0 to 5, got {line_order!r}"
        raise ValueError(msg)
    if flatten is None and fft is None:
        msg = "nothing to do: give flatten='plane'|'line' and/or fft='low'|'high'|'band' with a cutoff"
        raise ValueError(msg)
    cut: list[float] = []
    if fft is not None:
        cut = [float(c) for c in np.atleast_1d(cutoff)] if cutoff is not None else []
        if len(cut) != (2 if fft == "band" else 1) or not all(0 < c <= 0.5 for c in cut):
            want = "two cutoffs (low, high)" if fft == "band" else "one cutoff"
            msg = f"fft={fft!r} needs {want} in cycles per pixel, in (0, 0.5]; got {cutoff!r}"
            raise ValueError(msg)
    return {
        "flatten": flatten or "none",
        "line_order": int(line_order),
        "fft": fft or "none",
        "cutoff": cut,
        "mask": mask,
    }


def process_image(images: Any, params: dict[str, Any], xp: Any) -> Any:
    """Apply the operations of ``params`` (see :func:`process_image_dataset`) to ``(..., ny, nx)`` images."""
    from .fft import butterworth_mask, filter_image, gaussian_mask
    from .flatten import flatten_lines, flatten_plane

    out = xp.astype(images, xp.float64)
    if params["flatten"] == "plane":
        out = flatten_plane(out, xp=xp)
    elif params["flatten"] == "line":
        out = flatten_lines(out, params["line_order"], xp=xp)
    if params["fft"] != "none":
        cut = params["cutoff"]
        cutoff = (cut[0], cut[1]) if params["fft"] == "band" else cut[0]
        make = gaussian_mask if params["mask"] == "gaussian" else butterworth_mask
        mask = make(tuple(out.shape), cutoff, kind=params["fft"], xp=xp, dtype=xp.float64)
        out = filter_image(out, mask, xp=xp)
    return out


def _slowest_first(main: Any) -> list[int]:
    n_pos = len(main.pos_dims)
    return list(reversed(main.pos_order)) + [n_pos + k for k in reversed(main.spec_order)]


def process_image_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
    flatten: str | None = None,
    line_order: int = 1,
    fft: str | None = None,
    cutoff: float | tuple[float, float] | None = None,
    mask: str = "gaussian",
) -> JobResult:
    """Flatten and/or FFT-filter the image(s) of a USID Main dataset; write ``<Source>-Image_NNN``.

    Parameters
    ----------
    source, dataset_path, results, backend, memory_mb, executor, override, progress
        As every dataset job (:func:`pycro_gpu.process.run_job`).
    flatten : {'plane', 'line'}, optional
        Subtract the least-squares plane of each image, or a polynomial of degree ``line_order`` from
        each fast-scan line.
    line_order : int
        Degree of the line polynomial (0: offsets only).
    fft : {'low', 'high', 'band'}, optional
        2-D FFT filter after flattening.
    cutoff : float or (float, float)
        Cutoff(s) in cycles per pixel (``(low, high)`` for ``band``).
    mask : {'gaussian', 'butterworth'}

    Returns
    -------
    JobResult
        ``<Source>-Image_NNN`` with the Main dataset ``Processed`` (the source's dimensions).

    Raises
    ------
    DataError
        The positions do not form a 2-D scan, the data are not real numbers, or the images do not fit
        the memory budget.
    """
    from .._config import budget_mb
    from .._lib.checks import check_dataset_path
    from ..io.usid import create_main
    from ..process import PassSpec, run_pass, run_passes, source_ancillaries
    from ..process.rows import feature_rows

    check_dataset_path(dataset_path, "process_image_dataset", "flatten")
    params = _check(flatten, fft, cutoff, mask, line_order)

    def validate(main: Any) -> None:
        if main.dtype.kind not in "fiu":
            msg = f"{main.name} has dtype {main.dtype}; image operations need real numbers"
            raise DataError(msg)
        if len(main.pos_dims) != 2 or not main.is_complete:
            names = [d.name for d in main.pos_dims]
            msg = f"{main.name}: positions {names} do not form a full 2-D scan (an image)"
            raise DataError(msg)
        need = main.shape[0] * main.shape[1] * 8 * 4
        if need > budget_mb(memory_mb) * 2**20:
            msg = (
                f"{main.name}: processing {main.shape[0]} x {main.shape[1]} values at once needs "
                f"{need / 2**20:.0f} MiB, over the memory budget ({budget_mb(memory_mb):.0f} MiB); "
                "raise --memory-mb"
            )
            raise DataError(msg)

    def setup(group: Any, main: Any, same_file: bool) -> None:
        pos = source_ancillaries(main, group, same_file, "Position")
        spec = source_ancillaries(main, group, same_file, "Spectroscopic")
        create_main(
            group, "Processed", None, None, main.quantity, main.units, np.float64, early_allocation=True,
            h5_pos_inds=pos[0], h5_pos_vals=pos[1], h5_spec_inds=spec[0], h5_spec_vals=spec[1],
        )  # fmt: skip

    def algorithm(runner: Any, checkpoint: Any, group: Any) -> None:
        from functools import partial

        from ..backend import from_host, to_host

        main, xp = runner.source, runner.xp
        n_pos, n_spec = main.shape
        parts: list[np.ndarray] = []
        spec = PassSpec(partial(feature_rows, what="image"), rows={"F": ((n_spec,), np.float64)})
        run_pass(runner, spec, rows=n_pos, desc="image: read", progress=progress,
                 on_rows=lambda s, e, r: parts.append(np.asarray(to_host(r["F"]))))  # fmt: skip
        data = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        axes = _slowest_first(main)
        nd = np.transpose(main.to_n_dim(data), axes)  # (y, x, *spec)
        stack = np.moveaxis(nd.reshape(nd.shape[0], nd.shape[1], -1), -1, 0)  # (n_images, y, x)
        out = np.asarray(to_host(process_image(from_host(np.ascontiguousarray(stack), xp), params, xp)))
        back = np.moveaxis(out, 0, -1).reshape(nd.shape)
        group["Processed"][...] = main.from_n_dim(np.transpose(back, np.argsort(axes)))
        group.attrs["operations"] = _describe(params)

    return run_passes(
        "Image", params, algorithm, source, dataset_path, setup=setup, validate=validate,
        results=results, backend=backend, executor=executor, override=override,
    )  # fmt: skip


def _describe(params: dict[str, Any]) -> str:
    ops = []
    if params["flatten"] == "plane":
        ops.append("plane flattened")
    elif params["flatten"] == "line":
        ops.append(f"lines flattened (order {params['line_order']})")
    if params["fft"] != "none":
        ops.append(
            f"{params['mask']} {params['fft']}-pass FFT filter, cutoff {params['cutoff']} cycles/pixel"
        )
    return "; ".join(ops)
