"""USID results groups: creation, lookup by parameters, completion marking and file description."""

from __future__ import annotations

import json
import platform
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..hdf5 import open_h5
from ._attrs import _basename, _encode_list, _str_attr, _timestamp, _version
from .read import find_main_datasets

#: attributes of a results group that are bookkeeping, not tool parameters
RESERVED_RESULT_ATTRS = frozenset(
    {
        "tool",
        "source_000",
        "num_source_dsets",
        "source_path",
        "source_file",
        "timestamp",
        "pycro_gpu_version",
        "machine_id",
        "platform",
        "status",
        "parameters_json",
        "pyUSID_version",
        "pycroscopy_version",
        "last_pixel",
    }
)


def _jsonable(value: Any, key: str) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), key)
    if isinstance(value, np.generic):
        return _jsonable(value.item(), key)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    msg = f"parameter {key!r}: value {value!r} of type {type(value).__name__} cannot be stored"
    raise TypeError(msg)


def _canonical_parameters(parameters: Mapping[str, Any] | None) -> str:
    params = dict(parameters or {})
    for key in params:
        if not isinstance(key, str) or not key:
            msg = f"parameter names must be non-empty strings, got {key!r}"
            raise TypeError(msg)
        if key in RESERVED_RESULT_ATTRS:
            msg = f"parameter name {key!r} is reserved for results-group bookkeeping"
            raise ValueError(msg)
    return json.dumps({k: _jsonable(v, k) for k, v in params.items()}, sort_keys=True)


def _attr_value(value: Any) -> Any:
    if value is None:
        return "None"
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind == "U":
            return _encode_list(list(value))
        if arr.dtype == object:
            return json.dumps(_jsonable(value, "?"))
        return arr
    return value


def results_parameters(group: h5py.Group) -> dict[str, Any]:
    """The tool parameters stored in a results group (from its canonical JSON record)."""
    raw = group.attrs.get("parameters_json")
    if raw is None:  # pyUSID-written group: every non-bookkeeping attribute is a parameter
        return {
            k: v
            for k, v in group.attrs.items()
            if k not in RESERVED_RESULT_ATTRS and not isinstance(v, h5py.Reference)
        }
    return json.loads(_str_attr(raw))


def results_version(group: h5py.Group) -> str:
    """The pycro_gpu version that created a results group (``""`` when it does not say, e.g. pyUSID's)."""
    return _str_attr(group.attrs.get("pycro_gpu_version", ""))


def _numbered(parent: h5py.Group, prefix: str) -> list[str]:
    """Names in ``parent`` of the form ``<prefix>NNN`` (results groups ``<Source>-<Tool>_NNN``)."""
    return [n for n in parent if n.startswith(prefix) and n[len(prefix) :].isdigit()]


def find_results(
    source: h5py.Dataset,
    tool: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    h5_parent: h5py.Group | None = None,
    status: str | None = "complete",
    name_prefix: str | None = None,
) -> list[h5py.Group]:
    """Results groups of ``tool`` applied to ``source``, newest index last.

    Parameters
    ----------
    source : h5py.Dataset
        The Main dataset the tool ran on.
    tool : str
        Tool name, as in the group name ``<Source>-<Tool>_NNN`` and its ``tool`` attribute.
    parameters : mapping, optional
        When given, only groups whose stored parameters equal these (compared as canonical JSON).
    h5_parent : h5py.Group, optional
        Where the groups live (default: the source's parent group).
    status : str or None
        Keep only groups with this ``status`` attribute (``"complete"``, ``"running"``); ``None``
        keeps all. Groups written by pyUSID (no ``status``) count as complete.
    name_prefix : str, optional
        Group names ``<name_prefix>NNN`` instead of ``<Source>-<Tool>_NNN`` (e.g. pycroscopy's
        ``Rebuilt_Data_NNN`` inside an SVD group).

    Returns
    -------
    list of h5py.Group
    """
    parent = source.parent if h5_parent is None else h5_parent
    prefix = f"{_basename(source)}-{tool}_" if name_prefix is None else name_prefix
    want = None if parameters is None else _canonical_parameters(parameters)
    out = []
    for name in sorted(_numbered(parent, prefix)):
        grp = parent[name]
        if not isinstance(grp, h5py.Group) or _str_attr(grp.attrs.get("tool", "")) != tool:
            continue
        if status is not None and _str_attr(grp.attrs.get("status", "complete")) != status:
            continue
        if want is not None:
            raw = grp.attrs.get("parameters_json")
            if raw is None or _str_attr(raw) != want:
                continue
        if not _same_source(grp, source):
            continue
        out.append(grp)
    return out


def _same_source(group: h5py.Group, source: h5py.Dataset) -> bool:
    """Whether ``group`` was computed from ``source`` (by its recorded path and file, where recorded).

    Results of two raw files written into one results file share names and parameters; only the
    recorded source tells them apart. Groups without these records (pyUSID's) are taken as matching.
    """
    path = group.attrs.get("source_path")
    if path is not None and _str_attr(path) != source.name:
        return False
    recorded = group.attrs.get("source_file")
    if recorded is None or group.file.id == source.file.id:
        return True
    try:
        return Path(_str_attr(recorded)).resolve() == Path(source.file.filename).resolve()
    except (OSError, ValueError):
        return False


def create_results_group(
    source: h5py.Dataset,
    tool: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    h5_parent: h5py.Group | None = None,
    override: bool = False,
    status: str = "complete",
    name_prefix: str | None = None,
) -> tuple[h5py.Group, bool]:
    """Create ``<Source>-<Tool>_NNN`` for results, or find the finished one with the same parameters.

    Parameters
    ----------
    source : h5py.Dataset
        The Main dataset the tool runs on (never modified).
    tool : str
        Tool name (letters, digits, ``_``; no ``-``).
    parameters : mapping, optional
        Tool parameters; stored one attribute each plus a canonical JSON record ``parameters_json``.
        Values: numbers, strings, booleans, ``None`` and (nested) lists/arrays of them.
    h5_parent : h5py.Group, optional
        Where to create the group: default the source's parent. A group in another (writable) file
        puts the results there: the raw file is then never opened for writing; the source is recorded
        by ``source_file``/``source_path`` attributes (object references cannot cross files).
    override : bool
        Create a new group even when a finished one with the same parameters exists.
    status : str
        ``status`` attribute of a new group: ``"complete"`` when the caller fills it at once,
        ``"running"`` for a streamed job (:mod:`pycro_gpu.process` sets ``"complete"`` at the end).
    name_prefix : str, optional
        Name the group ``<name_prefix>NNN`` (see :func:`find_results`).

    Returns
    -------
    group : h5py.Group
    existing : bool
        True when a finished group with the same parameters was found (nothing was written).
    """
    if not isinstance(source, h5py.Dataset):
        msg = f"source must be an h5py.Dataset, got {type(source).__name__}"
        raise TypeError(msg)
    if not isinstance(tool, str) or not tool or "-" in tool or "/" in tool:
        msg = f"tool must be a non-empty name without '-' or '/', got {tool!r}"
        raise ValueError(msg)
    canon = _canonical_parameters(parameters)
    parent = source.parent if h5_parent is None else h5_parent
    if not override:
        found = find_results(
            source, tool, parameters or {}, h5_parent=parent, status="complete", name_prefix=name_prefix
        )
        if found:
            return found[-1], True
    prefix = f"{_basename(source)}-{tool}_" if name_prefix is None else name_prefix
    used = [int(n[len(prefix) :]) for n in _numbered(parent, prefix)]
    name = f"{prefix}{max(used) + 1 if used else 0:03d}"
    grp = parent.create_group(name)
    try:
        grp.attrs["tool"] = tool
        same_file = parent.file.id == source.file.id or parent.file.filename == source.file.filename
        if same_file:
            grp.attrs["source_000"] = source.ref
            grp.attrs["num_source_dsets"] = 1
        grp.attrs["source_path"] = source.name
        grp.attrs["source_file"] = str(source.file.filename)
        grp.attrs["timestamp"] = _timestamp()
        grp.attrs["pycro_gpu_version"] = _version()
        grp.attrs["machine_id"] = socket.getfqdn()
        grp.attrs["platform"] = platform.platform()
        for k, v in (parameters or {}).items():
            grp.attrs[k] = _attr_value(v)
        grp.attrs["parameters_json"] = canon
        grp.attrs["status"] = status
    except BaseException:
        del parent[name]
        raise
    return grp, False


@contextmanager
def writing_results(group: h5py.Group) -> Iterator[h5py.Group]:
    """Fill a results group from :func:`create_results_group` inside a ``with`` block.

    The group's ``status`` becomes ``"complete"`` when the block ends; when the block raises (an error,
    an interrupt) the group is deleted, so a failed computation leaves no half-written results behind.
    """
    try:
        yield group
        group.attrs["status"] = "complete"
    except BaseException:
        del group.file[group.name]
        raise


def iter_results_groups(h5_obj: h5py.Group) -> Iterable[h5py.Group]:
    """Every group below ``h5_obj`` that has a ``tool`` attribute (a results group)."""
    found: list[h5py.Group] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and "tool" in obj.attrs:
            found.append(obj)

    h5_obj.visititems(visit)
    return found


def _status_text(group: h5py.Group) -> str:
    """``complete``, or ``interrupted: re-run to resume (status running)`` for an unfinished run."""
    status = _str_attr(group.attrs.get("status", "complete"))
    return status if status == "complete" else f"interrupted: re-run to resume (status {status})"


def _status_codes_text(raw: Any) -> str | None:
    """``0 converged; 1 ...`` from a ``status_codes`` JSON attribute (None where it is not one)."""
    try:
        codes = json.loads(_str_attr(raw))
    except (TypeError, ValueError):
        return None
    if not isinstance(codes, dict):
        return None
    return "; ".join(f"{k} {v}" for k, v in codes.items())


def _describe_group(f: h5py.File, g: h5py.Group) -> list[str]:
    """The lines of one results group in :func:`describe_file`."""
    src = g.attrs.get("source_path")
    if src is None and isinstance(g.attrs.get("source_000"), h5py.Reference):
        try:
            src = f[g.attrs["source_000"]].name
        except Exception:
            src = "?"
    params = results_parameters(g)
    codes = _status_codes_text(params.pop("status_codes")) if "status_codes" in params else None
    ptxt = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "no parameters"
    version = g.attrs.get("pycro_gpu_version", g.attrs.get("pyUSID_version", "?"))
    lines = [
        f"  {g.name}: tool {_str_attr(g.attrs['tool'])}, {_status_text(g)}, source {_str_attr(src or '?')}, "
        f"written {_str_attr(g.attrs.get('timestamp', '?'))} by version {_str_attr(version)}",
        f"      parameters: {ptxt}",
    ]
    if codes:
        lines.append(f"      status codes: {codes}")
    return lines


def describe_file(path: Any) -> str:
    """Text listing of a file's Main datasets and results groups (``pycro-gpu info``).

    The file is opened read-only. Each Main dataset: path, quantity and units, 2-D shape and dtype,
    N-D shape (or "incomplete grid"), then its position and spectroscopic dimensions with sizes and
    units. Each results group: path, tool, status (``complete``, or ``interrupted: re-run to resume``
    for a run that did not finish), source and parameters, and the meaning of its per-fit status codes
    (a ``status_codes`` attribute) where it has one.

    Raises
    ------
    DataError
        The file is missing, not HDF5 or truncated.
    """
    with open_h5(path, "r") as f:
        mains = find_main_datasets(f)
        groups = iter_results_groups(f)
        lines = [f"{f.filename}", f"Main datasets ({len(mains)}):"]
        lines += ["  " + m.describe().replace("\n", "\n  ") for m in mains] or ["  (none)"]
        lines.append(f"Results groups ({len(groups)}):")
        for g in groups:
            lines += _describe_group(f, g)
        if not groups:
            lines.append("  (none)")
    return "\n".join(lines)
