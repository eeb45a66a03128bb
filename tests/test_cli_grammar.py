"""One grammar for every file command: shared options, old spellings, one error formatter, logging."""

import contextlib
import io
import logging
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pycro_gpu import datasets
from pycro_gpu.cli import COMMANDS, build_parser, main
from pycro_gpu.io.usid import Dimension, write_main

FILE_COMMANDS = {
    "fit": ["fit", "sho"],
    "filter": ["filter"],
    "svd": ["svd"],
    "decompose": ["decompose"],
    "cluster": ["cluster"],
}
SHARED = ("--dataset", "--results", "--override", "--plot", "--backend", "--memory-mb", "--workers")
SHARED += ("--scheduler", "-q")


def _options(command):
    """The option strings that ``pycro-gpu COMMAND --help`` shows."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", text.getvalue()))


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
def test_every_file_command_has_the_shared_options(command):
    options = _options(command)
    assert set(SHARED) <= options, set(SHARED) - options
    assert set(FILE_COMMANDS) <= set(COMMANDS)


def test_components_and_clusters_are_spelled_alike():
    for command in ("svd", "decompose", "cluster"):
        assert {"-k", "--components"} <= _options(command)
    assert {"-n", "--clusters"} <= _options("cluster")


@pytest.fixture
def usid_file(tmp_path):
    path = tmp_path / "scan.h5"
    data = np.abs(np.random.default_rng(0).standard_normal((24, 10))).astype(np.float32)
    with h5py.File(path, "w") as f:
        write_main(
            f.create_group("Measurement_000/Channel_000"),
            "Raw_Data",
            data,
            [Dimension("X", "m", 6), Dimension("Y", "m", 4)],
            Dimension("Bias", "V", np.linspace(-1, 1, 10)),
            "Current",
            "nA",
        )
    return path


@pytest.mark.parametrize("argv", [*FILE_COMMANDS.values(), ["info"]], ids=lambda a: a[0])
def test_not_hdf5_is_the_same_message_in_every_command(argv, tmp_path, capsys):
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    extra = ["--low-pass", "1e3"] if argv == ["filter"] else []
    assert main([*argv, str(bad), *extra, "-q"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"pycro-gpu {argv[0]}: error: {str(bad)!r} is not an HDF5 file (8 bytes; no HDF5 signature)\n"
    )


def test_old_spellings_work_with_one_deprecation_line(usid_file, tmp_path, capsys):
    assert main(["decompose", str(usid_file), "-n", "3", "-q"]) == 0
    err = capsys.readouterr().err
    assert err == (
        "pycro-gpu decompose: deprecated: -n is now -k/--components "
        "(the old spelling goes in the next release)\n"
    )
    with h5py.File(usid_file, "r") as f:
        assert f["Measurement_000/Channel_000/Raw_Data-Decomposition_000/Components"].shape == (3, 10)
    assert main(["decompose", str(usid_file), "-k", "3", "--overwrite", "-q"]) == 0
    assert "--overwrite is now --override" in capsys.readouterr().err
    with h5py.File(usid_file, "r") as f:
        assert "Raw_Data-Decomposition_001" in f["Measurement_000/Channel_000"]


def test_fit_out_and_filter_plot_png_still_work(tmp_path, capsys):
    raw = datasets.write_usid(datasets.band_excitation(shape=(2, 2), n_freq=32, seed=2), tmp_path / "be.h5")
    assert main(["fit", "sho", str(raw), "--out", str(tmp_path / "res.h5"), "-q", "--backend", "numpy"]) == 0
    assert "--out is now --results" in capsys.readouterr().err
    with h5py.File(tmp_path / "res.h5", "r") as f:
        assert f["Raw_Data-SHO_Fit_000/Fit"].shape[0] == 4

    g = datasets.write_usid(datasets.gmode((2, 2), 256, seed=0), tmp_path / "g.h5")
    png = tmp_path / "old.png"
    assert main(["filter", str(g), "--low-pass", "1e5", "--plot", str(png), "-q"]) == 0
    assert "deprecated: --plot FILE.png is now --plot DIR" in capsys.readouterr().err
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_fit_plot_writes_parameter_maps(tmp_path, capsys):
    raw = datasets.write_usid(datasets.band_excitation(shape=(3, 2), n_freq=32, seed=2), tmp_path / "be.h5")
    assert main(["fit", "sho", str(raw), "--plot", str(tmp_path / "fig"), "--backend", "numpy"]) == 0
    png = tmp_path / "fig" / "fit_parameters.png"
    assert f"wrote {png}" in capsys.readouterr().out
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000


def test_translate_takes_options_between_the_files(tmp_path, test_data, capsys):
    out = tmp_path / "force.h5"
    src = test_data / "IgorIBWReader_ForceCurve.ibw"
    assert main(["translate", str(src), "--format", "igor-ibw", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["translate", str(src), "--format", "igor-ibw", str(out), "-q"]) == 1
    assert main(["translate", str(src), "--format", "igor-ibw", str(out), "--overwrite", "-q"]) == 0
    assert "--overwrite is now --override" in capsys.readouterr().err
    with h5py.File(out, "r") as f:
        assert f["Measurement_000/Channel_000/Raw_Data"].shape[0] >= 1
    with pytest.raises(SystemExit):  # a third file is a usage error
        main(["translate", str(src), str(out), "extra.h5"])


def test_info_records_print_on_stderr_unless_quiet(capsys):
    logger = logging.getLogger("pycro_gpu")
    before = (logger.level, list(logger.handlers))

    def run(quiet):
        from pycro_gpu.cli import _options

        with _options.log_to_stderr(quiet):
            logging.getLogger("pycro_gpu.io").info("read %d rows", 3)
        return capsys.readouterr().err

    assert run(False) == "pycro-gpu: read 3 rows\n"
    assert run(True) == ""
    assert (logger.level, list(logger.handlers)) == before


def test_help_info_and_translate_load_no_heavy_module(tmp_path, test_data):
    code = (
        "import sys\n"
        "from pycro_gpu.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"assert main(['info', {str(test_data / 'SingFreqPFM_0003.h5')!r}]) == 0\n"
        f"assert main(['translate', {str(test_data / 'IgorIBWReader_ForceCurve.ibw')!r},"
        f" {str(tmp_path / 'o.h5')!r}, '-q']) == 0\n"
        "heavy = {'numba', 'sklearn', 'skimage', 'matplotlib'}\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_help_loads_neither_hdf5_nor_the_engine():
    # the parser lists every command's choices from pycro_gpu._lib, not from the job modules
    code = (
        "import sys\n"
        "from pycro_gpu.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('h5py', 'pycro_gpu.process', 'pycro_gpu.decomposition', 'pycro_gpu.filters',\n"
        "         'importlib.metadata')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_light_choice_tables_are_the_ones_the_jobs_check():
    from pycro_gpu import decomposition
    from pycro_gpu._lib import decomposition_methods, image_methods
    from pycro_gpu.filters import image_dataset

    assert decomposition.CAPABILITIES is decomposition_methods.CAPABILITIES
    assert decomposition.METHODS is decomposition_methods.METHODS
    assert decomposition.SKETCH_TOL == decomposition_methods.SKETCH_TOL
    assert (
        image_dataset.FFT_KINDS is image_methods.FFT_KINDS and image_dataset.FLATTEN is image_methods.FLATTEN
    )
    with pytest.raises(ValueError, match="flatten must be one of plane, line"):
        image_dataset._check("cubic", None, None, "gaussian", None)
