"""Where a dataset job reads and writes: the source Main dataset, the results parent, the results group.

Every dataset job (the position-wise :func:`~pycro_gpu.process.run_job` and the multi-pass
:func:`~pycro_gpu.process.run_passes`) opens its source and its results parent with :func:`open_target`
and finds, resumes or creates its results group with :func:`find_group` / :func:`new_group`, so they all
take the same ``source``, ``dataset_path`` and ``results`` arguments and leave files in the same states.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from ..errors import DataError
from ..io.hdf5 import open_h5
from ..io.usid import USIDataset, create_results_group, find_results, open_main

#: attribute of a results group: the members its setup created (a resumed run keeps only these)
SETUP_MEMBERS = "setup_members"


@dataclass
class Target:
    """An open source Main dataset and the group that receives its results group."""

    source: USIDataset
    parent: h5py.Group

    @property
    def same_file(self) -> bool:
        return self.parent.file.id == self.source.file.id


def _other_file(source: Any, results: Any) -> bool:
    if isinstance(results, h5py.Group):
        return True
    return isinstance(results, (str, os.PathLike)) and Path(results).resolve() != Path(source).resolve()


@contextlib.contextmanager
def open_target(source: Any, dataset_path: str | None, results: Any) -> Iterator[Target]:
    """Open the source Main dataset and the results parent for the duration of a job.

    Parameters
    ----------
    source : str, path-like or h5py.Dataset
        The raw Main dataset, or the path of its file. A path is opened read-only when ``results``
        names another file, else read-write (results in the same file).
    dataset_path : str, optional
        Path of the Main dataset in the file, when ``source`` is a file path.
    results : str, path-like or h5py.Group, optional
        Default next to the source; a file path (opened in append mode, group at its root) or a
        writable group, in the same or another file.

    Raises
    ------
    DataError
        Missing, truncated or non-HDF5 file, unknown dataset path, or results not writable.
    """
    opened: list[h5py.File] = []
    new_file: Path | None = None  # a results file this call created (removed again if left empty)
    try:
        if isinstance(source, (str, os.PathLike)):
            f_src = open_h5(source, "r" if _other_file(source, results) else "r+")
            opened.append(f_src)
            src = open_main(f_src, dataset_path)
        elif isinstance(source, h5py.Dataset):
            src = source if isinstance(source, USIDataset) else USIDataset(source)
        else:
            msg = f"source must be a file path or an h5py.Dataset, got {type(source).__name__}"
            raise TypeError(msg)
        if results is None:
            parent = src.parent
        elif isinstance(results, h5py.Group):
            parent = results
        elif isinstance(results, (str, os.PathLike)):
            if Path(results).resolve() == Path(src.file.filename).resolve():
                parent = src.parent
            else:
                new_file = None if Path(results).exists() else Path(results)
                f_res = open_h5(results, "a")
                opened.append(f_res)
                parent = f_res
        else:
            msg = f"results must be a file path or an h5py.Group, got {type(results).__name__}"
            raise TypeError(msg)
        if parent.file.mode != "r+":
            msg = (
                f"results cannot be written: {parent.file.filename} is open read-only; open it with mode "
                f"'r+' or pass results=<another file>"
            )
            raise DataError(msg)
        yield Target(src, parent)
    finally:
        empty = new_file is not None and len(opened) > 0 and len(opened[-1]) == 0
        for f in opened:
            f.close()
        if empty:
            new_file.unlink(missing_ok=True)


def find_group(
    target: Target,
    tool: str,
    parameters: Mapping[str, Any],
    *,
    override: bool,
    resumable: Callable[[h5py.Group], bool],
    name_prefix: str | None = None,
) -> tuple[h5py.Group | None, bool]:
    """A finished group to reuse ``(group, True)``, an unfinished one to resume ``(group, False)``, or
    ``(None, False)``.

    Groups whose setup was interrupted (status ``creating``) are deleted on the way.
    """
    src, parent = target.source, target.parent

    def groups(status: str) -> list[h5py.Group]:
        return find_results(src, tool, parameters, h5_parent=parent, status=status, name_prefix=name_prefix)

    if not override:
        done = groups("complete")
        if done:
            return done[-1], True
    for g in groups("creating"):
        del parent[g.name]
    for g in reversed(groups("running")):
        if resumable(g):
            return g, False
    return None, False


def new_group(
    target: Target,
    tool: str,
    parameters: Mapping[str, Any],
    setup: Callable[[h5py.Group], None],
    backend: str,
    name_prefix: str | None = None,
) -> h5py.Group:
    """Create ``<Source>-<tool>_NNN`` with status ``running`` after ``setup(group)`` allocated its outputs.

    The group has status ``creating`` while ``setup`` runs and is deleted if it fails; the members that
    ``setup`` created are recorded in the ``setup_members`` attribute.
    """
    parent = target.parent
    group, _ = create_results_group(
        target.source,
        tool,
        parameters,
        h5_parent=parent,
        override=True,
        status="creating",
        name_prefix=name_prefix,
    )
    try:
        setup(group)
        group.attrs[SETUP_MEMBERS] = sorted(group)
        group.attrs["backend"] = backend
        group.attrs["status"] = "running"
    except BaseException:
        del parent[group.name]
        raise
    parent.file.flush()
    return group


def clear_unfinished_outputs(group: h5py.Group, keep: tuple[str, ...] = ()) -> None:
    """Delete the members of a resumed group that its setup did not create (half-written outputs)."""
    setup = {str(n) for n in group.attrs.get(SETUP_MEMBERS, [])} | set(keep)
    for name in list(group):
        if name not in setup:
            del group[name]


def source_ancillaries(
    source: USIDataset, group: h5py.Group, same_file: bool, kind: str, prefix: str = "Source_"
) -> tuple[h5py.Dataset, h5py.Dataset]:
    """The source's position (``kind="Position"``) or spectroscopic (``"Spectroscopic"``) ancillaries
    for a results dataset in ``group``: the source's own in the same file, else copies in ``group``
    named ``<prefix><kind>_Indices`` / ``_Values`` (object references cannot cross files)."""
    pair = (
        (source.h5_pos_inds, source.h5_pos_vals)
        if kind == "Position"
        else (source.h5_spec_inds, source.h5_spec_vals)
    )
    if same_file:
        return pair
    out = []
    for suffix, src in zip(("Indices", "Values"), pair, strict=True):
        d = group.create_dataset(f"{prefix}{kind}_{suffix}", data=src[()])
        for k, v in src.attrs.items():
            if not isinstance(v, (h5py.Reference, h5py.RegionReference)):
                d.attrs[k] = v
        out.append(d)
    return out[0], out[1]
