"""Round trips (property tests) and conformance of written files with what pyUSID requires.

The conformance rules come from pyUSID 0.0.12 (``pyUSID.io.hdf_utils.simple.check_if_main``,
``validate_anc_dset_attrs`` and ``model.reshape_to_n_dims``). ``test_pyusid_accepts_our_files`` runs
pyUSID itself in a separate interpreter (``PYCRO_GPU_PYUSID_PYTHON``, or ``/tmp/pyusid_venv``) because
pyUSID is not a dependency of pycro_gpu; it skips where no such interpreter exists.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pycro_gpu.io.usid import INDICES_DTYPE, VALUES_DTYPE, Dimension, USIDataset, write_main

SHO_DTYPE = np.dtype(
    [
        ("Amplitude [V]", np.float32),
        ("Frequency [Hz]", np.float32),
        ("Quality Factor", np.float32),
        ("Phase [rad]", np.float32),
        ("R2 Criterion", np.float32),
    ]
)


def _dims(prefix, sizes):
    return [Dimension(f"{prefix}{i}", f"u{i}", np.arange(n) * 0.5 + i) for i, n in enumerate(sizes)]


shapes = st.tuples(
    st.lists(st.integers(1, 4), min_size=1, max_size=3), st.lists(st.integers(1, 4), min_size=1, max_size=2)
)

common = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _roundtrip(tmp_path, nd, pos_sizes, spec_sizes):
    with h5py.File(tmp_path / "rt.h5", "w") as f:
        write_main(f, "Main", nd, _dims("P", pos_sizes), _dims("S", spec_sizes), "Q", "V")
    with h5py.File(tmp_path / "rt.h5", "r") as f:
        m = USIDataset(f["Main"])
        assert m.n_dim_shape == nd.shape
        assert m.n_dim_labels == [f"P{i}" for i in range(len(pos_sizes))] + [
            f"S{i}" for i in range(len(spec_sizes))
        ]
        back = m.get_n_dim_form()
        assert back.dtype == nd.dtype
        assert m.from_n_dim(back).tobytes() == m[()].tobytes()
        for d, n in zip(m.pos_dims, pos_sizes, strict=True):
            np.testing.assert_array_equal(d.values, np.arange(n) * 0.5 + int(d.name[1:]))
        return back


@common
@given(data=st.data(), sizes=shapes, dtype=st.sampled_from([np.float32, np.float64, np.int16, np.uint8]))
def test_roundtrip_real(tmp_path, data, sizes, dtype):
    pos, spec = sizes
    nd = data.draw(hnp.arrays(dtype, tuple(pos) + tuple(spec)))
    back = _roundtrip(tmp_path, nd, pos, spec)
    assert back.tobytes() == np.ascontiguousarray(nd).tobytes()


@common
@given(data=st.data(), sizes=shapes, dtype=st.sampled_from([np.complex64, np.complex128]))
def test_roundtrip_complex(tmp_path, data, sizes, dtype):
    pos, spec = sizes
    nd = data.draw(hnp.arrays(dtype, tuple(pos) + tuple(spec), elements={"allow_nan": False}))
    back = _roundtrip(tmp_path, nd, pos, spec)
    assert back.tobytes() == np.ascontiguousarray(nd).tobytes()


@common
@given(data=st.data(), sizes=shapes)
def test_roundtrip_compound(tmp_path, data, sizes):
    pos, spec = sizes
    shape = tuple(pos) + tuple(spec)
    fields = data.draw(hnp.arrays(np.float32, (*shape, 5), elements={"allow_nan": True}))
    nd = np.zeros(shape, SHO_DTYPE)
    for i, name in enumerate(SHO_DTYPE.names):
        nd[name] = fields[..., i]
    back = _roundtrip(tmp_path, nd, pos, spec)
    assert back.dtype == SHO_DTYPE
    assert back.tobytes() == np.ascontiguousarray(nd).tobytes()


# ---------------------------------------------------------------------------------------------------
# conformance: every attribute, dtype and reference pyUSID 0.0.12 requires
# ---------------------------------------------------------------------------------------------------


def _assert_pyusid_main(d):
    """The rules of pyUSID 0.0.12 ``check_if_main`` + ``validate_anc_dset_attrs``, spelled out."""
    assert isinstance(d, h5py.Dataset) and d.ndim == 2
    for key in ("quantity", "units"):
        assert isinstance(d.attrs[key], str)  # variable-length UTF-8 string attribute
    anc = {}
    for key in ("Position_Indices", "Position_Values", "Spectroscopic_Indices", "Spectroscopic_Values"):
        ref = d.attrs[key]
        assert isinstance(ref, h5py.Reference) and bool(ref)
        anc[key] = d.file[ref]
        assert isinstance(anc[key], h5py.Dataset)
        assert anc[key].ndim == 2
    n_pos, n_spec = d.shape
    pi, pv = anc["Position_Indices"], anc["Position_Values"]
    si, sv = anc["Spectroscopic_Indices"], anc["Spectroscopic_Values"]
    assert pi.dtype == INDICES_DTYPE == np.uint32 and si.dtype == np.uint32
    assert pv.dtype == VALUES_DTYPE == np.float32 and sv.dtype == np.float32
    assert pi.shape == pv.shape and pi.shape[0] == n_pos
    assert si.shape == sv.shape and si.shape[1] == n_spec
    for inds, vals, n_dims in ((pi, pv, pi.shape[1]), (si, sv, si.shape[0])):
        for key in ("labels", "units"):
            a, b = inds.attrs[key], vals.attrs[key]
            # pyUSID writes (and its get_attr decodes) arrays of fixed-length byte strings
            assert isinstance(a, np.ndarray) and a.dtype.kind == "S" and a.shape == (n_dims,)
            assert np.array_equal(a, b)
    # index tables: one column per dimension, the first varying fastest, products match the shape
    for inds, n in ((pi[()], n_pos), (si[()].T, n_spec)):
        sizes = [len(np.unique(inds[:, k])) for k in range(inds.shape[1])]
        assert math.prod(sizes) == n
        changes = [np.count_nonzero(np.diff(inds[:, k])) for k in range(inds.shape[1])]
        assert changes == sorted(changes, reverse=True)


def test_written_file_conforms(tmp_path, rng):
    path = tmp_path / "conf.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        nd = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
        pos = [Dimension("X", "m", 3), Dimension("Y", "m", 4)]
        m = write_main(g, "Raw_Data", nd, pos, [Dimension("F", "Hz", 5), Dimension("V", "V", 2)], "Amp", "V")
        write_main(
            g,
            "Resp",
            (nd * 1j).astype(np.complex64),
            None,
            None,
            "Resp",
            "a.u.",
            h5_pos_inds=m.h5_pos_inds,
            h5_pos_vals=m.h5_pos_vals,
            h5_spec_inds=m.h5_spec_inds,
            h5_spec_vals=m.h5_spec_vals,
        )
        sho = np.zeros((3, 4, 2), SHO_DTYPE)
        write_main(g, "SHO", sho, pos, Dimension("V", "V", 2), "SHO", "", aux_pos_prefix="SHO_Pos_",
                   aux_spec_prefix="SHO_Spec_")  # fmt: skip
    with h5py.File(path, "r") as f:
        for name in ("Raw_Data", "Resp", "SHO"):
            _assert_pyusid_main(f[f"Measurement_000/Channel_000/{name}"])


def _pyusid_python():
    cand = os.environ.get("PYCRO_GPU_PYUSID_PYTHON") or "/tmp/pyusid_venv/bin/python"
    if not Path(cand).exists():
        return None
    ok = subprocess.run([cand, "-c", "import pyUSID"], capture_output=True, timeout=120)
    return cand if ok.returncode == 0 else None


_PYUSID_CHECK = r"""
import json, sys, h5py, numpy as np, pyUSID
from pyUSID.io.hdf_utils import check_for_old, check_if_main, get_source_dataset
out = {"version": pyUSID.__version__}
with h5py.File(sys.argv[1], "r") as f:
    for name in sys.argv[2:]:
        d = f[name]
        u = pyUSID.USIDataset(d)
        nd = u.get_n_dim_form()
        out[name] = {"main": bool(check_if_main(d)), "labels": list(u.n_dim_labels), "shape": list(nd.shape),
                     "sum": float(np.sum(nd.view(np.float32) if nd.dtype.names else nd).real)}
    grp = f["/Raw-Scale_000"]
    out["source"] = get_source_dataset(grp).name
    out["old"] = [g.name for g in check_for_old(f["/Raw"], "Scale", new_parms={"factor": 3.0})]
    out["not_old"] = [g.name for g in check_for_old(f["/Raw"], "Scale", new_parms={"factor": 4.0})]
print(json.dumps(out))
"""


def _scale(batch, xp, factor=3.0):
    return {"scaled": batch * factor}


@pytest.mark.slow
def test_pyusid_accepts_our_files(tmp_path, rng):
    py = _pyusid_python()
    if py is None:
        pytest.skip(
            "pyUSID is not installed in a separate interpreter: set PYCRO_GPU_PYUSID_PYTHON to a python with "
            "pyUSID (python -m venv /tmp/pyusid_venv && /tmp/pyusid_venv/bin/pip install pyUSID h5py)"
        )
    path = tmp_path / "ours.h5"
    nd = rng.standard_normal((3, 4, 5)).astype(np.float32)
    with h5py.File(path, "w") as f:
        pos = [Dimension("X", "m", 3), Dimension("Y", "m", 4)]
        m = write_main(f, "Raw", nd, pos, Dimension("F", "Hz", 5), "Amp", "V")
        sho = np.zeros((3, 4, 1), SHO_DTYPE)
        sho["Amplitude [V]"] = 2.0
        write_main(f, "SHO", sho, None, Dimension("a", "", 1), "SHO", "", h5_pos_inds=m.h5_pos_inds,
                   h5_pos_vals=m.h5_pos_vals, aux_spec_prefix="SHO_Spec_")  # fmt: skip
    from pycro_gpu.process import Job, Output, run_job

    job = Job("Scale", _scale, [Output("scaled", spec_dims=[Dimension("F", "Hz", 5)], units="V")],
              parameters={"factor": 3.0})  # fmt: skip
    run_job(job, path, "/Raw", batch_rows=5, progress=False)
    res = subprocess.run(
        [py, "-c", _PYUSID_CHECK, str(path), "/Raw", "/SHO", "/Raw-Scale_000/scaled"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["/Raw"] == {"main": True, "labels": ["X", "Y", "F"], "shape": [3, 4, 5], "sum": pytest.approx(
        float(nd.sum()), rel=1e-5)}  # fmt: skip
    assert out["/SHO"]["main"] and out["/SHO"]["shape"] == [3, 4, 1]
    assert out["/SHO"]["sum"] == pytest.approx(24.0)
    # a run_job output is a Main dataset for pyUSID; its group names its source and matches parameters
    sc = out["/Raw-Scale_000/scaled"]
    assert sc["main"] and sc["labels"] == ["X", "Y", "F"] and sc["shape"] == [3, 4, 5]
    assert sc["sum"] == pytest.approx(3 * float(nd.sum()), rel=1e-5)
    assert out["source"] == "/Raw"
    assert out["old"] == ["/Raw-Scale_000"] and out["not_old"] == []
    print(f"checked with pyUSID {out['version']}", file=sys.stderr)


_PYUSID_DUPLICATES = r"""
import json, sys, h5py, pyUSID
from pyUSID.processing.process import Process

class Tool(Process):
    def __init__(self, h5_main, name, parms):
        super().__init__(h5_main, name, parms_dict=parms)

out = {}
with h5py.File(sys.argv[1], "r+") as f:  # pyUSID's Process needs a writable file
    for name, parms in (("SVD", {"num_components": 3}), ("Cluster", {"n_clusters": 2})):
        p = Tool(pyUSID.USIDataset(f["/Raw"]), name, parms)
        done, partial = p.duplicate_h5_groups, p.partial_h5_groups
        out[name] = {"done": [g.name for g in done], "partial": [g.name for g in partial]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_pyusid_process_sees_our_finished_groups_as_finished(tmp_path, rng):
    py = _pyusid_python()
    if py is None:
        pytest.skip("pyUSID is not installed in a separate interpreter: set PYCRO_GPU_PYUSID_PYTHON")
    from pycro_gpu.cluster import cluster_dataset
    from pycro_gpu.decomposition import svd_dataset

    path = tmp_path / "ours.h5"
    with h5py.File(path, "w") as f:
        write_main(f, "Raw", rng.standard_normal((12, 20)), [Dimension("X", "m", 3), Dimension("Y", "m", 4)],
                   Dimension("F", "Hz", 20), "Amp", "V")  # fmt: skip
    svd_dataset(path, "/Raw", k=3, progress=False)
    cluster_dataset(path, "/Raw", n_clusters=2, components=None, progress=False)
    res = subprocess.run(
        [py, "-c", _PYUSID_DUPLICATES, str(path)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["SVD"] == {"done": ["/Raw-SVD_000"], "partial": []}
    assert out["Cluster"] == {"done": ["/Raw-Cluster_000"], "partial": []}


_PYCROSCOPY_SVD = r"""
import sys, h5py, numpy as np, pyUSID
from pyUSID.io.hdf_utils import create_results_group, write_main_dataset, write_simple_attrs
from pyUSID import Dimension

if not hasattr(np, "product"):  # pyUSID 0.0.12's writer still calls np.product (gone in NumPy 2)
    np.product = np.prod
with h5py.File(sys.argv[1], "r+") as f:
    raw = pyUSID.USIDataset(f["/Raw"])
    k = 3
    u, s, vh = np.linalg.svd(raw[()], full_matrices=False)
    grp = create_results_group(raw, "SVD")  # what pycroscopy's SVD does, with pyUSID's own writers
    write_simple_attrs(grp, {"num_components": k, "svd_method": "sklearn-randomized"})
    write_main_dataset(grp, np.float32(u[:, :k]), "U", "Abundance", "a.u.", None,
                       Dimension("Principal Component", "a.u.", k), h5_pos_inds=raw.h5_pos_inds,
                       h5_pos_vals=raw.h5_pos_vals)
    write_main_dataset(grp, np.float32(vh[:k]), "V", "Amp", "V", Dimension("Principal Component", "a.u.", k),
                       None, h5_spec_inds=raw.h5_spec_inds, h5_spec_vals=raw.h5_spec_vals)
    grp.create_dataset("S", data=s[:k])
    grp.attrs["last_pixel"] = raw.shape[0]
    print(grp.name)
"""


@pytest.mark.slow
def test_a_finished_pycroscopy_svd_group_is_reused(tmp_path, rng):
    py = _pyusid_python()
    if py is None:
        pytest.skip("pyUSID is not installed in a separate interpreter: set PYCRO_GPU_PYUSID_PYTHON")
    from pycro_gpu.decomposition import rebuild, svd_dataset

    path = tmp_path / "theirs.h5"
    data = rng.standard_normal((12, 20))
    with h5py.File(path, "w") as f:
        write_main(f, "Raw", data, [Dimension("X", "m", 3), Dimension("Y", "m", 4)],
                   Dimension("F", "Hz", 20), "Amp", "V")  # fmt: skip
    res = subprocess.run([py, "-c", _PYCROSCOPY_SVD, str(path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    theirs = res.stdout.strip().splitlines()[-1]
    got = svd_dataset(path, "/Raw", k=3, progress=False)
    assert got.reused and got.group == theirs  # recognised: not computed again
    assert not svd_dataset(path, "/Raw", k=4, progress=False).reused  # another k: computed
    with h5py.File(path, "r+") as f:
        out = rebuild(f[theirs], components=2, progress=False)  # our rebuild reads their U, S, V
        u, s, vh = np.linalg.svd(data, full_matrices=False)
        np.testing.assert_allclose(f[out.group]["Rebuilt_Data"][()], (u[:, :2] * s[:2]) @ vh[:2], atol=1e-5)
