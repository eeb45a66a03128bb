"""``--gpus N|all``: one Dask worker per GPU through dask-cuda, on every file command; tested without a GPU.

dask-cuda and the devices are played here: a fake ``dask_cuda`` module whose ``LocalCUDACluster`` is a
:class:`distributed.LocalCluster` of CPU worker processes that records how it was asked for, and a
patched device list. The refusals (option combinations, counts, no dask-cuda, no device) are one clear
error each.
"""

from __future__ import annotations

import argparse
import sys
import types

import numpy as np
import pytest

import pycro_gpu.backend
from pycro_gpu import datasets
from pycro_gpu._lib.dask_options import add_dask_arguments, check_gpus
from pycro_gpu.cli import main
from pycro_gpu.errors import BackendUnavailableError, MissingDependencyError, ParameterError
from pycro_gpu.process.distributed import DaskExecutor, executor_from_args, make_gpu_client
from tests.helpers import h5_arrays

pytest.importorskip("distributed")


def _parser():
    p = argparse.ArgumentParser(prog="pycro-gpu svd")
    add_dask_arguments(p)
    return p


def test_gpus_option_parses_a_count_or_all():
    assert _parser().parse_args(["--gpus", "2"]).gpus == 2
    assert _parser().parse_args(["--gpus", "all"]).gpus == "all"
    assert _parser().parse_args([]).gpus is None
    assert check_gpus(3) == 3 and check_gpus(" All ") == "all"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpus", "0"], "argument --gpus: must be a positive integer or 'all', got '0'"),
        (["--gpus", "-2"], "argument --gpus: must be a positive integer or 'all', got '-2'"),
        (["--gpus", "1.5"], "argument --gpus: must be a positive integer or 'all', got '1.5'"),
        (["--gpus", "two"], "argument --gpus: must be a positive integer or 'all', got 'two'"),
        (["--gpus", "2", "--workers", "2"], "argument --workers: not allowed with argument --gpus"),
        (
            ["--scheduler", "tcp://x:1", "--gpus", "2"],
            "argument --gpus: not allowed with argument --scheduler",
        ),
    ],
)
def test_bad_gpus_options_are_one_argparse_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"pycro-gpu svd: error: {message}"


def test_every_file_command_takes_gpus(tmp_path, capsys):
    for argv in (["svd"], ["cluster"], ["decompose"], ["filter"], ["image"], ["fit", "sho"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, str(tmp_path / "x.h5"), "--gpus", "0"])
        assert exit_info.value.code == 2
        assert "argument --gpus: must be a positive integer or 'all', got '0'" in capsys.readouterr().err


@pytest.fixture
def fake_dask_cuda(monkeypatch):
    """A ``dask_cuda`` whose LocalCUDACluster starts CPU worker processes; two "GPUs" visible."""
    import distributed

    recorder = types.SimpleNamespace(clusters=[])  # what each LocalCUDACluster was asked for

    class LocalCUDACluster(distributed.LocalCluster):
        def __init__(self, CUDA_VISIBLE_DEVICES=None, n_workers=None, threads_per_worker=1, **kwargs):
            recorder.clusters.append(
                {"devices": list(CUDA_VISIBLE_DEVICES), "n_workers": n_workers, "threads": threads_per_worker}
            )
            super().__init__(n_workers=n_workers, threads_per_worker=threads_per_worker, **kwargs)

    module = types.ModuleType("dask_cuda")
    module.LocalCUDACluster = LocalCUDACluster
    monkeypatch.setitem(sys.modules, "dask_cuda", module)
    monkeypatch.setattr(pycro_gpu.backend, "cuda_devices", lambda: ["0", "1"])
    return recorder


def test_cli_with_two_gpus_equals_one_process(tmp_path, fake_dask_cuda, monkeypatch):
    raw = datasets.write_usid(datasets.gmode((6, 4), 512, seed=0), tmp_path / "g.h5")
    backends, batches = [], []
    real_map = DaskExecutor.map

    def recording_map(self, task, slices, source):
        backends.append(self.backend)
        for item in real_map(self, task, slices, source):
            batches.append(item[0])
            yield item

    monkeypatch.setattr(DaskExecutor, "map", recording_map)
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    common = ["filter", str(raw), "--low-pass", "2e5", "--memory-mb", "0.05", "-q"]
    assert main([*common, "--results", str(one)]) == 0
    assert main([*common, "--results", str(two), "--gpus", "2"]) == 0
    assert fake_dask_cuda.clusters == [{"devices": ["0", "1"], "n_workers": 2, "threads": 1}]
    assert backends == ["auto"] and len(batches) >= 3  # each worker picks its backend: CuPy on a GPU
    a, b = h5_arrays(one), h5_arrays(two)
    assert sorted(a) == sorted(b) and len(a) >= 3
    for name, value in a.items():
        np.testing.assert_array_equal(b[name], value, err_msg=name)


def test_gpus_all_and_a_subset_of_the_visible_devices(fake_dask_cuda, monkeypatch):
    monkeypatch.setattr(pycro_gpu.backend, "cuda_devices", lambda: ["GPU-a1", "GPU-b2", "GPU-c3"])
    for gpus, chosen in (("all", ["GPU-a1", "GPU-b2", "GPU-c3"]), (1, ["GPU-a1"])):
        client, cluster = make_gpu_client(gpus, processes=False)  # threads: no worker start-up cost
        try:
            assert len(client.nthreads()) == len(chosen)
        finally:
            client.close()
            cluster.close()
        assert fake_dask_cuda.clusters[-1] == {"devices": chosen, "n_workers": len(chosen), "threads": 1}


def test_more_gpus_than_visible_names_both_numbers(fake_dask_cuda):
    with pytest.raises(ParameterError, match=r"at most the number of GPUs here: 2 visible CUDA device\(s\) "
                       r"\(0, 1\); got 3"):  # fmt: skip
        make_gpu_client(3)
    assert fake_dask_cuda.clusters == []


def test_no_cuda_device_is_one_clear_error(fake_dask_cuda, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pycro_gpu.backend, "cuda_devices", list)  # no device
    with pytest.raises(BackendUnavailableError, match=r"^gpus='all': no CUDA device \("):
        make_gpu_client("all")
    raw = datasets.write_usid(datasets.gmode((2, 2), 64, seed=0), tmp_path / "g.h5")
    assert main(["filter", str(raw), "--low-pass", "2e5", "--gpus", "2", "-q"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "gpus=2: no CUDA device" in line


def test_without_dask_cuda_the_error_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import dask_cuda raises ImportError
    with pytest.raises(MissingDependencyError, match=r"'dask-cuda'.*pip install 'pycro-gpu\[multigpu\]'"):
        make_gpu_client(2)
    raw = datasets.write_usid(datasets.gmode((2, 2), 64, seed=0), tmp_path / "g.h5")
    assert main(["filter", str(raw), "--low-pass", "2e5", "--gpus", "all", "-q"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "pycro-gpu[multigpu]" in line and "Traceback" not in line


def test_bad_gpus_in_python_are_parameter_errors():
    with pytest.raises(ParameterError, match=r"gpus must be a positive integer or 'all', got 0"):
        make_gpu_client(0)
    with pytest.raises(
        ValueError, match="give one of client, scheduler, workers and gpus, not workers and gpus"
    ):
        DaskExecutor(workers=2, gpus=2)


def test_scheduler_workers_resolve_the_configured_backend_themselves(monkeypatch):
    """``--scheduler`` (e.g. ``dask cuda worker`` processes): the workers get ``auto``, not the driver's
    resolved backend, so a GPU worker computes with CuPy when the driver has no GPU."""
    from pycro_gpu import config_context

    made = {}
    monkeypatch.setattr(DaskExecutor, "__init__", lambda self, **kw: made.update(kw))
    args = _parser().parse_args(["--scheduler", "tcp://127.0.0.1:1"])
    executor_from_args(args)
    assert made["backend"] == "auto" and made["scheduler"] == "tcp://127.0.0.1:1"
    with config_context(backend="numpy"):
        executor_from_args(args)
    assert made["backend"] == "numpy"
