"""Bad input: truncated, empty, mislabelled and random files give one clear error and no output;
missing optional readers name the extra to install; the CLI prints one line and exits with 1."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pycro_gpu.cli import main
from pycro_gpu.errors import DataError, MissingDependencyError
from pycro_gpu.io.translators import (
    FORMATS,
    CorruptFileError,
    TranslationError,
    UnsupportedFormatError,
    detect_format,
    translate,
)

# Offsets (fractions of the size) inside each file's header or data: the read must fail there.
TRUNCATE = {
    "IgorIBWReader_ForceCurve.ibw": (0.002, 0.05, 0.5, 0.9),
    "IgorIBWReader_P0089OP0027.ibw": (0.0001, 0.3, 0.8),
    "SingFreqPFM_0003.gwy": (0.001, 0.3, 0.999),
    "NanonisReader_STS_grid_lockin.3ds": (0.0001, 0.05, 0.5, 0.9999),
    "NanonisReader_BiasSpectroscopy.dat": (0.001, 0.01, 0.5),
    "DMReader_SpectrumImage_SI-EELS.dm3": (0.01, 0.5, 0.9),
    "DMReader_EELS_STO.dm3": (0.05, 0.5),
    "SingFreqPFM_0003.h5": (0.01, 0.5, 0.999),
    "AFM_Force_Curve.h5": (0.3,),
}


def _only(folder: Path, *names: str) -> None:
    """The folder holds exactly these files: no output, no temporary file left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.mark.parametrize("name", sorted(TRUNCATE))
def test_truncated_real_files(test_data, tmp_path, name):
    blob = (test_data / name).read_bytes()
    for frac in TRUNCATE[name]:
        src = tmp_path / name
        src.write_bytes(blob[: max(1, int(len(blob) * frac))])
        with pytest.raises(CorruptFileError) as info:
            translate(src, tmp_path / "out.h5")
        msg = str(info.value)
        assert msg.startswith(f"{src}: ") and "\n" not in msg, msg
        _only(tmp_path, name)


def test_nanonis_dat_cut_mid_row(test_data, tmp_path):
    text = (test_data / "NanonisReader_BiasSpectroscopy.dat").read_bytes()
    cut = text.rindex(b"\t", 0, len(text) // 2)  # inside a data row
    src = tmp_path / "s.dat"
    src.write_bytes(text[:cut])
    with pytest.raises(CorruptFileError, match=r"data row \d+ has \d+ values for 25 columns"):
        translate(src)
    _only(tmp_path, "s.dat")


@pytest.mark.parametrize("ext", sorted({e for f in FORMATS.values() for e in f.extensions} | {".xyz"}))
def test_zero_bytes(tmp_path, ext):
    src = tmp_path / f"empty{ext}"
    src.write_bytes(b"")
    with pytest.raises(CorruptFileError, match=r"the file is empty \(0 bytes\)"):
        translate(src, tmp_path / "out.h5")
    _only(tmp_path, src.name)


RANDOM_EXTS = [".ibw", ".gwy", ".gsf", ".3ds", ".dat", ".sxm", ".dm3", ".dm4", ".tif", ".png", ".npy", ".npz",
               ".nc", ".h5"]  # fmt: skip


@pytest.mark.parametrize("ext", RANDOM_EXTS)
def test_random_bytes_with_each_extension(tmp_path, ext):
    rng = np.random.default_rng(sum(map(ord, ext)))
    src = tmp_path / f"noise{ext}"
    src.write_bytes(rng.integers(0, 256, size=3000, dtype=np.uint8).tobytes())
    with pytest.raises(TranslationError) as info:
        translate(src, tmp_path / "out.h5")
    assert str(info.value).startswith(f"{src}: ")
    _only(tmp_path, src.name)


def test_random_bytes_unknown_extension(tmp_path):
    src = tmp_path / "noise.bin"
    src.write_bytes(np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8).tobytes())
    with pytest.raises(
        UnsupportedFormatError, match=r"noise\.bin: unrecognised file format \(extension '\.bin'"
    ):
        translate(src)
    _only(tmp_path, "noise.bin")


def test_wrong_extension(test_data, tmp_path):
    # Text (a Nanonis spectrum) named as binary formats: the extension's reader rejects it clearly.
    text = (test_data / "NanonisReader_BiasSpectroscopy.dat").read_bytes()
    for ext, fmt in ((".ibw", "igor-ibw"), (".dm3", "digital-micrograph"), (".gwy", "gwyddion-gwy")):
        src = tmp_path / f"spectrum{ext}"
        src.write_bytes(text)
        assert detect_format(src).name == fmt
        with pytest.raises(TranslationError, match=rf"spectrum\{ext}: "):
            translate(src, tmp_path / "out.h5")
        src.unlink()
    _only(tmp_path)
    # A Nanonis spectrum named .3ds has no grid header.
    src = tmp_path / "spectrum.3ds"
    src.write_bytes(text)
    with pytest.raises(CorruptFileError, match="header end tag ':HEADER_END:' not found"):
        translate(src)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    import pycro_gpu.io.translators._writer as writer

    np.save(tmp_path / "a.npy", np.ones((3, 4)))

    def boom(*args, **kwargs):
        raise DataError("disk full (simulated)")

    monkeypatch.setattr(writer, "_write_channel", boom)
    with pytest.raises(DataError, match="simulated"):
        translate(tmp_path / "a.npy")
    _only(tmp_path, "a.npy")


def test_input_never_overwritten(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(3))
    with pytest.raises(TranslationError, match="would overwrite the input"):
        translate(tmp_path / "a.npy", tmp_path / "a.npy", overwrite=True)


# ------------------------------------------------------------------------------------------------
# Optional readers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "modules", "package"),
    [
        ("IgorIBWReader_ForceCurve.ibw", ("igor2", "igor2.binarywave"), "igor2"),
        ("SingFreqPFM_0003.gwy", ("gwyfile", "gwyfile.objects"), "gwyfile"),
        ("DMReader_EELS_STO.dm3", ("rsciio", "rsciio.digitalmicrograph"), "rosettasciio"),
    ],
)
def test_missing_reader_names_the_extra(test_data, tmp_path, monkeypatch, name, modules, package):
    for mod in modules:
        monkeypatch.setitem(sys.modules, mod, None)  # makes `import mod` fail
    with pytest.raises(MissingDependencyError, match=rf"'{package}'.*pip install 'pycro-gpu\[io\]'"):
        translate(test_data / name, tmp_path / "out.h5")
    _only(tmp_path)


def test_missing_tifffile_and_xarray(tmp_path, monkeypatch):
    (tmp_path / "a.tif").write_bytes(b"II*\x00" + bytes(100))
    (tmp_path / "a.nc").write_bytes(b"CDF\x01" + bytes(100))
    for mod in ("tifffile", "xarray"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(MissingDependencyError, match=r"TIFF translator needs .*'tifffile'.*pycro-gpu\[io\]"):
        translate(tmp_path / "a.tif")
    with pytest.raises(MissingDependencyError, match=r"netCDF translator needs .*'xarray'.*pycro-gpu\[io\]"):
        translate(tmp_path / "a.nc")


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def test_cli_list(capsys):
    assert main(["translate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in FORMATS:
        assert name in out
    assert ".ibw" in out and ".3ds" in out and ".dm4" in out


def test_cli_translates(test_data, tmp_path, capsys):
    out = tmp_path / "fc.h5"
    assert main(["translate", str(test_data / "IgorIBWReader_ForceCurve.ibw"), str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.is_file()


@pytest.mark.parametrize("case", ["truncated", "empty", "random", "gwy1", "exists"])
def test_cli_errors_one_line(test_data, tmp_path, capsys, case):
    src = tmp_path / "in.3ds"
    blob = (test_data / "NanonisReader_STS_grid_lockin.3ds").read_bytes()
    extra = []
    if case == "truncated":
        src.write_bytes(blob[: len(blob) // 2])
    elif case == "empty":
        src.write_bytes(b"")
    elif case == "random":
        src = tmp_path / "in.dm3"
        src.write_bytes(np.random.default_rng(3).integers(0, 256, 999, dtype=np.uint8).tobytes())
    elif case == "gwy1":
        src = tmp_path / "in.gwy"
        src.write_bytes((test_data / "GwiddionReader_chip.gwy").read_bytes())
    else:
        src.write_bytes(blob)
        (tmp_path / "out.h5").write_bytes(b"keep me")
        extra = ["out.h5"]
    code = main(["translate", str(src), str(tmp_path / "out.h5")])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    named = "out.h5" if case == "exists" else src.name
    assert lines[0].startswith("pycro-gpu translate: error: ") and named in lines[0], lines[0]
    assert "Traceback" not in err
    _only(tmp_path, src.name, *extra)
    if case == "exists":
        assert (tmp_path / "out.h5").read_bytes() == b"keep me"
