"""Translators on the real instrument files of ../shared/data and on library-written synthetic files.

Expected values come from the reader library itself (igor2, gwyfile, rosettasciio, tifffile,
imageio, xarray) or from the file's own bytes/text parsed independently here, never from our code.
"""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycro_gpu.io.translators import (
    FORMATS,
    CorruptFileError,
    Dim,
    TranslationError,
    UnsupportedFormatError,
    detect_format,
    flatten_metadata,
    from_array,
    from_xarray,
    read,
    translate,
    translate_array,
    translate_xarray,
)
from pycro_gpu.io.usid import USIDataset, find_main_datasets

REAL_FILES = [
    "SingFreqPFM_0003.h5",
    "AFM_Force_Curve.h5",
    "sparse_sampling.h5",
    "IgorIBWReader_ForceCurve.ibw",
    "IgorIBWReader_P0089OP0027.ibw",
    "GwiddionReader_chip.gwy",
    "SingFreqPFM_0003.gwy",
    "NanonisReader_STS_grid_lockin.3ds",
    "NanonisReader_BiasSpectroscopy.dat",
    "DMReader_SpectrumImage_SI-EELS.dm3",
    "DMReader_EELS_STO.dm3",
]


def _mains(path: Path) -> dict[str, dict]:
    """Main datasets of a written file, read back through the USID reader, as plain values."""
    out = {}
    with h5py.File(path, "r") as h5:
        for m in find_main_datasets(h5):
            out[m.parent.attrs.get("channel_name", m.name)] = {
                "data": m[()],
                "nd": m.get_n_dim_form() if m.n_dim_shape is not None else None,
                "labels": m.n_dim_labels,
                "units": m.units,
                "quantity": m.quantity,
                "pos": {d.name: (d.units, d.values) for d in m.pos_dims},
                "spec": {d.name: (d.units, d.values) for d in m.spec_dims},
                "group_attrs": dict(m.parent.attrs),
            }
        out["__meas__"] = dict(h5["Measurement_000"].attrs) if "Measurement_000" in h5 else {}
        out["__root__"] = dict(h5.attrs)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------
# Igor IBW (expected values from igor2 and from the file's label bytes)
# ------------------------------------------------------------------------------------------------


def test_igor_force_curve(test_data, tmp_path):
    from igor2 import binarywave

    src = test_data / "IgorIBWReader_ForceCurve.ibw"
    wave = binarywave.load(str(src))["wave"]
    w = wave["wData"]
    hdr = wave["wave_header"]
    out = _mains(translate(src, tmp_path / "fc.h5"))
    assert w.shape == (1261, 3)
    # igor2 appends bytes after each label's NUL; the labels start with the true names.
    names = ["Raw", "Defl", "ZSnsr"]
    assert [lab.decode()[: len(n)] for lab, n in zip(wave["labels"][1][1:], names, strict=True)] == names
    for k, name in enumerate(names):
        ch = out[name]
        assert ch["data"].shape == (1, 1261)
        np.testing.assert_array_equal(ch["data"][0], w[:, k])
        assert ch["units"] == hdr["dataUnits"][0].decode() == "m"
    units, t = out["Raw"]["spec"]["Time"]
    assert units == hdr["dimUnits"][0][0].decode() == "s"
    np.testing.assert_allclose(t, hdr["sfA"][0] * np.arange(1261), rtol=1e-6)
    note = dict(line.split(":", 1) for line in wave["note"].decode("latin-1").split("\r") if ":" in line)
    assert out["__meas__"]["note-MostPosZVoltage"] == note["MostPosZVoltage"].strip() == "150"


def test_igor_image_channels(test_data, tmp_path):
    from igor2 import binarywave

    src = test_data / "IgorIBWReader_P0089OP0027.ibw"
    wave = binarywave.load(str(src))["wave"]
    w, hdr = wave["wData"], wave["wave_header"]
    raw = read(src)
    assert [c.name for c in raw.channels] == [
        "HeightRetrace",
        "AmplitudeRetrace",
        "DeflectionRetrace",
        "PhaseRetrace",
        "UserIn0Retrace",
    ]
    out = _mains(translate(src, tmp_path / "img.h5"))
    for k, c in enumerate(raw.channels):
        ch = out[c.name]
        # USID's N-D form lists X (Igor dimension 0, fastest) first: it equals igor2's layer directly.
        assert ch["labels"] == ["X", "Y", "arb"]
        np.testing.assert_array_equal(ch["nd"][:, :, 0], w[:, :, k])
        # one data unit (the height's) in the wave; phase in degrees as in the scan's Gwyddion export
        assert ch["units"] == {"PhaseRetrace": "deg", "UserIn0Retrace": "V"}.get(c.name, "m")
    units, x = out["HeightRetrace"]["pos"]["X"]
    assert units == "m"
    np.testing.assert_allclose(x, hdr["sfA"][0] * np.arange(256), rtol=1e-6)
    assert float(out["__meas__"]["note-ScanSize"]) == pytest.approx(2e-6)
    assert out["__meas__"]["wave_name"] == hdr["bname"].decode()


# ------------------------------------------------------------------------------------------------
# Gwyddion (expected from gwyfile)
# ------------------------------------------------------------------------------------------------


def test_gwyddion_gwy(test_data, tmp_path):
    import gwyfile

    src = test_data / "SingFreqPFM_0003.gwy"
    obj = gwyfile.load(str(src))
    out = _mains(translate(src, tmp_path / "g.h5"))
    titles = [obj[f"/{i}/data/title"] for i in range(4)]
    assert titles == ["HeightRetrace", "AmplitudeRetrace", "DeflectionRetrace", "PhaseRetrace"]
    for i, title in enumerate(titles):
        field = obj[f"/{i}/data"]
        ch = out[title]
        assert ch["data"].shape == (128 * 128, 1)
        np.testing.assert_array_equal(ch["nd"][:, :, 0], field.data.T)  # USID N-D is (X, Y)
        assert ch["units"] == field["si_unit_z"]["unitstr"]
        units, x = ch["pos"]["X"]
        assert units == field["si_unit_xy"]["unitstr"] == "m"
        np.testing.assert_allclose(x[1] - x[0], field["xreal"] / field["xres"], rtol=1e-6)
        assert ch["group_attrs"]["ScanRate"] == obj[f"/{i}/meta"]["ScanRate"]
    assert out["PhaseRetrace"]["units"] == "deg"


def test_gwyddion_1x_is_unsupported(test_data, tmp_path):
    src = test_data / "GwiddionReader_chip.gwy"
    assert src.read_bytes()[:4] == b"GWYO"
    with pytest.raises(UnsupportedFormatError, match=r"GwiddionReader_chip\.gwy: Gwyddion 1\.x"):
        translate(src, tmp_path / "chip.h5")
    assert list(tmp_path.iterdir()) == []


def _write_gsf(path: Path, data: np.ndarray, **fields) -> None:
    """A GSF file as the Gwyddion user guide specifies it (magic, header, NUL padding, LE float32)."""
    yres, xres = data.shape
    head = "Gwyddion Simple Field 1.0\n" + f"XRes = {xres}\nYRes = {yres}\n"
    head += "".join(f"{k} = {v}\n" for k, v in fields.items())
    raw = head.encode()
    raw += b"\x00" * (4 - len(raw) % 4)
    path.write_bytes(raw + data.astype("<f4").tobytes())


def test_gsf(tmp_path, rng):
    data = rng.standard_normal((6, 5)).astype(np.float32)
    src = tmp_path / "field.gsf"
    _write_gsf(src, data, XReal=5e-6, YReal=6e-6, XYUnits="m", ZUnits="V", Title="Potential", Tip="Pt")
    out = _mains(translate(src, tmp_path / "field.h5"))
    ch = out["Potential"]
    np.testing.assert_array_equal(ch["nd"][:, :, 0], data.T)
    assert ch["units"] == "V"
    np.testing.assert_allclose(ch["pos"]["Y"][1], np.arange(6) * 1e-6, rtol=1e-6)
    assert out["__meas__"]["gsf_header-Tip"] == "Pt"
    bad = tmp_path / "bad.gsf"
    bad.write_bytes(src.read_bytes()[:-3])
    with pytest.raises(CorruptFileError, match=r"bad\.gsf: GSF data block holds"):
        read(bad)


# ------------------------------------------------------------------------------------------------
# Nanonis (expected values parsed here from the file's own header and bytes / text)
# ------------------------------------------------------------------------------------------------


def test_nanonis_grid(test_data, tmp_path):
    src = test_data / "NanonisReader_STS_grid_lockin.3ds"
    blob = src.read_bytes()
    head, _, body = blob.partition(b":HEADER_END:\r\n")
    hdr = dict(line.split("=", 1) for line in head.decode().splitlines() if "=" in line)
    nx, ny = (int(v) for v in hdr["Grid dim"].strip('"').split(" x "))
    points, n_par = int(hdr["Points"]), int(hdr["# Parameters (4 byte)"])
    chans = hdr["Channels"].strip('"').split(";")
    assert (nx, ny, points, n_par, len(chans)) == (30, 30, 200, 10, 4)
    values = np.frombuffer(body, ">f4").reshape(ny, nx, n_par + 4 * points)
    out = _mains(translate(src, tmp_path / "grid.h5"))
    cur = out["Current"]
    assert cur["units"] == "A"
    assert cur["data"].shape == (900, 200)
    assert cur["labels"] == ["X", "Y", "Bias"]
    # N-D is (X, Y, Bias); the file is (Y, X, [params, channel 0 points, ...]).
    np.testing.assert_array_equal(cur["nd"][4, 7], values[7, 4, n_par : n_par + points])
    lock = out["LockinY"]["nd"]
    np.testing.assert_array_equal(lock[29, 0], values[0, 29, n_par + 2 * points : n_par + 3 * points])
    units, bias = cur["spec"]["Bias"]
    assert units == "V"
    np.testing.assert_allclose(
        bias, np.linspace(values[0, 0, 0], values[0, 0, 1], points), rtol=1e-6, atol=1e-8
    )
    # Grid step: the distance between neighbouring recorded tip positions (X, Y are parameters 2, 3).
    tip = values[0, :, 2:4].astype(np.float64)
    step = np.hypot(*(tip[-1] - tip[0])) / (nx - 1)
    x = cur["pos"]["X"][1]
    np.testing.assert_allclose(np.diff(x), step, rtol=1e-4)
    z = out["Parameter Z"]
    assert z["units"] == "m"
    np.testing.assert_array_equal(z["nd"][:, :, 0], values[:, :, 4].T)
    assert out["__meas__"]["header-Date"] == hdr["Date"].strip('"') == "04.06.2016 20:13:23"


def test_nanonis_point_spectrum(test_data, tmp_path):
    src = test_data / "NanonisReader_BiasSpectroscopy.dat"
    text = src.read_text(encoding="latin-1")
    head, _, body = text.partition("[DATA]")
    columns = body.strip().splitlines()[0].split("\t")
    table = np.loadtxt(body.strip().splitlines()[1:], delimiter="\t")
    out = _mains(translate(src, tmp_path / "spec.h5"))
    assert len([k for k in out if not k.startswith("__")]) == len(columns) - 1 == 24
    cur = out["Current"]
    assert columns[1] == "Current (A)" and cur["units"] == "A"
    assert cur["data"].shape == (1, table.shape[0])
    np.testing.assert_allclose(cur["data"][0], table[:, 1])
    units, bias = cur["spec"]["Bias calc"]
    assert units == "V"
    np.testing.assert_allclose(bias, table[:, 0], rtol=1e-6)
    assert out["Current [bwd] [filt]"]["units"] == "A"
    np.testing.assert_allclose(out["Z [bwd]"]["data"][0], table[:, columns.index("Z [bwd] (m)")])
    x = float(re.search(r"^X \(m\)\t([^\t]+)", head, re.M).group(1))
    np.testing.assert_allclose(cur["pos"]["X"][1], [x], rtol=1e-6)
    assert out["__meas__"]["header-Date"] == "07.07.2020 15:01:50"


def _write_sxm(path: Path, images: dict[str, np.ndarray], *, scan_dir="up", both=True) -> None:
    """A Nanonis .sxm as the Nanonis manual describes it: text header, 0x1A04, big-endian float32."""
    ny, nx = next(iter(images.values())).shape
    lines = [
        ":NANONIS_VERSION:",
        "2",
        ":SCANIT_TYPE:",
        "              FLOAT            MSBFIRST",
        ":SCAN_PIXELS:",
        f"       {nx}       {ny}",
        ":SCAN_RANGE:",
        "           1.000000E-8           2.000000E-8",
        ":SCAN_OFFSET:",
        "             0.000000E+0         0.000000E+0",
        ":SCAN_DIR:",
        scan_dir,
        ":BIAS:",
        "1.000E-1",
        ":DATA_INFO:",
        "\tChannel\tName\tUnit\tDirection\tCalibration\tOffset",
    ]
    for i, name in enumerate(images):
        lines.append(
            f"\t{14 + i}\t{name}\t{'m' if name == 'Z' else 'A'}\t{'both' if both else 'forward'}\t1\t0"
        )
    lines += ["", ":SCANIT_END:", "", "", ""]
    blob = "\n".join(lines).encode() + b"\x1a\x04"
    for img in images.values():
        blob += img.astype(">f4").tobytes()
        if both:
            blob += img[:, ::-1].astype(">f4").tobytes()  # backward: acquired right to left
    path.write_bytes(blob)


@pytest.mark.parametrize("scan_dir", ["up", "down"])
def test_nanonis_sxm(tmp_path, rng, scan_dir):
    z = rng.standard_normal((3, 4)).astype(np.float32)
    cur = rng.standard_normal((3, 4)).astype(np.float32)
    src = tmp_path / "scan.sxm"
    _write_sxm(src, {"Z": z, "Current": cur}, scan_dir=scan_dir)
    out = _mains(translate(src, tmp_path / "scan.h5"))
    assert sorted(k for k in out if not k.startswith("__")) == [
        "Current backward",
        "Current forward",
        "Z backward",
        "Z forward",
    ]
    rows = z if scan_dir == "up" else z[::-1]
    for name in ("Z forward", "Z backward"):
        np.testing.assert_array_equal(out[name]["nd"][:, :, 0], rows.T)
        assert out[name]["units"] == "m"
    assert out["Current forward"]["units"] == "A"
    units, y = out["Z forward"]["pos"]["Y"]
    assert units == "m"
    np.testing.assert_allclose(y, -1e-8 + 2e-8 * (np.arange(3) + 0.5) / 3, rtol=1e-5)
    assert out["__meas__"]["header-BIAS"] == "1.000E-1"


# ------------------------------------------------------------------------------------------------
# Digital Micrograph (expected from rosettasciio)
# ------------------------------------------------------------------------------------------------


def test_dm_spectrum_image(test_data, tmp_path):
    from rsciio.digitalmicrograph import file_reader

    src = test_data / "DMReader_SpectrumImage_SI-EELS.dm3"
    sig = file_reader(str(src))[0]
    axes = {a["name"]: a for a in sig["axes"]}
    assert sig["data"].shape == (1024, 49, 6)
    out = _mains(translate(src, tmp_path / "si.h5"))
    (ch,) = (v for k, v in out.items() if not k.startswith("__"))
    assert ch["data"].shape == (6 * 49, 1024)
    assert ch["labels"] == ["x", "y", "Energy loss"]
    # rosettasciio's array is (Energy, y, x); USID N-D is (x, y, Energy).
    np.testing.assert_array_equal(ch["nd"], np.transpose(sig["data"], (2, 1, 0)))
    units, energy = ch["spec"]["Energy loss"]
    e = axes["Energy loss"]
    assert units == e["units"] == "eV"
    np.testing.assert_allclose(energy, e["offset"] + e["scale"] * np.arange(1024), rtol=1e-6)
    omd = sig["original_metadata"]["ImageList"]["TagGroup0"]
    assert ch["units"] == omd["ImageData"]["Calibrations"]["Brightness"]["Units"] == "Counts"
    key = "original_metadata-ImageList-TagGroup0-ImageTags-EELS Spectrometer-Instrument name"
    assert out["__meas__"][key] == omd["ImageTags"]["EELS Spectrometer"]["Instrument name"]


def test_dm_single_spectrum(test_data, tmp_path):
    from rsciio.digitalmicrograph import file_reader

    src = test_data / "DMReader_EELS_STO.dm3"
    sig = file_reader(str(src))[0]
    out = _mains(translate(src, tmp_path / "sto.h5"))
    (ch,) = (v for k, v in out.items() if not k.startswith("__"))
    assert ch["data"].shape == (1, 2048)
    np.testing.assert_array_equal(ch["data"][0], sig["data"])
    units, energy = ch["spec"]["Energy loss"]
    assert units == "eV"
    ax = sig["axes"][0]
    np.testing.assert_allclose(energy[[0, -1]], ax["offset"] + ax["scale"] * np.array([0, 2047]), rtol=1e-6)
    assert out["__root__"]["format"] == "digital-micrograph"
    assert out["__meas__"]["original_metadata-ImageList-TagGroup0-ImageData-Dimensions-Data0"] == 2048


# ------------------------------------------------------------------------------------------------
# USID passthrough (expected from h5py: datasets carrying the USID attributes)
# ------------------------------------------------------------------------------------------------


USID_KEYS = {"quantity", "units", "Position_Indices", "Position_Values", "Spectroscopic_Indices",
             "Spectroscopic_Values"}  # fmt: skip


@pytest.mark.parametrize("name", ["SingFreqPFM_0003.h5", "AFM_Force_Curve.h5", "sparse_sampling.h5"])
def test_usid_passthrough(test_data, tmp_path, name):
    src = test_data / name
    with h5py.File(src, "r") as h5:
        found = []
        h5.visititems(
            lambda n, o: (
                found.append(n) if isinstance(o, h5py.Dataset) and set(o.attrs) >= USID_KEYS else None
            )
        )
    assert len(found) >= (4 if name.startswith("SingFreq") else 1)
    assert detect_format(src).name == "usid"
    assert translate(src) == src  # no output asked: checked only
    out = translate(src, tmp_path / "copy.h5")
    assert out.read_bytes() == src.read_bytes()
    with h5py.File(out, "r") as h5:
        assert sorted(m.name.lstrip("/") for m in find_main_datasets(h5)) == sorted(found)


def test_hdf5_without_usid_is_unsupported(tmp_path):
    src = tmp_path / "plain.h5"
    with h5py.File(src, "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(UnsupportedFormatError, match=r"plain\.h5: the HDF5 file holds no USID Main dataset"):
        translate(src, tmp_path / "out.h5")


# ------------------------------------------------------------------------------------------------
# Images (files written by tifffile / imageio: the arrays written are the truth)
# ------------------------------------------------------------------------------------------------


def test_tiff_stack(tmp_path, rng):
    import tifffile

    stack = rng.integers(0, 60000, size=(3, 4, 5), dtype=np.uint16)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, stack, photometric="minisblack", description="pycro test stack", metadata=None)
    out = _mains(translate(src, tmp_path / "stack.h5"))
    ch = out["Intensity"]
    assert ch["labels"] == ["X", "Y", "Frame"]
    assert ch["data"].dtype == np.uint16
    np.testing.assert_array_equal(ch["nd"], np.transpose(stack, (2, 1, 0)))
    assert ch["pos"]["X"][0] == "pixel"
    assert "pycro test stack" in out["__meas__"]["tiff_tags-ImageDescription"]


def test_png_rgb_and_gray(tmp_path, rng):
    import imageio.v3 as iio

    rgb = rng.integers(0, 255, size=(4, 6, 3), dtype=np.uint8)
    gray = rng.integers(0, 255, size=(5, 2), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    iio.imwrite(tmp_path / "gray.png", gray)
    ch = _mains(translate(tmp_path / "rgb.png", tmp_path / "rgb.h5"))["Intensity"]
    assert ch["labels"] == ["X", "Y", "Color"]
    np.testing.assert_array_equal(ch["nd"], np.transpose(rgb, (1, 0, 2)))
    ch = _mains(translate(tmp_path / "gray.png", tmp_path / "gray.h5"))["Intensity"]
    np.testing.assert_array_equal(ch["nd"][:, :, 0], gray.T)


# ------------------------------------------------------------------------------------------------
# NumPy and xarray
# ------------------------------------------------------------------------------------------------


def test_numpy_with_dimensions(tmp_path, rng):
    data = rng.standard_normal((2, 3, 4))
    bias = np.linspace(-1, 1, 4)
    out = translate_array(
        data, tmp_path / "a.h5", [("Y", "m", [0.0, 1e-6]), ("X", "m")], [("Bias", "V", bias)],
        quantity="Current", units="A", metadata={"sample": {"name": "STO", "T": 4.2}},
    )  # fmt: skip
    ch = _mains(out)["Current"]
    assert ch["labels"] == ["X", "Y", "Bias"]
    np.testing.assert_array_equal(ch["nd"], np.transpose(data, (1, 0, 2)))
    np.testing.assert_allclose(ch["spec"]["Bias"][1], bias, rtol=1e-6)
    assert ch["pos"]["Y"][0] == "m"
    meas = _mains(out)["__meas__"]
    assert meas["sample-name"] == "STO" and meas["sample-T"] == 4.2
    with pytest.raises(TranslationError, match="dimension 'X' has 5 values but the data axis has 3"):
        from_array(data, [("Y", "m"), ("X", "m", np.arange(5))], [("Bias", "V")])


def test_numpy_files(tmp_path, rng):
    a = rng.standard_normal((3, 5))
    np.save(tmp_path / "a.npy", a)
    ch = _mains(translate(tmp_path / "a.npy"))["data"]
    np.testing.assert_array_equal(ch["data"], a)  # 2-D = (positions, spectroscopic)
    np.savez(tmp_path / "b.npz", data=a, other=2 * a)
    out = _mains(translate(tmp_path / "b.npz"))
    np.testing.assert_array_equal(out["other"]["data"], 2 * a)


def test_xarray_round_trip(tmp_path, rng):
    xr = pytest.importorskip("xarray")
    da = xr.DataArray(
        rng.standard_normal((3, 2, 4)),
        dims=("y", "x", "Frequency"),
        coords={
            "y": ("y", [0.0, 1.0, 2.0], {"units": "um"}),
            "Frequency": ("Frequency", np.linspace(1e5, 2e5, 4), {"units": "Hz"}),
        },
        name="Amplitude",
        attrs={"units": "V", "operator": "pycro"},
    )
    out = translate_xarray(da, tmp_path / "x.h5")
    with h5py.File(out, "r") as h5:
        (m,) = find_main_datasets(h5)
        back = USIDataset(m).to_xarray()
    np.testing.assert_array_equal(back.transpose("y", "x", "Frequency").values, da.values)
    np.testing.assert_allclose(back["Frequency"].values, da["Frequency"].values, rtol=1e-6)
    assert back.attrs["units"] == "V" and back["y"].attrs["units"] == "um"
    assert _mains(out)["Amplitude"]["group_attrs"]["operator"] == "pycro"
    # netCDF (netCDF3 via scipy) goes through the same path.
    ds = da.to_dataset()
    ds.to_netcdf(tmp_path / "x.nc", engine="scipy")
    ch = _mains(translate(tmp_path / "x.nc", tmp_path / "nc.h5"))["Amplitude"]
    np.testing.assert_array_equal(ch["nd"], np.transpose(da.values, (1, 0, 2)))
    raw = from_xarray(da, pos_dims=["y"])
    assert [d.name for d in raw.channels[0].spec_dims] == ["x", "Frequency"]


# ------------------------------------------------------------------------------------------------
# Registry, metadata, provenance
# ------------------------------------------------------------------------------------------------


def test_detect_by_content_and_extension(test_data, tmp_path):
    expected = {
        "IgorIBWReader_ForceCurve.ibw": "igor-ibw",
        "SingFreqPFM_0003.gwy": "gwyddion-gwy",
        "GwiddionReader_chip.gwy": "gwyddion-gwy",
        "NanonisReader_STS_grid_lockin.3ds": "nanonis-3ds",
        "NanonisReader_BiasSpectroscopy.dat": "nanonis-dat",
        "DMReader_EELS_STO.dm3": "digital-micrograph",
        "SingFreqPFM_0003.h5": "usid",
    }
    for name, fmt in expected.items():
        assert detect_format(test_data / name).name == fmt
    # Content wins over a wrong extension when it is unambiguous: a .gwy named .dm3 still translates.
    renamed = tmp_path / "really_gwy.dm3"
    renamed.write_bytes((test_data / "SingFreqPFM_0003.gwy").read_bytes())
    out = _mains(translate(renamed, tmp_path / "r.h5"))
    assert out["__root__"]["format"] == "gwyddion-gwy" and "HeightRetrace" in out


def test_flatten_metadata():
    flat = flatten_metadata(
        {"a": {"b": 1, "c": [1.0, 2.0], "d": ["x", "y"]}, "e": None, "f": [1, "x"], "g": b"by\x00"}
    )
    assert flat["a-b"] == 1
    np.testing.assert_array_equal(flat["a-c"], [1.0, 2.0])
    assert flat["a-d"] == ["x", "y"]
    assert flat["e"] == "None" and flat["f"] == "[1, 'x']" and flat["g"] == "by"


def test_raw_files_never_modified(test_data, tmp_path):
    before = {n: _sha(test_data / n) for n in REAL_FILES}
    for i, name in enumerate(REAL_FILES):
        try:
            translate(test_data / name, tmp_path / f"o{i}.h5")
        except UnsupportedFormatError:
            assert name == "GwiddionReader_chip.gwy"
    assert {n: _sha(test_data / n) for n in REAL_FILES} == before
    with h5py.File(tmp_path / "o3.h5", "r") as h5:
        assert h5.attrs["source_sha256"] == before["IgorIBWReader_ForceCurve.ibw"]


def test_every_real_file_is_covered(test_data):
    on_disk = sorted(p.name for p in test_data.iterdir() if p.suffix != ".md")
    assert on_disk == sorted(REAL_FILES)
    exts = {e for f in FORMATS.values() for e in f.extensions}
    assert {Path(n).suffix for n in REAL_FILES} <= exts


def test_channel_shape_is_checked():
    from pycro_gpu.errors import DataError
    from pycro_gpu.io.translators import Channel

    with pytest.raises(DataError, match="data shape \\(2, 3\\) does not match the dimensions"):
        Channel(
            "c", np.zeros((2, 3)), [Dim("X", "m", np.arange(2))], [Dim("E", "eV", np.arange(4))], "q", "u"
        )


def test_output_exists_and_overwrite(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    translate(tmp_path / "a.npy")
    with pytest.raises(FileExistsError, match=r"a\.h5: output file exists"):
        translate(tmp_path / "a.npy")
    np.save(tmp_path / "a.npy", np.full((2, 2), 7.0))
    translate(tmp_path / "a.npy", overwrite=True)
    assert _mains(tmp_path / "a.h5")["data"]["data"][0, 0] == 7.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "a.npy"]


def test_struct_layout_of_gsf_padding(tmp_path):
    # A header whose length is already a multiple of 4 still needs 4 NULs (the spec's "one to four").
    data = np.arange(4, dtype=np.float32).reshape(2, 2)
    head = b"Gwyddion Simple Field 1.0\nXRes = 2\nYRes = 2\n"
    pad = 4 - len(head) % 4
    (tmp_path / "p.gsf").write_bytes(head + b"\x00" * pad + struct.pack("<4f", *data.ravel()))
    raw = read(tmp_path / "p.gsf")
    np.testing.assert_array_equal(raw.channels[0].data[..., 0], data)


def test_metadata_h5py_cannot_store_directly(tmp_path):
    big = np.arange(20000.0)  # > 64 KiB: too large for an HDF5 attribute
    meta = {
        "big": big,
        "nul": ["a", "b\x00c"],
        "cplx": [1 + 2j],
        "deep": {"x": {"y": {"z": "ok"}}},
        "n": None,
    }
    out = translate_array(np.zeros((2, 3)), tmp_path / "m.h5", [("X", "m")], [("E", "eV")], metadata=meta)
    with h5py.File(out, "r") as h5:
        attrs = dict(h5["Measurement_000"].attrs)
    assert attrs["big"] == "<array shape=(20000,) dtype=float64>"
    assert list(attrs["nul"]) == ["a", "b\\x00c"]
    assert attrs["cplx"] == "[(1+2j)]"
    assert attrs["deep-x-y-z"] == "ok" and attrs["n"] == "None"
