"""Input/output: the USID data model in HDF5, streamed access and instrument translators."""

from .usid import (
    Dimension,
    USIDataset,
    check_main,
    create_main,
    create_results_group,
    find_main_datasets,
    find_results,
    is_main,
    write_main,
)

__all__ = [
    "Dimension",
    "USIDataset",
    "check_main",
    "create_main",
    "create_results_group",
    "find_main_datasets",
    "find_results",
    "is_main",
    "write_main",
]
