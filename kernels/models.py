"""The built-in fit models of the batched solver, by name (``sho``, ``loop``, ``gaussian_2``, ...)."""

from __future__ import annotations

from .lm import Model

__all__ = ["kernel_model"]


def kernel_model(name: str) -> Model:
    """The :class:`kernels.lm.Model` called ``name``; peaks are ``<shape>_<number of peaks>``.

    Examples
    --------
    >>> from pycro_gpu.kernels.models import kernel_model
    >>> kernel_model("gaussian_2").n_params
    8
    """
    from . import model_relaxation
    from .model_loop import LOOP
    from .model_peaks import PEAK_SHAPES, peaks_model
    from .model_sho import SHO

    fixed = {
        "sho": SHO,
        "loop": LOOP,
        "exponential": model_relaxation.EXPONENTIAL,
        "double_exponential": model_relaxation.DOUBLE_EXPONENTIAL,
        "stretched_exponential": model_relaxation.STRETCHED_EXPONENTIAL,
    }
    if name in fixed:
        return fixed[name]
    shape, _, k = name.rpartition("_")
    if shape in PEAK_SHAPES and k.isdigit():
        return peaks_model(shape, int(k))
    msg = f"unknown fit model {name!r}; known: {', '.join(fixed)} and <peak shape>_<number of peaks>"
    raise ValueError(msg)
