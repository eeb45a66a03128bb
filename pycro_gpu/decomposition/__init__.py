"""Decomposition of USID data: streamed truncated SVD with rebuild, and PCA / NMF / ICA estimators.

``svd`` works on an in-memory array of any array-API namespace or on an ``h5py.Dataset`` streamed by
position batches (peak memory set by the working-memory budget, never by the file). For the usual
tall-and-skinny USID matrix (many positions, up to a few thousand spectral points) and a few components
it reads the file once: a sketch warm-started from a sample of rows gives ``U``, ``S`` and ``V`` with a
residual-based error estimate, and falls back to the exact float64 Gram matrix (one read for ``S`` and
``V``, one for ``U``) when the estimate misses the tolerance; more components take the Gram method
directly, and wide data (Gram matrix over half the budget) a randomized range finder with power
iterations. See :mod:`pycro_gpu.decomposition._svd_streamed` for the algorithms, their precision and the
choice.

At the dataset level, :func:`svd_dataset` writes the results group ``<Source>-SVD_NNN`` as pycroscopy
does: Main datasets ``U`` (abundance maps, ``(N_pos, k)``, sharing the source's position ancillaries)
and ``V`` (components, ``(k, N_spec)``, sharing its spectroscopic ancillaries) and the plain dataset
``S``. :func:`rebuild` writes the denoised ``Rebuilt_Data`` (a new Main dataset) from chosen components.

:func:`decompose` (PCA, IncrementalPCA, TruncatedSVD, NMF, FastICA) uses cuML on CuPy data where cuML
is installed and scikit-learn otherwise; see :data:`CAPABILITIES`.
"""

from __future__ import annotations

from ._decompose import CAPABILITIES, Decomposition, decompose, decompose_dataset
from ._rebuild import rebuild
from ._svd import SVDResult, svd, svd_dataset
from ._svd_streamed import METHODS, SKETCH_TOL, choose_method

__all__ = [
    "CAPABILITIES",
    "METHODS",
    "SKETCH_TOL",
    "Decomposition",
    "SVDResult",
    "choose_method",
    "decompose",
    "decompose_dataset",
    "rebuild",
    "svd",
    "svd_dataset",
]
