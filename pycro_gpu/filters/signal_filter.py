"""G-mode signal filter over a USID Main dataset, streamed and resumable.

:class:`SignalFilter` applies frequency filters and/or noise-floor thresholding to every row of a Main
dataset (each row one signal: a G-mode pixel or line) through the batch engine
:func:`pycro_gpu.process.run_job`, writing into ``<Source>-FFT_Filtering_NNN``:

``Filtered_Data``
    Main dataset ``(N_pos, N_spec)``, the filtered signals (shares the source's position ancillaries).
``Condensed_Data`` (``write_condensed=True``)
    Main dataset ``(N_pos, n_hot)`` complex64: the filtered one-sided spectrum at the bins the composite
    filter passes (weight > 0), with a spectroscopic ``Frequency`` dimension. Compact for
    sparse-in-frequency signals (a few harmonics), and enough to rebuild ``Filtered_Data``.
``Noise_Floors`` (``noise_threshold`` given)
    Main dataset ``(N_pos, 1)``: the noise floor of each signal; NaN for a signal that holds NaN or
    inf (it has none).
``Composite_Filter``
    ``(N_spec // 2 + 1,)`` float32: the filter weights per one-sided frequency bin (with a
    ``Frequency`` attribute dataset ``Composite_Filter_Frequencies``).

An interrupted run resumes where it stopped (``completed_positions``); a re-run with the same
parameters returns the finished group.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from .._lib.typing import Namespace
from ..backend import device_of, from_host
from ..errors import DataError
from .fft import LIGHT_JOB_SAMPLES, FrequencyFilter, build_composite_filter, filtered_spectra, irfft

__all__ = ["TOOL", "SignalFilter", "filter_batch", "sampling_rate_of"]

#: tool name: results groups are ``<Source>-FFT_Filtering_NNN``
TOOL = "FFT_Filtering"


def sampling_rate_of(h5_main: Any) -> float:
    """Sampling rate (Hz) of a Main dataset whose one spectroscopic dimension is time (units ``s``).

    Raises
    ------
    DataError
        The dataset has several spectroscopic dimensions, or its one dimension is not an evenly
        spaced time axis in seconds.
    """
    from ..io.usid import USIDataset

    main = h5_main if isinstance(h5_main, USIDataset) else USIDataset(h5_main)
    dims = main.spec_dims
    if len(dims) != 1 or dims[0].units.strip() != "s" or len(dims[0]) < 2:
        found = [(d.name, d.units, len(d)) for d in dims]
        msg = (
            f"{main.name}: cannot infer a sampling rate from spectroscopic dimensions {found}; "
            "give samp_rate explicitly"
        )
        raise DataError(msg)
    t = np.asarray(dims[0].values, dtype=np.float64)
    dt = np.diff(t)
    if not (np.all(dt > 0) and np.allclose(dt, dt[0], rtol=1e-4)):
        msg = f"{main.name}: the time axis {dims[0].name!r} is not evenly spaced; give samp_rate explicitly"
        raise DataError(msg)
    return float(1.0 / np.mean(dt))


def filter_batch(
    batch: Any,
    xp: Namespace,
    *,
    mask: np.ndarray | None,
    noise_tolerance: float | None,
    write_filtered: bool,
    hot_bins: np.ndarray | None,
    light: bool = False,
) -> dict[str, Any]:
    """Filter one batch of rows (the ``compute`` of the streamed job; module level, so picklable).

    Parameters
    ----------
    batch : (n_rows, n) real array
    xp : namespace
    mask : (n // 2 + 1,) float64 host array or None
    noise_tolerance : float or None
    write_filtered : bool
        Return ``Filtered_Data``.
    hot_bins : (n_hot,) int host array or None
        Return ``Condensed_Data``: the filtered spectra at these bins.
    light : bool, optional
        The whole job is light (:data:`~pycro_gpu.filters.fft.LIGHT_JOB_SAMPLES`): NumPy's FFT and the
        array-API mask and noise floor, no ``scipy.fft`` or numba import.

    Returns
    -------
    dict
        ``Filtered_Data`` (n_rows, n), ``Condensed_Data`` (n_rows, n_hot), ``Noise_Floors`` (n_rows,)
        as requested, in namespace ``xp``.
    """
    n = batch.shape[-1]
    if not xp.isdtype(batch.dtype, "real floating"):
        batch = xp.astype(batch, xp.float64)
    device = device_of(batch)
    w = None if mask is None else from_host(mask, xp, device=device, dtype=batch.dtype)
    spectra, floors = filtered_spectra(batch, w, noise_tolerance, light=light, xp=xp)
    out: dict[str, Any] = {}
    if floors is not None:
        out["Noise_Floors"] = floors
    if hot_bins is not None:
        out["Condensed_Data"] = xp.take(
            spectra, from_host(hot_bins, xp, device=device, dtype=xp.int64), axis=1
        )
    if write_filtered:
        out["Filtered_Data"] = irfft(spectra, n, xp=xp, light=light)
    return out


def pycroscopy_filter_layout(one_sided: np.ndarray, n_samples: int) -> np.ndarray:
    """The two-sided, FFT-shifted weights (``n_samples``,) of a real filter given on the ``rfft`` bins.

    pycroscopy stores ``Composite_Filter`` this way (frequencies ``fftshift(fftfreq(n))``); the weight at
    ``-f`` equals the weight at ``f``.
    """
    m = np.asarray(one_sided)
    n = int(n_samples)
    if m.shape != (n // 2 + 1,):
        msg = f"one-sided weights of a {n}-sample signal have {n // 2 + 1} bins, got shape {m.shape}"
        raise ValueError(msg)
    full = np.concatenate([m, m[1 : (n + 1) // 2][::-1]])  # FFT order: 0, +f ..., -f ...
    return np.fft.fftshift(full)


class SignalFilter:
    """Filter every signal (row) of a USID Main dataset in the frequency domain.

    Parameters
    ----------
    h5_main : h5py.Dataset or USIDataset
        Main dataset ``(N_pos, N_spec)``; each row is one real signal of ``N_spec`` samples.
    frequency_filters : FrequencyFilter or sequence of them, optional
        Multiplied into one composite filter; ``signal_length`` must be ``N_spec``.
    noise_threshold : float, optional
        In (0, 1): zero each signal's bins under its noise floor (see
        :func:`~pycro_gpu.filters.get_noise_floor`); also writes ``Noise_Floors``.
    write_filtered : bool, optional
        Write ``Filtered_Data`` (default True).
    write_condensed : bool, optional
        Write ``Condensed_Data`` (needs frequency filters: the passed bins).

    Examples
    --------
    >>> import tempfile, pathlib, h5py
    >>> from pycro_gpu.datasets import gmode, write_usid
    >>> from pycro_gpu.filters import HarmonicPassFilter, SignalFilter
    >>> path = write_usid(gmode((4, 4), 1024, seed=0), pathlib.Path(tempfile.mkdtemp()) / "g.h5")
    >>> with h5py.File(path, "r+") as f:
    ...     raw = f["Measurement_000/Channel_000/Raw_Data"]
    ...     hpf = HarmonicPassFilter(1024, 1e6, 62.5e3, 5e3, 3)
    ...     result = SignalFilter(raw, hpf, noise_threshold=1e-4).compute(progress=False)
    ...     f[result.group]["Filtered_Data"].shape
    (16, 1024)
    """

    def __init__(
        self,
        h5_main: Any,
        frequency_filters: FrequencyFilter | Sequence[FrequencyFilter] | None = None,
        noise_threshold: float | None = None,
        *,
        write_filtered: bool = True,
        write_condensed: bool = False,
    ) -> None:
        from ..io.usid import USIDataset

        if not isinstance(h5_main, h5py.Dataset):
            msg = f"h5_main must be an h5py.Dataset (a USID Main dataset), got {type(h5_main).__name__}"
            raise TypeError(msg)
        self.h5_main = h5_main if isinstance(h5_main, USIDataset) else USIDataset(h5_main)
        if frequency_filters is None and noise_threshold is None:
            msg = "SignalFilter needs frequency_filters and/or noise_threshold; got neither"
            raise ValueError(msg)
        if noise_threshold is not None and not 0 < float(noise_threshold) < 1:
            msg = f"noise_threshold must be in (0, 1), got {noise_threshold!r}"
            raise ValueError(msg)
        self.noise_threshold = None if noise_threshold is None else float(noise_threshold)
        n_spec = int(self.h5_main.shape[1])
        self.composite_filter: FrequencyFilter | None = None
        if frequency_filters is not None:
            self.composite_filter = build_composite_filter(frequency_filters)
            if self.composite_filter.signal_length != n_spec:
                msg = (
                    f"filter signal_length={self.composite_filter.signal_length} does not match the "
                    f"{n_spec} samples per row of {self.h5_main.name}"
                )
                raise ValueError(msg)
        if write_condensed and self.composite_filter is None:
            msg = "write_condensed=True needs frequency_filters (the condensed bins are those they pass)"
            raise ValueError(msg)
        if not (write_filtered or write_condensed):
            msg = "write_filtered and write_condensed are both False: nothing would be written"
            raise ValueError(msg)
        self.write_filtered = bool(write_filtered)
        self.write_condensed = bool(write_condensed)

    # ---------------------------------------------------------------------------------------------

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameters stored on the results group (a re-run with equal ones reuses it)."""
        p: dict[str, Any] = {"algorithm": "pycro_gpu.SignalFilter"}
        if self.composite_filter is not None:
            p.update(self.composite_filter.parameters())
        p["noise_threshold"] = self.noise_threshold
        p["write_filtered"] = self.write_filtered
        p["write_condensed"] = self.write_condensed
        return p

    def _hot_bins(self) -> np.ndarray | None:
        if not self.write_condensed:
            return None
        return np.flatnonzero(self.composite_filter.host_mask() > 0).astype(np.int64)

    def _job(self):
        from ..io.usid import Dimension
        from ..process import Job, Output

        main = self.h5_main
        n_spec = int(main.shape[1])
        out_dtype = main.dtype if main.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        outputs = []
        if self.write_filtered:
            dims = list(main.spec_dims)
            if int(np.prod([len(d) for d in dims])) != n_spec:  # incomplete spectroscopic grid
                dims = [Dimension("Sample", "", np.arange(n_spec))]
            outputs.append(
                Output(
                    "Filtered_Data", spec_dims=dims, dtype=out_dtype, quantity=main.quantity, units=main.units
                )
            )
        hot = self._hot_bins()
        if hot is not None:
            if hot.size == 0:
                msg = "the frequency filters pass no bin at all: nothing to condense"
                raise ValueError(msg)
            freqs = self.composite_filter.frequencies[hot]
            outputs.append(
                Output(
                    "Condensed_Data",
                    spec_dims=[Dimension("Frequency", "Hz", freqs)],
                    dtype=np.complex64,
                    quantity=main.quantity,
                    units=main.units,
                )
            )
        if self.noise_threshold is not None:
            outputs.append(
                Output(
                    "Noise_Floors",
                    spec_dims=[Dimension("arb", "a.u.", [0.0])],
                    dtype=np.float32,
                    quantity="Noise floor",
                    units=main.units,
                )
            )
        compute = functools.partial(
            filter_batch,
            mask=None if self.composite_filter is None else np.array(self.composite_filter.host_mask()),
            noise_tolerance=self.noise_threshold,
            write_filtered=self.write_filtered,
            hot_bins=hot,
            light=int(main.shape[0]) * n_spec <= LIGHT_JOB_SAMPLES,
        )
        # spectrum (complex, ~1x the float64 input), output, noise-floor temporaries: ~5 batches
        return Job(TOOL, compute, outputs, parameters=self.parameters, work_multiplier=5.0)

    def compute(
        self,
        *,
        results: str | os.PathLike | h5py.Group | None = None,
        backend: str | None = None,
        memory_mb: float | None = None,
        batch_rows: int | None = None,
        override: bool = False,
        progress: bool | None = None,
        executor: Any = None,
        on_batch: Any = None,
    ):
        """Filter the whole dataset (streamed, resumable) and write the results group.

        Parameters
        ----------
        results, backend, memory_mb, batch_rows, override, progress, executor, on_batch
            As in :func:`pycro_gpu.process.run_job`.

        Returns
        -------
        pycro_gpu.process.JobResult
            ``file`` and ``group`` of ``<Source>-FFT_Filtering_NNN``; ``reused`` / ``resumed`` flags.
        """
        from ..process import run_job

        result = run_job(
            self._job(),
            self.h5_main,
            results=results,
            backend=backend,
            memory_mb=memory_mb,
            batch_rows=batch_rows,
            override=override,
            progress=progress,
            executor=executor,
            on_batch=on_batch,
        )
        self._write_filter(result)
        return result

    def _write_filter(self, result) -> None:
        if self.composite_filter is None:
            return
        same = os.path.abspath(result.file) == os.path.abspath(self.h5_main.file.filename)
        f = self.h5_main.file if same else h5py.File(result.file, "r+")
        try:
            grp = f[result.group]
            if "Composite_Filter" in grp:
                return
            one_sided = self.composite_filter.host_mask().astype(np.float32)
            # pycroscopy's layout under pycroscopy's name: two-sided, FFT-shifted, one weight per sample
            n = int(self.composite_filter.signal_length)
            grp.create_dataset("Composite_Filter", data=pycroscopy_filter_layout(one_sided, n))
            d = grp.create_dataset("Composite_Filter_OneSided", data=one_sided)
            fr = grp.create_dataset("Composite_Filter_Frequencies", data=self.composite_filter.frequencies)
            fr.attrs["units"] = "Hz"
            d.attrs["Frequencies"] = fr.ref
            d.attrs["units"] = ""
            f.flush()
        finally:
            if not same:
                f.close()

    def test(self, position: int = 0, *, path: Any = None, n_show: int | None = None):
        """Filter one row in memory and draw it before/after (nothing is written to the file).

        Parameters
        ----------
        position : int
            Row of the Main dataset.
        path : str or Path, optional
            Also save the figure there (PNG).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .plot import plot_filter_spectrum

        n_pos = int(self.h5_main.shape[0])
        if not 0 <= int(position) < n_pos:
            msg = f"position must be in [0, {n_pos}), got {position!r}"
            raise ValueError(msg)
        row = np.asarray(self.h5_main[int(position)], dtype=np.float64)
        samp_rate = (
            self.composite_filter.samp_rate if self.composite_filter else sampling_rate_of(self.h5_main)
        )
        return plot_filter_spectrum(
            row,
            self.composite_filter,
            samp_rate=samp_rate,
            noise_tolerance=self.noise_threshold,
            units=self.h5_main.units,
            title=f"{self.h5_main.name}, position {int(position)}",
            n_show=n_show,
            path=path,
        )


def filter_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
    frequency_filters: FrequencyFilter | Sequence[FrequencyFilter] | None = None,
    noise_threshold: float | None = None,
    write_filtered: bool = True,
    write_condensed: bool = False,
) -> Any:
    """The signal filter as a dataset job with the signature of every other (:class:`SignalFilter` on top).

    Parameters
    ----------
    source : str, path-like or h5py.Dataset
        The Main dataset of time series, or the path of its file (opened read-only until the job
        writes into it).
    dataset_path : str, optional
        Path of the Main dataset when ``source`` is a file path (default: the first ``Raw_Data``).
    results, backend, memory_mb, executor, override, progress
        As in :func:`pycro_gpu.process.run_job`.
    frequency_filters, noise_threshold, write_filtered, write_condensed
        As in :class:`SignalFilter`.

    Returns
    -------
    pycro_gpu.process.JobResult
        ``<Source>-FFT_Filtering_NNN``.
    """
    from .._lib.checks import check_dataset_path
    from ..io.hdf5 import open_h5
    from ..io.usid import open_main
    from ..process import ResultsReadOnlyError

    check_dataset_path(dataset_path, "filter_dataset", "frequency_filters")
    kw = {"results": results, "backend": backend, "memory_mb": memory_mb, "executor": executor,
          "override": override, "progress": progress}  # fmt: skip

    def run(main: Any) -> Any:
        sf = SignalFilter(main, frequency_filters, noise_threshold, write_filtered=write_filtered,
                          write_condensed=write_condensed)  # fmt: skip
        return sf.compute(**kw)

    if isinstance(source, h5py.Dataset):
        return run(source)
    with open_h5(source, "r") as f:  # read-only until the job has to write into this file
        try:
            return run(open_main(f, dataset_path))
        except ResultsReadOnlyError:
            pass
    with open_h5(source, "r+") as f:
        return run(open_main(f, dataset_path))
