"""The USID data model in HDF5: Main datasets, their ancillary datasets, and results groups.

A *Main* dataset is 2-D, shape ``(N_pos, N_spec)``: one row per position (all position dimensions
flattened) and one column per spectroscopic step (all spectroscopic dimensions flattened). It carries
the string attributes ``quantity`` and ``units`` and four object-reference attributes to its
*ancillary* datasets:

==========================  ==========================  =======  ==========================
attribute / dataset         shape                       dtype    attributes
==========================  ==========================  =======  ==========================
``Position_Indices``        ``(N_pos, n_pos_dims)``     uint32   ``labels``, ``units``
``Position_Values``         ``(N_pos, n_pos_dims)``     float32  ``labels``, ``units``
``Spectroscopic_Indices``   ``(n_spec_dims, N_spec)``   uint32   ``labels``, ``units``
``Spectroscopic_Values``    ``(n_spec_dims, N_spec)``   float32  ``labels``, ``units``
==========================  ==========================  =======  ==========================

``labels`` and ``units`` are arrays of byte strings, one per dimension. This is exactly what pyUSID
(checked against pyUSID 0.0.12) writes and what its ``check_if_main`` / ``USIDataset`` /
``get_n_dim_form`` accept; several Main datasets may share one set of ancillary datasets.

Dimension order convention
--------------------------
*Writing* (:func:`write_main`, :func:`create_main`): dimensions are listed **fastest-varying first**,
as in pyUSID. ``pos_dims[0]`` changes fastest along the rows of the 2-D Main dataset, and an N-D
array is indexed ``data[pos_0, pos_1, ..., spec_0, spec_1, ...]`` in the order the dimensions are
listed. For a ``(X, Y)`` image with ``pos_dims=[X, Y]`` the row of pixel ``(x, y)`` is ``y * n_x + x``.

*Reading* (:class:`USIDataset`): files in the wild list their dimensions either fastest-first or
slowest-first, so the order in which the dimensions vary is inferred from the index datasets, as
pyUSID does: a dimension whose index changes more often along the flattened axis is faster. The N-D
form is always returned with its axes in the order of the ``labels`` attribute (positions then
spectroscopic), whatever the storage order; that is pyUSID's ``get_n_dim_form()`` layout.

*Maps* (:meth:`USIDataset.position_maps`, :func:`position_maps`): per-position values (one per row,
e.g. a fitted parameter, SVD scores, cluster labels) become images with the position dimensions from
the slowest- to the fastest-varying, ``(n_y, n_x, ...)`` for a scan stored X fastest
(``pos_dims=[X, Y]`` as written here): Y down the rows, X across the columns, as ``imshow`` draws them.
Every map of the library, its figures and its notebooks is built by this one function, never by a
hand-written ``reshape``.

Incomplete grids
----------------
A position grid is *complete* when the index tuples of the rows are exactly the Cartesian product of
the per-dimension index sets (the rows may be stored in any order; they are put in order on read).
Sparse or interrupted scans (e.g. ``sparse_sampling.h5``: 8 positions with 8 distinct X and Y
values) are not: their :attr:`USIDataset.n_dim_shape` is ``None``, :meth:`USIDataset.get_n_dim_form`
raises :class:`~pycro_gpu.errors.USIDError` saying so, and the 2-D data, the per-position
coordinates (:meth:`USIDataset.position_table`) and streaming work as for any Main dataset.

Results groups
--------------
Results of a tool applied to a Main dataset go to a sibling group ``<Source>-<Tool>_NNN`` (see
:func:`create_results_group`) holding the parameters as attributes, ``tool``, a reference to the
source, a timestamp and the pycro_gpu version, so that a re-run with the same parameters finds the
finished group (:func:`find_results`).
"""

from __future__ import annotations

from ._xarray import record_fields, select_field
from .dimensions import ANCILLARY_NAMES, INDICES_DTYPE, VALUES_DTYPE, Dimension
from .read import (
    DEFAULT_RAW_DATA,
    USIDataset,
    check_main,
    find_main_datasets,
    is_main,
    open_main,
    position_maps,
)
from .results import (
    create_results_group,
    describe_file,
    find_results,
    iter_results_groups,
    results_parameters,
    results_version,
    writing_results,
)
from .write import create_dataset, create_main, write_main

__all__ = [
    "ANCILLARY_NAMES",
    "DEFAULT_RAW_DATA",
    "INDICES_DTYPE",
    "VALUES_DTYPE",
    "Dimension",
    "USIDataset",
    "check_main",
    "create_dataset",
    "create_main",
    "create_results_group",
    "describe_file",
    "find_main_datasets",
    "find_results",
    "is_main",
    "iter_results_groups",
    "open_main",
    "position_maps",
    "record_fields",
    "results_parameters",
    "results_version",
    "select_field",
    "write_main",
    "writing_results",
]
