"""The operations of the image job (no heavy imports: the CLI lists them in its help, and
:mod:`pycro_gpu.filters.image_dataset` would bring in the streaming engine and HDF5 for every command)."""

from __future__ import annotations

__all__ = ["FFT_KINDS", "FLATTEN", "MASKS"]

#: Flattening of each image: a plane, or a polynomial per scan line.
FLATTEN = ("plane", "line")
#: 2-D FFT filters.
FFT_KINDS = ("low", "high", "band")
#: Shapes of the FFT filter's mask.
MASKS = ("gaussian", "butterworth")
