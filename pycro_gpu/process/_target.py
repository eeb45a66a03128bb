"""Where a dataset job reads and writes: the source Main dataset, the results parent, the results group.

Every dataset job (the position-wise :func:`~pycro_gpu.process.run_job` and the multi-pass
:func:`~pycro_gpu.process.run_passes`) opens its source and its results parent with :func:`open_target`
and finds, resumes or creates its results group with :func:`prepare_results` / :func:`new_group`, so
they all take the same ``source``, ``dataset_path`` and ``results`` arguments and leave files in the same
states.

Files are read-only until something will be written. :func:`open_target` opens what it is given by path
read-only; a job validates its parameters and looks for a finished group to reuse on the read-only
files, and only then (:meth:`Target.prepare_write`) checks that its outputs are in proportion to the
source and fit the free space of the results' file system, and reopens the results file for writing
(or creates it atomically). A refused, failed-before-writing or reused job therefore leaves every input
byte-identical, modification time included; a file the caller opened read-only gets a
:class:`ResultsReadOnlyError` instead (the command line then reopens it for writing and runs again).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py

from ..errors import DataError
from ..io.hdf5 import (
    SpaceReservation,
    check_free_space,
    check_output_size,
    create_h5_atomically,
    open_h5,
    remove_stale_temporaries,
    space_needed,
)
from ..io.usid import USIDataset, create_results_group, find_results, open_main

#: attribute of a results group: the members its setup created (a resumed run keeps only these)
SETUP_MEMBERS = "setup_members"


class ResultsReadOnlyError(DataError):
    """The results would go into a file that the caller opened read-only; nothing was written.

    Raised only after the job was validated and no finished results group was found to reuse, so a
    caller (the command line) can reopen the file for writing and run the job again.
    """


class Target:
    """An open source Main dataset and the group that receives its results group.

    Files that :func:`open_target` opens by path are opened read-only; :meth:`prepare_write` checks the
    outputs' size and the free space, then reopens them for writing (or creates the results file).
    Until then ``parent`` may be None (a results file that does not exist yet) or read-only.

    Attributes
    ----------
    source : USIDataset
        The source Main dataset (a new object after :meth:`prepare_write` reopened its file).
    parent : h5py.Group or None
        The group that holds (or will hold) the results group.
    """

    def __init__(self, source: USIDataset, parent: h5py.Group | None) -> None:
        self.source = source
        self.parent = parent
        #: files this target opened (closed by :meth:`close`)
        self._source_file: h5py.File | None = None
        self._results_file: h5py.File | None = None
        #: results in another file given by path (created atomically on the first write)
        self._results_path: Path | None = None
        self._created = False
        #: blocks allocated past the end of the results file for the job's writes
        self._reservation: SpaceReservation | None = None

    @property
    def same_file(self) -> bool:
        return self.parent is not None and self.parent.file.id == self.source.file.id

    @property
    def writable(self) -> bool:
        return self.parent is not None and self.parent.file.mode == "r+"

    def prepare_write(self, output_bytes: int) -> None:
        """Refuse outputs out of proportion to the source or larger than the free space, then make
        ``parent`` writable.

        The space checked is then reserved past the end of the results file for the job
        (:class:`~pycro_gpu.io.hdf5.SpaceReservation`, released when the target closes), so that another
        program filling the disk during the job cannot make its writes fail half-way.

        Parameters
        ----------
        output_bytes : int
            Estimated bytes the job will allocate in the results file.

        Raises
        ------
        DataError
            The outputs exceed the sane bound of :func:`~pycro_gpu.io.hdf5.check_output_size` or the
            free space (:func:`~pycro_gpu.io.hdf5.check_free_space`); nothing was written.
        ResultsReadOnlyError
            The results parent is in a file the caller opened read-only.
        """
        check_output_size(int(output_bytes), self.source)
        folder = self._results_folder()
        if folder is not None:
            check_free_space(folder, int(output_bytes))
        self._make_writable()
        if folder is not None and self._reservation is None:
            self._reservation = SpaceReservation(self.parent.file.filename, space_needed(int(output_bytes)))

    def _results_folder(self) -> Path | None:
        """Folder of the results file when it is (or will be) a file on disk."""
        if self.parent is None:
            folder = self._results_path.parent
            if not folder.is_dir():
                msg = f"cannot create {str(self._results_path)!r}: folder {str(folder)!r} does not exist"
                raise DataError(msg)
            return folder
        name = Path(self.parent.file.filename)
        return name.parent if name.is_file() else None

    def _make_writable(self) -> None:
        if self.writable:
            return
        if self._results_path is not None:  # another file, given by path
            if self._results_file is not None:
                self._results_file.close()
            if not self._results_path.exists():
                create_h5_atomically(self._results_path)
                self._created = True
            else:  # a run killed as the file appeared may have left its temporary name (a hard link)
                remove_stale_temporaries(self._results_path.parent)
            self._results_file = open_h5(self._results_path, "r+")
            self.parent = self._results_file
            return
        if self._source_file is not None and self.parent.file.id == self._source_file.id:
            path, src_name, parent_name = self._source_file.filename, self.source.name, self.parent.name
            self._source_file.close()
            self._source_file = open_h5(path, "r+")
            self.source = USIDataset(self._source_file[src_name])
            self.parent = self._source_file[parent_name]
            return
        msg = (
            f"results cannot be written: {self.parent.file.filename} is open read-only; open it with mode "
            f"'r+' or pass results=<another file>"
        )
        raise ResultsReadOnlyError(msg)

    def close(self) -> None:
        """Close the files this target opened; remove a results file it created and left empty."""
        created_empty = self._created and self._results_file is not None and len(self._results_file) == 0
        try:
            for f in (self._source_file, self._results_file):
                if f is not None:
                    f.close()
        finally:
            if self._reservation is not None:
                self._reservation.release()
            if created_empty:
                self._results_path.unlink(missing_ok=True)


def _open_source(source: Any, dataset_path: str | None) -> tuple[USIDataset, h5py.File | None]:
    if isinstance(source, (str, os.PathLike)):
        f = open_h5(source, "r")
        try:
            return open_main(f, dataset_path), f
        except BaseException:
            f.close()
            raise
    if isinstance(source, h5py.Dataset):
        return (source if isinstance(source, USIDataset) else USIDataset(source)), None
    msg = f"source must be a file path or an h5py.Dataset, got {type(source).__name__}"
    raise TypeError(msg)


@contextlib.contextmanager
def open_target(source: Any, dataset_path: str | None, results: Any) -> Iterator[Target]:
    """Open the source Main dataset and the results parent for the duration of a job.

    Everything this call opens by path is opened read-only: a job that reuses a finished group, or is
    refused, leaves every file byte-identical (modification time too). The job calls
    :meth:`Target.prepare_write` before its first write.

    Parameters
    ----------
    source : str, path-like or h5py.Dataset
        The raw Main dataset, or the path of its file.
    dataset_path : str, optional
        Path of the Main dataset in the file, when ``source`` is a file path.
    results : str, path-like or h5py.Group, optional
        Default next to the source; a file path (group at its root; created atomically when the job
        writes) or a group, in the same or another file.

    Raises
    ------
    DataError
        Missing, truncated or non-HDF5 file, unknown dataset path.
    """
    src, f_src = _open_source(source, dataset_path)
    target = Target(src, None)
    target._source_file = f_src
    try:
        if results is None:
            target.parent = src.parent
        elif isinstance(results, h5py.Group):
            target.parent = results
        elif isinstance(results, (str, os.PathLike)):
            if Path(results).resolve() == Path(src.file.filename).resolve():
                target.parent = src.parent
            else:
                target._results_path = Path(results)
                if target._results_path.exists():
                    target._results_file = open_h5(results, "r")
                    target.parent = target._results_file
        else:
            msg = f"results must be a file path or an h5py.Group, got {type(results).__name__}"
            raise TypeError(msg)
        yield target
    finally:
        target.close()


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

    Groups whose setup was interrupted (status ``creating``) are deleted on the way once the target is
    writable (a read-only look leaves them for the run that writes).
    """
    src, parent = target.source, target.parent
    if parent is None:  # the results file does not exist yet
        return None, False

    def groups(status: str) -> list[h5py.Group]:
        return find_results(src, tool, parameters, h5_parent=parent, status=status, name_prefix=name_prefix)

    if not override:
        done = groups("complete")
        if done:
            return done[-1], True
    if target.writable:
        for g in groups("creating"):
            del parent[g.name]
    for g in reversed(groups("running")):
        if resumable(g):
            return g, False
    return None, False


def prepare_results(
    target: Target,
    tool: str,
    parameters: Mapping[str, Any],
    *,
    override: bool,
    resumable: Callable[[h5py.Group], bool],
    output_bytes: int,
    resume_bytes: int | None = None,
    name_prefix: str | None = None,
) -> tuple[h5py.Group | None, bool]:
    """A finished group to reuse ``(group, True)``, found read-only; else, once the target is writable,
    an unfinished group to resume ``(group, False)`` or ``(None, False)`` (create it with :func:`new_group`).

    Parameters
    ----------
    target : Target
    tool, parameters, override, resumable, name_prefix
        As in :func:`find_group`.
    output_bytes : int
        Bytes a new results group will allocate (checked by :meth:`Target.prepare_write`).
    resume_bytes : int, optional
        Bytes a resumed group still allocates (default ``output_bytes``).

    Raises
    ------
    DataError, ResultsReadOnlyError
        See :meth:`Target.prepare_write`; nothing was written.
    """

    def look() -> tuple[h5py.Group | None, bool]:
        return find_group(
            target, tool, parameters, override=override, resumable=resumable, name_prefix=name_prefix
        )

    group, reused = look()
    if reused:
        return group, True
    resuming = group is not None and resume_bytes is not None
    target.prepare_write(resume_bytes if resuming else output_bytes)
    return look()  # again on the writable file: removes interrupted setups (or another run finished)


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
