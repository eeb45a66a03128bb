"""Fit results users can trust (issue 18, items 2 and 3).

* A loop fit reads only a finished SHO fit: ``fit sho`` killed at ~40 %, then ``fit loop`` is refused
  with one line saying how to finish the SHO fit; after the resume, ``fit loop`` equals a clean
  pipeline's. A loop fit is reused only for the very SHO fit it was computed from.
* Honest status: fits whose samples cannot determine their parameters, ``maxiter`` < 1 and constant
  axes are refused before anything is written; data without variation are flagged (status 3), never
  "converged" with R^2 = NaN; every status code is explained in the results group; the CLI summary
  counts converged, not converged and skipped fits.
* ``info`` shows unfinished groups as interrupted; the noise floor of a NaN row is NaN, not 0.0.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from pycro_gpu.cli import main
from pycro_gpu.datasets import band_excitation, beps, write_usid
from pycro_gpu.errors import DataError
from pycro_gpu.filters import SignalFilter, get_noise_floor, rfft
from pycro_gpu.fitting import (
    STATUS_CODES,
    STATUS_CONSTANT_DATA,
    STATUS_NONFINITE,
    fit,
    fit_loop,
    fit_loop_dataset,
    fit_sho,
    fit_sho_dataset,
    loop,
    project_loops,
    sho,
)
from pycro_gpu.io.usid import Dimension, write_main
from tests.conftest import REPO_ROOT

RAW = "/Measurement_000/Channel_000/Raw_Data"
SHO_GROUP = RAW + "-SHO_Fit_000"
LOOP_GROUP = SHO_GROUP + "/Piezoresponse-Loop_Fit_000"
N_POS, BATCH_ROWS, KILL_AFTER = 48, 4, 5  # 12 batches; killed after 5 (20 of 48 positions, ~42 %)

# ``fit sho`` on a BEPS file that reports each written batch (one line) and, after KILL_AFTER of them,
# waits on stdin for the test to kill it with SIGKILL.
FIT_SHO_UNTIL_KILLED = textwrap.dedent(
    """
    import sys
    from pycro_gpu.fitting import fit_sho_dataset
    from pycro_gpu.process import LocalExecutor

    class ReportingExecutor(LocalExecutor):
        def __init__(self, wait_after):
            # synchronous writes: the driver asks for batch k + 1 only after it wrote and marked batch k
            super().__init__(prefetch=False, write_behind=False)
            self.wait_after = wait_after

        def map(self, task, slices, source):
            for k, item in enumerate(super().map(task, slices, source), 1):
                yield item
                print(k, flush=True)
                if k == self.wait_after:
                    sys.stdin.readline()

    path, batch_rows, wait_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fit_sho_dataset(path, "/Measurement_000/Channel_000/Raw_Data", backend="numpy", batch_rows=batch_rows,
                    executor=ReportingExecutor(wait_after), progress=False)
    print("DONE", flush=True)
    """
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A BEPS file: 6 x 8 positions, 16 DC steps (8 per loop branch), 24 frequency bins."""
    d = beps(shape=(6, 8), n_freq=24, n_dc=16, noise=0.02, seed=1)
    return write_usid(d, tmp_path_factory.mktemp("trust") / "beps.h5", exclude=("clean",))


def _copy(src, tmp_path, name="beps.h5"):
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


def _cli(capsys, *argv):
    """``pycro-gpu ARGV`` in this process: (exit code, stdout, stderr lines)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def _objects(path):
    with h5py.File(path, "r") as f:
        names = []
        f.visit(names.append)
        return sorted(names)


def _group_arrays(path, group):
    with h5py.File(path, "r") as f:
        g = f[group]
        return {k: g[k][()] for k in g if isinstance(g[k], h5py.Dataset)}


def _kill_sho_fit_at_40_percent(path):
    script = path.parent / "fit_sho_until_killed.py"
    script.write_text(FIT_SHO_UNTIL_KILLED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(BATCH_ROWS), str(KILL_AFTER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == str(KILL_AFTER):
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=120)
        proc.stdout.close()
        proc.stdin.close()
    assert lines == [str(k) for k in range(1, KILL_AFTER + 1)] and proc.returncode == -signal.SIGKILL


def _clean_pipeline(pristine, tmp_path, capsys):
    clean = _copy(pristine, tmp_path, "clean.h5")
    assert _cli(capsys, "fit", "sho", clean, "--backend", "numpy", "-q")[0] == 0
    assert _cli(capsys, "fit", "loop", clean, "--backend", "numpy", "-q")[0] == 0
    return clean


# ------------------------------------------------------------------ downstream of an interrupted fit


def test_fit_loop_refuses_interrupted_sho_fit_then_equals_clean_pipeline(pristine, tmp_path, capsys):
    path = _copy(pristine, tmp_path)
    _kill_sho_fit_at_40_percent(path)
    with h5py.File(path, "r") as f:
        g = f[SHO_GROUP]
        assert g.attrs["status"] == "running"
        assert int(g["completed_positions"][()].sum()) == KILL_AFTER * BATCH_ROWS
    before = _objects(path)

    code, out, err = _cli(capsys, "fit", "loop", path, "--backend", "numpy")
    assert code == 1 and out == "" and len(err) == 1
    assert err[0] == (
        f"pycro-gpu fit: error: {path}: SHO fit {SHO_GROUP} is interrupted (status running): "
        f"re-run `pycro-gpu fit sho {path}` to finish it"
    )
    assert _objects(path) == before  # no projected loops, no loop group

    code, out, _ = _cli(capsys, "info", path)
    assert code == 0
    assert f"{SHO_GROUP}: tool SHO_Fit, interrupted: re-run to resume (status running), source {RAW}" in out

    # the command the error names finishes the SHO fit
    advised = shlex.split(err[0].split("`")[1])
    assert advised[:3] == ["pycro-gpu", "fit", "sho"]
    code, out, _ = _cli(capsys, *advised[1:], "--backend", "numpy")
    assert code == 0 and f"resumed: {N_POS - KILL_AFTER * BATCH_ROWS} positions" in out
    code, out, _ = _cli(capsys, "fit", "loop", path, "--backend", "numpy")
    assert code == 0 and f"computed: {N_POS} positions" in out

    clean = _clean_pipeline(pristine, tmp_path, capsys)
    for group in (SHO_GROUP, LOOP_GROUP):
        got, want = _group_arrays(path, group), _group_arrays(clean, group)
        assert sorted(got) == sorted(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{group}/{name}")
    _, out, _ = _cli(capsys, "info", path)
    assert "interrupted" not in out and f"{SHO_GROUP}: tool SHO_Fit, complete" in out


def test_overridden_sho_fit_is_fitted_again_not_reused(pristine, tmp_path, capsys):
    path = _copy(pristine, tmp_path)
    loops = tmp_path / "loops.h5"
    assert _cli(capsys, "fit", "sho", path, "--backend", "numpy", "-q")[0] == 0
    first = fit_loop_dataset(path, SHO_GROUP + "/Fit", results=loops, backend="numpy", progress=False)
    assert not first.reused and first.group == "/Piezoresponse-Loop_Fit_000"
    with h5py.File(path, "r") as f, h5py.File(loops, "r") as r:
        params = json.loads(r[first.group].attrs["parameters_json"])
        assert params["source_group"] == SHO_GROUP
        assert params["source_group_timestamp"] == f[SHO_GROUP].attrs["timestamp"]
    again = fit_loop_dataset(path, SHO_GROUP + "/Fit", results=loops, backend="numpy", progress=False)
    assert again.reused and again.group == first.group

    # an SHO fit computed again (--override: a new group) gets its own loop fit
    code, out, _ = _cli(capsys, "fit", "sho", path, "--backend", "numpy", "--override")
    assert code == 0 and RAW + "-SHO_Fit_001" in out and "computed" in out
    code, out, _ = _cli(capsys, "fit", "loop", path, "--backend", "numpy", "--results", loops)
    assert code == 0 and "computed: 48 positions" in out and f"{loops}:/Piezoresponse-Loop_Fit_001" in out
    code, out, _ = _cli(capsys, "fit", "loop", path, "--backend", "numpy", "--results", loops)
    assert code == 0 and "reused: 0 positions" in out and "/Piezoresponse-Loop_Fit_001" in out

    # the same group path written at another time (deleted and fitted again) is another SHO fit
    with h5py.File(path, "r+") as f:
        f[RAW + "-SHO_Fit_001"].attrs["timestamp"] = "2001_01_01-00_00_00"
    code, out, _ = _cli(capsys, "fit", "loop", path, "--backend", "numpy", "--results", loops)
    assert code == 0 and "computed: 48 positions" in out and "/Piezoresponse-Loop_Fit_002" in out


def test_loop_fit_in_the_sho_group_keeps_its_source(pristine, tmp_path, capsys):
    path = _copy(pristine, tmp_path)
    assert _cli(capsys, "fit", "sho", path, "--backend", "numpy", "-q")[0] == 0
    assert _cli(capsys, "fit", "loop", path, "--backend", "numpy", "-q")[0] == 0
    code, out, _ = _cli(capsys, "fit", "loop", path, "--backend", "numpy")
    assert code == 0 and f"{LOOP_GROUP}" in out and "reused" in out
    with h5py.File(path, "r") as f:
        # the projected loops were not rewritten: the loop group's source reference still resolves
        assert f[f[LOOP_GROUP].attrs["source_000"]].name == SHO_GROUP + "/Piezoresponse"


def test_interrupted_override_run_names_the_override_option(pristine, tmp_path, capsys):
    path = _copy(pristine, tmp_path)
    for extra in ((), ("--override",)):
        assert _cli(capsys, "fit", "sho", path, "--backend", "numpy", "-q", *extra)[0] == 0
    second = RAW + "-SHO_Fit_001"
    with h5py.File(path, "r+") as f:  # as if the --override run had been killed halfway
        f[second].attrs["status"] = "running"
        f[second]["completed_positions"][24:] = 0
        f[second]["Fit"][24:] = np.zeros_like(f[second]["Fit"][24:])
    code, _, err = _cli(capsys, "fit", "loop", path, "--backend", "numpy")
    assert code == 1 and len(err) == 1 and f"SHO fit {second} is interrupted" in err[0]
    advised = shlex.split(err[0].split("`")[1])
    assert advised == ["pycro-gpu", "fit", "sho", str(path), "--override"]
    code, out, _ = _cli(capsys, *advised[1:], "--backend", "numpy")
    assert code == 0 and f"{second}" in out and "resumed: 24 positions" in out
    code, out, _ = _cli(capsys, "fit", "loop", path, "--backend", "numpy")
    assert code == 0 and f"{second}/Piezoresponse-Loop_Fit_000" in out


def test_interrupted_sho_fit_in_a_results_file_names_both_files(pristine, tmp_path, capsys):
    path = _copy(pristine, tmp_path)
    res = tmp_path / "sho results.h5"
    assert _cli(capsys, "fit", "sho", path, "--results", res, "--backend", "numpy", "--maxiter", 50)[0] == 0
    with h5py.File(res, "r+") as f:
        f["Raw_Data-SHO_Fit_000"].attrs["status"] = "running"
        f["Raw_Data-SHO_Fit_000/completed_positions"][40:] = 0
    code, _, err = _cli(capsys, "fit", "loop", res, "--backend", "numpy")
    assert code == 1 and len(err) == 1 and "SHO fit /Raw_Data-SHO_Fit_000 is interrupted" in err[0]
    advised = shlex.split(err[0].split("`")[1])
    assert advised == ["pycro-gpu", "fit", "sho", str(path), "--maxiter", "50", "--results", str(res)]
    code, out, _ = _cli(capsys, *advised[1:], "--backend", "numpy")
    assert code == 0 and "resumed: 8 positions" in out
    assert _cli(capsys, "fit", "loop", res, "--backend", "numpy", "-q")[0] == 0


def test_api_refuses_loops_of_an_interrupted_sho_fit(pristine, tmp_path):
    path = _copy(pristine, tmp_path)
    fit_sho_dataset(path, RAW, backend="numpy", progress=False)
    with h5py.File(path, "r+") as f:
        piezo = project_loops(f[SHO_GROUP + "/Fit"])
        f[SHO_GROUP].attrs["status"] = "running"
        with pytest.raises(DataError, match=r"SHO fit .*-SHO_Fit_000 is interrupted \(status running\)"):
            project_loops(f[SHO_GROUP + "/Fit"])
        # loops projected before (by an older version) from a group that is unfinished now
        with pytest.raises(DataError, match="is interrupted"):
            fit_loop_dataset(piezo, backend="numpy", progress=False)
        assert "Piezoresponse-Loop_Fit_000" not in f[SHO_GROUP]


# ------------------------------------------------------------------ refused before anything is written


def test_underdetermined_loop_fit_refused(tmp_path, capsys):
    # 9 parameters on 3 points per position: any loop fits exactly (the R^2 = 1, "converged")
    with pytest.raises(DataError, match=r"loop fit has 9 parameters but x has only 3 distinct values"):
        fit_loop(np.array([-1.0, 0.0, 1.0]), np.ones((2, 3)))
    # per branch: 4 + 5 distinct biases are too few, 5 + 5 are enough
    p = np.array([[-1.0, 2.0, -3.0, 3.0, 0.01, 1.0, 1.0, 1.0, 1.0]])
    nine = np.concatenate([np.linspace(-10, 10, 4), np.linspace(10, -10, 5)])
    with pytest.raises(DataError, match=r"only 9 distinct values \(per branch, summed\); it needs at le"):
        fit_loop(nine, loop(nine, p))
    ten = np.concatenate([np.linspace(-10, 10, 5), np.linspace(10, -10, 5)])
    assert fit_loop(ten, loop(ten, p)).status.shape == (1,)

    # a BEPS measurement with 8 DC steps (4 per branch): the loop fit is refused, nothing written
    short = beps(shape=(2, 3), n_freq=16, n_dc=8, seed=2)
    path = write_usid(short, tmp_path / "short.h5", exclude=("clean",))
    assert _cli(capsys, "fit", "sho", path, "--backend", "numpy", "-q")[0] == 0
    before = _objects(path)
    code, out, err = _cli(capsys, "fit", "loop", path, "--backend", "numpy")
    assert code == 1 and out == "" and len(err) == 1
    assert err[0] == (
        f"pycro-gpu fit: error: a loop fit has 9 parameters but the DC_Offset dimension of {SHO_GROUP}/Fit "
        "has only 8 distinct values (per branch, summed); it needs at least 10 to determine them"
    )
    assert _objects(path) == before


def test_underdetermined_sho_fit_refused():
    f = np.linspace(300e3, 400e3, 5)
    truth = np.array([[1e-3, 350e3, 50.0, 0.3]])
    with pytest.raises(DataError, match="4 parameters but frequencies has only 4 distinct values"):
        fit_sho(sho(f[:4], truth), f[:4])
    repeated = np.array([300e3, 300e3, 350e3, 350e3, 400e3, 400e3])
    with pytest.raises(DataError, match="only 3 distinct values"):
        fit_sho(sho(repeated, truth), repeated)
    np.testing.assert_allclose(fit_sho(sho(f, truth), f).params, truth, rtol=1e-6)


@pytest.mark.parametrize("maxiter", [0, -1, 1.5, True, "10", None])
def test_maxiter_must_be_an_integer_of_at_least_one(maxiter):
    f = np.linspace(300e3, 400e3, 20)
    spectra = sho(f, np.array([[1e-3, 350e3, 50.0, 0.3]]))
    msg = f"maxiter must be an integer >= 1, got {maxiter!r}"
    for call in (
        lambda: fit_sho(spectra, f, maxiter=maxiter),
        lambda: fit("exponential", f, spectra.real, maxiter=maxiter),
        lambda: fit_loop(f, spectra.real, maxiter=maxiter),
        lambda: fit_sho_dataset("never-opened.h5", maxiter=maxiter),
        lambda: fit_loop_dataset("never-opened.h5", maxiter=maxiter),
    ):
        with pytest.raises(ValueError, match="^" + msg.replace("(", r"\(").replace(")", r"\)") + "$"):
            call()
    assert bool(fit_sho(spectra, f, maxiter=np.int64(1)).niter[0] <= 1)


@pytest.mark.parametrize("maxiter", ["0", "-1"])
def test_cli_maxiter_below_one_refused_before_writing(pristine, tmp_path, capsys, maxiter):
    path = _copy(pristine, tmp_path)
    before = _objects(path)
    code, out, err = _cli(capsys, "fit", "sho", path, "--backend", "numpy", "--maxiter", maxiter)
    assert (
        code == 1
        and out == ""
        and err == [f"pycro-gpu fit: error: ValueError: maxiter must be an integer >= 1, got {int(maxiter)}"]
    )
    assert _objects(path) == before
    assert _cli(capsys, "fit", "sho", path, "--backend", "numpy", "-q")[0] == 0
    before = _objects(path)
    code, _, err = _cli(capsys, "fit", "loop", path, "--backend", "numpy", "--maxiter", maxiter)
    assert code == 1 and len(err) == 1 and "maxiter must be an integer >= 1" in err[0]
    assert _objects(path) == before  # not even the projected loops


def _constant_axis_file(path):
    be = band_excitation(shape=(2, 3), n_freq=24, seed=4)
    with h5py.File(path, "w") as f:
        pos = [Dimension("X", "m", 3), Dimension("Y", "m", 2)]
        freq = Dimension("Frequency", "Hz", np.full(24, 350e3))
        write_main(f, "Raw_Data", be.data.reshape(6, 24), pos, freq, "Response", "V")
    return path


def test_constant_axis_refused(tmp_path, capsys):
    f = np.full(20, 350e3)
    with pytest.raises(DataError, match=r"^frequencies is constant \(350000 at all 20 samples\)"):
        fit_sho(np.ones((2, 20), np.complex64), f)
    with pytest.raises(DataError, match=r"^x is constant \(0 at all 20 samples\): a loop fit"):
        fit_loop(np.zeros(20), np.ones((2, 20)))
    path = _constant_axis_file(tmp_path / "const.h5")
    before = _objects(path)
    code, out, err = _cli(capsys, "fit", "sho", path, "--backend", "numpy")
    want = (
        "pycro-gpu fit: error: the Frequency dimension of /Raw_Data is constant (350000 at all 24 "
        "samples): a SHO fit needs distinct values"
    )
    assert code == 1 and out == "" and err == [want]
    assert _objects(path) == before


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s, f: fit_sho(s, None), r"^frequencies must be a 1-D real array of 20 values, got None$"),
        (lambda s, f: fit_sho(None, f), r"^spectra must be a 2-D array \(n_fits, n_samples\), got NoneType$"),
        (lambda s, f: fit_sho(s[0], f), r"^spectra must be 2-D \(n_fits, n_samples\), got shape \(20,\)$"),
        (lambda s, f: fit_sho(s, f.reshape(4, 5)), r"^frequencies must be a 1-D .* shape \(4, 5\)$"),
        (lambda s, f: fit_sho(s, f + 0j), r"^frequencies must be real numbers, got dtype complex128$"),
        (lambda s, f: fit_sho(s, np.where(f > 390e3, np.nan, f)), r"^frequencies contains non-finite"),
        (lambda s, f: fit("exponential", f, None), r"^y must be a 2-D array"),
        (lambda s, f: fit("exponential", None, s.real), r"^x must be a 1-D real array of 20 .*, got None$"),
        (lambda s, f: fit("exponential", f, s), r"^model 'exponential' fits real data, got dtype complex"),
        (lambda s, f: fit("exponential", f, s.real, p0=[1, 2]), r"^p0 must have shape \(2, 3\)"),
        (lambda s, f: fit_sho(s, f, ftol=-1.0), r"^ftol must be a positive finite number or None, got -1.0$"),
        (lambda s, f: fit_sho(s, f, xtol=0), r"^xtol must be a positive finite number or None, got 0$"),
        (lambda s, f: fit("gaussian", f, s.real, n_peaks=1.5), r"^n_peaks must be an integer >= 1, got 1.5$"),
        (lambda s, f: fit("gaussian", f, s.real, n_peaks=True), r"^n_peaks must be an integer >= 1, got Tr"),
    ],
)
def test_fitting_api_names_the_bad_parameter(call, match):
    f = np.linspace(300e3, 400e3, 20)
    spectra = sho(f, np.array([[1e-3, 350e3, 50.0, 0.3]] * 2))
    with pytest.raises((DataError, ValueError), match=match):
        call(spectra, f)


# ------------------------------------------------------------------ honest per-fit status


def test_all_zero_spectrum_is_flagged_not_converged():
    f = np.linspace(300e3, 400e3, 40)
    spectra = sho(f, np.array([[1e-3, 350e3, 80.0, 0.3]] * 4)).astype(np.complex64)
    spectra[1] = 0
    spectra[2] = 0.5 + 0.25j  # constant, not zero: no variation either
    spectra[3, 7] = np.nan
    res = fit_sho(spectra, f)
    assert res.status.tolist() == [0, STATUS_CONSTANT_DATA, STATUS_CONSTANT_DATA, STATUS_NONFINITE]
    assert res.converged.tolist() == [True, False, False, False]
    assert np.isfinite(res.r2[0]) and np.all(np.isnan(res.r2[1:]))
    assert STATUS_CODES[STATUS_CONSTANT_DATA].startswith("not converged")
    flat = fit("exponential", np.linspace(0, 3, 12), np.zeros((1, 12)))
    assert flat.status.tolist() == [STATUS_CONSTANT_DATA] and not flat.converged[0]


def test_dataset_fit_writes_and_explains_status_codes(tmp_path, capsys):
    d = beps(shape=(4, 4), n_freq=24, n_dc=16, noise=0.02, seed=1)
    d.data[0, 0] = 0  # every spectrum of position 0 is zero
    d.data[0, 1, 3, 5] = np.nan  # one spectrum of position 1 has a NaN
    path = write_usid(d, tmp_path / "beps.h5", exclude=("clean",))
    code, out, _ = _cli(capsys, "fit", "sho", path, "--backend", "numpy")
    assert code == 0
    with h5py.File(path, "r") as f:
        g = f[SHO_GROUP]
        status, converged = g["Status"][()], g["Converged"][()]
        codes = json.loads(g.attrs["status_codes"])
        r2 = g["Fit"]["R2 Criterion"]
    assert codes == {str(k): v for k, v in STATUS_CODES.items()}
    assert status.shape == converged.shape == (16, 16)
    np.testing.assert_array_equal(converged, (status == 0).astype(np.uint8))
    assert np.all(status[0] == STATUS_CONSTANT_DATA) and np.all(np.isnan(r2[0]))
    assert status[1, 3] == STATUS_NONFINITE
    assert not np.any(converged[0]) and np.all(np.isfinite(r2[status == 0]))
    n_conv = int(np.count_nonzero(status == 0))
    assert n_conv >= 256 - 17 - 5  # the noisy spectra of the other positions nearly all converge
    assert f"256 fits: {n_conv / 256:.2%} converged ({n_conv}), {256 - n_conv - 1} not converged, " in out
    assert out.rstrip().endswith("1 skipped (non-finite data)")
    _, out, _ = _cli(capsys, "info", path)
    assert "status codes: 0 converged; 1 not converged: iteration limit (maxiter) reached; 2 skipped" in out
    assert "status_codes=" not in out  # not repeated among the parameters


# ------------------------------------------------------------------ noise floor of a NaN row


@pytest.mark.parametrize("method", ["kernel", "array_api"])
def test_noise_floor_of_a_nan_row_is_nan(method):
    x = np.random.default_rng(0).standard_normal((4, 256))
    x[1, 17] = np.nan
    x[2, 3] = np.inf
    floors = get_noise_floor(rfft(x), 1e-3, method=method)
    assert np.isnan(floors[1]) and np.isnan(floors[2])
    np.testing.assert_allclose(floors[[0, 3]], get_noise_floor(rfft(x[[0, 3]]), 1e-3, method=method))
    assert np.all(floors[[0, 3]] > 0)


def test_signal_filter_writes_nan_noise_floor_for_nan_rows(tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 3, 128)).astype(np.float32)
    x[1, 2, 40] = np.nan
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        pos = [Dimension("X", "m", 3), Dimension("Y", "m", 2)]
        time = Dimension("Time", "s", np.arange(128) * 1e-6)
        write_main(f, "Raw_Data", x.reshape(6, 128), pos, time, "Deflection", "V")
    with h5py.File(path, "r+") as f:
        res = SignalFilter(f["Raw_Data"], noise_threshold=1e-3).compute(progress=False)
        floors = f[res.group]["Noise_Floors"][()].reshape(-1)
    rows = x.reshape(6, 128)
    nan_rows = ~np.all(np.isfinite(rows), axis=1)
    assert nan_rows.tolist() == [False] * 5 + [True]
    assert np.all(np.isnan(floors[nan_rows])) and not np.any(floors == 0.0)
    want = get_noise_floor(rfft(rows[~nan_rows].astype(np.float64)), 1e-3)
    np.testing.assert_allclose(floors[~nan_rows], want, rtol=1e-5)


def test_two_raw_files_into_one_results_file_are_not_confused(tmp_path):
    """A results file shared by two raw files: the second fit computes its own group, never "reused"."""
    a = write_usid(band_excitation(shape=(2, 3), n_freq=32, seed=1), tmp_path / "a.h5")
    b = write_usid(band_excitation(shape=(2, 3), n_freq=32, seed=2), tmp_path / "b.h5")
    res = tmp_path / "r.h5"
    for raw in (a, b, a):
        assert main(["fit", "sho", str(raw), "--results", str(res), "--backend", "numpy", "-q"]) == 0
    with h5py.File(res, "r") as f:
        groups = sorted(k for k in f if "SHO_Fit" in k)
        assert groups == ["Raw_Data-SHO_Fit_000", "Raw_Data-SHO_Fit_001"]  # the third run reused a's
        sources = [f[g].attrs["source_file"] for g in groups]
        assert sources == [str(a), str(b)]
        assert not np.array_equal(f[groups[0]]["Fit"][()], f[groups[1]]["Fit"][()])
