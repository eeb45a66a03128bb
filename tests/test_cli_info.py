"""``pycro-gpu info FILE``."""

from __future__ import annotations

import h5py
import numpy as np

from pycro_gpu.cli import main
from pycro_gpu.io.usid import Dimension, write_main
from pycro_gpu.process import Job, Output, run_job


def _mean(batch, xp):
    return {"mean": xp.mean(batch, axis=1)}


def test_info_real_file(test_data, capsys):
    assert main(["info", str(test_data / "SingFreqPFM_0003.h5")]) == 0
    out = capsys.readouterr().out
    assert "Main datasets (4):" in out
    assert (
        "/Measurement_000/Channel_003/Raw_Data: PhaseRetrace [m], 2-D (16384, 1) float32, N-D (128, 128, 1)"
        in out
    )
    assert out.count("position: X (128, m), Y (128, m)") == 4
    assert out.count("spectroscopic: arb (1, a.u.)") == 4
    assert "Results groups (0):" in out


def test_info_lists_results_with_parameters(tmp_path, capsys):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        pos = [Dimension("X", "nm", 2), Dimension("Y", "nm", 3)]
        write_main(f, "Raw_Data", np.arange(12.0).reshape(2, 3, 2), pos, Dimension("Bias", "V", [-1.0, 1.0]),
                   "Current", "pA")  # fmt: skip
    job = Job("Mean", _mean, [Output("mean", spec_dims=[Dimension("a", "", 1)], units="pA")],
              parameters={"order": 2, "mode": "fast"})  # fmt: skip
    run_job(job, path, "/Raw_Data", progress=False)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "/Raw_Data: Current [pA], 2-D (6, 2) float64, N-D (2, 3, 2)" in out
    assert "position: X (2, nm), Y (3, nm)" in out and "spectroscopic: Bias (2, V)" in out
    assert "/Raw_Data-Mean_000/mean: mean [pA], 2-D (6, 1) float32, N-D (2, 3, 1)" in out
    assert "Results groups (1):" in out
    assert "/Raw_Data-Mean_000: tool Mean, complete, source /Raw_Data" in out
    assert "parameters: mode='fast', order=2" in out


def test_info_bad_file_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pycro-gpu info: error: cannot open HDF5 file")
    assert "truncated, corrupt or locked" in err[0]
