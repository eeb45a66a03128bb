"""``pycro-gpu export FILE --to FORMAT``: a Main dataset (raw data or a results map) for a paper or a tool.

* ``hspy`` / ``zspy``: HyperSpy files through rosettasciio (axes, units, metadata);
* ``tiff``: float32 images, one page per spectroscopic step (a map is one page), rows = y;
* ``csv``: one row per position: its coordinates, then one column per spectroscopic step;
* ``png``: a figure of the map (or of one spectroscopic step, ``--step``) with axes, units and a
  colorbar.

Compound results (fits) need ``--field`` (e.g. ``--field Amplitude``). The output is written under a
temporary name and renamed when complete; an existing output needs ``--override``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

HELP = "export a Main dataset or a results map to HyperSpy (.hspy/.zspy), TIFF, CSV or PNG"
FORMATS = ("hspy", "zspy", "tiff", "csv", "png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="USID HDF5 file (opened read-only)")
    p.add_argument("--dataset", default=None, metavar="PATH", help="Main dataset (default: first Raw_Data)")
    p.add_argument("--to", required=True, choices=FORMATS, help="output format")
    p.add_argument("--field", default=None, help="field of compound results (e.g. Amplitude)")
    p.add_argument("--step", type=int, default=0, help="png: spectroscopic step to draw (default 0)")
    p.add_argument("--out", default=None, metavar="PATH", help="output (default: next to FILE)")
    p.add_argument("--override", action="store_true", help="replace an existing output")


def _default_out(args: argparse.Namespace, main: Any) -> Path:
    stem = Path(args.file).with_suffix("").name
    name = main.name.strip("/").replace("/", "_")
    field = f"_{args.field}" if args.field else ""
    ext = "tif" if args.to == "tiff" else args.to
    return Path(args.file).with_name(f"{stem}_{name}{field}.{ext}".replace(" ", "_"))


def _array(main: Any, field: str | None) -> Any:
    """The DataArray to export (one field of compound data), dims slowest first."""
    from ..errors import DataError
    from ..io.usid import record_fields, select_field

    obj = main.to_xarray()
    if not hasattr(obj, "data_vars"):
        if field is not None:
            msg = f"{main.name} is not compound data; --field applies to fit results"
            raise DataError(msg)
        return obj
    da = select_field(obj, field)
    if da is None:
        msg = f"{main.name} holds records with fields {sorted(record_fields(obj))}; choose one with --field"
        raise DataError(msg)
    return da


def _split(da: Any) -> tuple[Any, list[str], list[str]]:
    """(values as (positions..., n_spec), position dims, spectroscopic dims) of a DataArray."""
    import numpy as np

    pos = [str(d) for d in np.atleast_1d(da.attrs.get("usid_pos_dims", [])).tolist()]
    spec = [str(d) for d in da.dims if str(d) not in pos]
    values = da.transpose(*pos, *spec).values
    n_spec = int(np.prod([da.sizes[d] for d in spec])) if spec else 1
    return values.reshape(*[da.sizes[d] for d in pos], n_spec), pos, spec


def _write_tiff(da: Any, out: Path) -> None:
    import numpy as np
    import tifffile

    values, pos, _ = _split(da)
    if len(pos) != 2:
        from ..errors import DataError

        msg = f"tiff needs a 2-D scan (two position dimensions), got {pos}"
        raise DataError(msg)
    pages = np.moveaxis(values, -1, 0).astype(np.float32)  # (n_spec, y, x)
    # one grey-scale page per spectroscopic step (never RGB, whatever the number of steps)
    tifffile.imwrite(out, pages[0] if pages.shape[0] == 1 else pages, photometric="minisblack")


def _write_csv(da: Any, out: Path) -> None:
    import numpy as np

    values, pos, _ = _split(da)
    grids = np.meshgrid(
        *[np.asarray(da[d].values if d in da.coords else np.arange(da.sizes[d])) for d in pos], indexing="ij"
    )
    coords = np.stack([g.reshape(-1) for g in grids], axis=1)
    flat = values.reshape(coords.shape[0], -1)
    steps = (
        [f"{da.attrs.get('quantity', 'value')} {i}" for i in range(flat.shape[1])]
        if flat.shape[1] > 1
        else [str(da.attrs.get("quantity", "value"))]
    )
    units = str(da.attrs.get("units", ""))
    header = ",".join(
        [f"{d} [{da[d].attrs.get('units', '')}]" if d in da.coords else d for d in pos]
        + [f"{s} [{units}]" for s in steps]
    )
    np.savetxt(
        out, np.concatenate([coords, np.real(flat)], axis=1), delimiter=",", header=header, comments=""
    )


def _write_png(da: Any, out: Path, step: int) -> None:
    import numpy as np
    from matplotlib.figure import Figure

    from ..errors import DataError

    values, pos, spec = _split(da)
    if len(pos) != 2:
        msg = f"png draws a map of a 2-D scan (two position dimensions), got {pos}"
        raise DataError(msg)
    if not 0 <= step < values.shape[-1]:
        msg = f"--step must be between 0 and {values.shape[-1] - 1}, got {step}"
        raise DataError(msg)
    image = np.real(values[..., step])  # (y, x): rows are the slow dimension
    y, x = pos
    xs = np.asarray(da[x].values) if x in da.coords else np.arange(image.shape[1])
    ys = np.asarray(da[y].values) if y in da.coords else np.arange(image.shape[0])
    same_units = x in da.coords and y in da.coords and da[x].attrs.get("units") == da[y].attrs.get("units")
    aspect = "equal" if same_units else "auto"  # a scan in one length unit keeps its proportions
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(
        image, origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), aspect=aspect, cmap="viridis"
    )
    ax.set_xlabel(f"{x} ({da[x].attrs.get('units', '')})" if x in da.coords else x)
    ax.set_ylabel(f"{y} ({da[y].attrs.get('units', '')})" if y in da.coords else y)
    units = da.attrs.get("units", "")
    fig.colorbar(
        im,
        ax=ax,
        label=f"{da.attrs.get('quantity', '')} ({units})" if units else str(da.attrs.get("quantity", "")),
    )
    if spec and values.shape[-1] > 1:
        ax.set_title(f"step {step} of {', '.join(spec)}")
    fig.savefig(out, format="png", dpi=120)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..io.hdf5 import open_h5
    from ._options import find_main

    with open_h5(args.file, "r") as f:
        main = find_main(f, args.dataset)
        out = Path(args.out) if args.out else _default_out(args, main)
        if out.exists() and not args.override:
            msg = f"{out} exists; pass --override to replace it"
            raise DataError(msg)
        if args.to in ("hspy", "zspy"):
            from ..io.translators import export_hyperspy

            if out.suffix.lower() != f".{args.to}":
                msg = f"--to {args.to} writes a .{args.to} file, got {out.name}"
                raise DataError(msg)
            export_hyperspy(main, out, field=args.field, overwrite=args.override)
        else:
            da = _array(main, args.field)
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            try:
                {"tiff": _write_tiff, "csv": _write_csv, "png": lambda d, o: _write_png(d, o, args.step)}[
                    args.to
                ](da, tmp)
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
    if not args.quiet:
        print(f"wrote {out}")
    return 0
