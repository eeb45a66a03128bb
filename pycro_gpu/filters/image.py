"""Image operations dispatched to cuCIM on the GPU and scikit-image on the CPU (never rewritten here).

cuCIM's ``cucim.skimage`` mirrors scikit-image's API on CuPy arrays, so one call name serves both: CuPy
images go to ``cucim.skimage.<module>.<function>`` (imported only in that branch) and stay on the
device; NumPy images go to ``skimage.<module>.<function>``. Images of other CPU array-API namespaces
(e.g. array_api_strict) are viewed as NumPy through DLPack, processed by scikit-image and returned in
their own namespace and device (the CPU fallback of the style guide).

Where cuCIM cannot be imported (not installed, or a CUDA driver it cannot use), CuPy images take that
CPU fallback too: copied to the host with their array arguments, processed by scikit-image and moved
back to their device, after one :class:`~pycro_gpu.errors.GPUFallbackWarning` per process.

:data:`OPERATIONS` is the capability table: every name, the scikit-image function it calls on the
CPU and the cuCIM function it calls on the GPU.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .._lib.optional import import_gpu_library
from .._lib.typing import Array, Namespace
from ..backend import array_namespace, device_of, from_host, is_cupy_namespace, is_numpy_namespace, to_host

__all__ = [
    "OPERATIONS",
    "denoise_tv",
    "difference_of_gaussians",
    "gaussian",
    "image_op",
    "median",
    "rescale",
    "resize",
    "rotate",
    "sobel",
    "unsharp_mask",
]

#: name -> (submodule, function) of ``skimage`` (CPU) and ``cucim.skimage`` (GPU).
OPERATIONS: dict[str, tuple[str, str]] = {
    "butterworth": ("filters", "butterworth"),
    "denoise_tv": ("restoration", "denoise_tv_chambolle"),
    "difference_of_gaussians": ("filters", "difference_of_gaussians"),
    "equalize_adapthist": ("exposure", "equalize_adapthist"),
    "gaussian": ("filters", "gaussian"),
    "median": ("filters", "median"),
    "rescale": ("transform", "rescale"),
    "resize": ("transform", "resize"),
    "rotate": ("transform", "rotate"),
    "sobel": ("filters", "sobel"),
    "threshold_otsu": ("filters", "threshold_otsu"),
    "unsharp_mask": ("filters", "unsharp_mask"),
}


def _operation(name: str) -> tuple[str, str]:
    if name not in OPERATIONS:
        msg = f"image operation must be one of {', '.join(sorted(OPERATIONS))}; got {name!r}"
        raise ValueError(msg)
    return OPERATIONS[name]


def _skimage_function(name: str) -> Any:
    sub, fn = _operation(name)
    return getattr(importlib.import_module(f"skimage.{sub}"), fn)


def _cucim_function(name: str) -> Any:
    """The cuCIM function of ``name``, or ``None`` (after one warning) where cuCIM does not import."""
    sub, fn = _operation(name)
    module = import_gpu_library(f"cucim.skimage.{sub}", instead="scikit-image on host copies of CuPy images")
    return None if module is None else getattr(module, fn)


def _on_host(func: Any, name: str, image: Array, xp: Namespace, args: tuple, kwargs: dict) -> Any:
    """``func`` (scikit-image) on a host copy of ``image`` and of its array arguments; arrays come back
    to the namespace and device of ``image``."""
    device = device_of(image)
    try:
        host = to_host(image)
    except (BufferError, RuntimeError, TypeError) as exc:
        msg = f"image operation {name!r} needs NumPy, CuPy or a CPU array-API array; got {type(image)!r}"
        raise TypeError(msg) from exc
    args = tuple(_host_if_array(a) for a in args)
    kwargs = {k: _host_if_array(v) for k, v in kwargs.items()}
    out = func(host, *args, **kwargs)
    if isinstance(out, np.ndarray):
        return from_host(out, xp, device=device)
    return out


def _host_if_array(value: Any) -> Any:
    return to_host(value) if hasattr(value, "__array_namespace__") else value


def image_op(name: str, image: Array, *args: Any, xp: Namespace | None = None, **kwargs: Any) -> Any:
    """Run the scikit-image / cuCIM operation ``name`` on ``image`` in the image's own namespace.

    Parameters
    ----------
    name : str
        A key of :data:`OPERATIONS`.
    image : (..., ny, nx) array
        NumPy, CuPy (runs on the GPU through cuCIM) or another CPU array-API array.
    *args, **kwargs
        Passed to the scikit-image / cuCIM function (same signature in both).

    Returns
    -------
    array or scalar
        Arrays in the namespace (and on the device) of ``image``; scalars (e.g. ``threshold_otsu``) as
        returned by the library.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.filters.image import image_op
    >>> img = np.zeros((9, 9)); img[4, 4] = 1.0
    >>> out = image_op("gaussian", img, sigma=1.0)
    >>> bool(np.isclose(out.sum(), 1.0, atol=1e-3))
    True
    """
    if xp is None:
        xp = array_namespace(image)
    if is_cupy_namespace(xp):
        gpu_func = _cucim_function(name)
        if gpu_func is not None:
            return gpu_func(image, *args, **kwargs)
    func = _skimage_function(name)
    if is_numpy_namespace(xp):
        return func(np.asarray(image), *args, **kwargs)
    return _on_host(func, name, image, xp, args, kwargs)


def gaussian(image: Array, sigma: float = 1.0, **kwargs: Any) -> Array:
    """Gaussian smoothing (``skimage.filters.gaussian`` / cuCIM); ``preserve_range=True`` by default."""
    kwargs.setdefault("preserve_range", True)
    return image_op("gaussian", image, sigma=sigma, **kwargs)


def median(image: Array, size: int = 3, **kwargs: Any) -> Array:
    """Median filter over a ``size x size`` square (``skimage.filters.median`` / cuCIM)."""
    if int(size) < 1:
        msg = f"size must be a positive integer, got {size!r}"
        raise ValueError(msg)
    xp = array_namespace(image)
    footprint = np.ones((int(size),) * image.ndim, dtype=bool)
    if is_cupy_namespace(xp):
        footprint = xp.asarray(footprint)
    return image_op("median", image, footprint=footprint, **kwargs)


def sobel(image: Array, **kwargs: Any) -> Array:
    """Sobel edge magnitude (``skimage.filters.sobel`` / cuCIM)."""
    return image_op("sobel", image, **kwargs)


def difference_of_gaussians(
    image: Array, low_sigma: float, high_sigma: float | None = None, **kw: Any
) -> Array:
    """Band-pass by difference of Gaussians (``skimage.filters.difference_of_gaussians`` / cuCIM)."""
    return image_op("difference_of_gaussians", image, low_sigma, high_sigma, **kw)


def unsharp_mask(image: Array, radius: float = 1.0, amount: float = 1.0, **kwargs: Any) -> Array:
    """Unsharp masking (``skimage.filters.unsharp_mask`` / cuCIM); ``preserve_range=True`` by default."""
    kwargs.setdefault("preserve_range", True)
    return image_op("unsharp_mask", image, radius=radius, amount=amount, **kwargs)


def denoise_tv(image: Array, weight: float = 0.1, **kwargs: Any) -> Array:
    """Total-variation denoising (``skimage.restoration.denoise_tv_chambolle`` / cuCIM)."""
    return image_op("denoise_tv", image, weight=weight, **kwargs)


def resize(image: Array, output_shape: tuple[int, ...], **kwargs: Any) -> Array:
    """Resize (``skimage.transform.resize`` / cuCIM); ``preserve_range=True`` by default."""
    kwargs.setdefault("preserve_range", True)
    return image_op("resize", image, output_shape, **kwargs)


def rescale(image: Array, scale: float, **kwargs: Any) -> Array:
    """Rescale by a factor (``skimage.transform.rescale`` / cuCIM); ``preserve_range=True`` by default."""
    kwargs.setdefault("preserve_range", True)
    return image_op("rescale", image, scale, **kwargs)


def rotate(image: Array, angle: float, **kwargs: Any) -> Array:
    """Rotate by ``angle`` degrees (``skimage.transform.rotate`` / cuCIM); ``preserve_range=True``."""
    kwargs.setdefault("preserve_range", True)
    return image_op("rotate", image, angle, **kwargs)
