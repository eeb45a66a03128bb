"""Input/output: the USID data model in HDF5, streamed access and instrument translators."""

from .hdf5 import BatchReader, batch_slices, open_h5, plan_batch_rows
from .usid import (
    Dimension,
    USIDataset,
    check_main,
    create_main,
    create_results_group,
    describe_file,
    find_main_datasets,
    find_results,
    is_main,
    iter_results_groups,
    open_main,
    results_parameters,
    write_main,
)

__all__ = [
    "BatchReader",
    "Dimension",
    "USIDataset",
    "batch_slices",
    "check_main",
    "create_main",
    "create_results_group",
    "describe_file",
    "find_main_datasets",
    "find_results",
    "is_main",
    "iter_results_groups",
    "open_h5",
    "open_main",
    "plan_batch_rows",
    "results_parameters",
    "write_main",
]
