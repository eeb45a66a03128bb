"""The main job behind ``pycro-gpu demo``: the toolkit end to end on embedded synthetic data.

Steps (each timed; a capability that is not installed is reported as *skipped*, never a crash):

1. generate a synthetic BEPS dataset (:func:`pycro_gpu.datasets.beps`: SHO spectra over DC bias steps
   with hysteresis loops and two kinds of domains) and write it as a USID file;
2. translate a real instrument file (Igor IBW AFM image) when the ``io`` extra and the test data are
   present;
3. SHO fit of every spectrum through the streamed, checkpointed batch engine
   (:func:`pycro_gpu.process.run_job` over :func:`pycro_gpu.fitting.fit_sho`), compared with the truth;
4. loop fit of the projected piezoresponse loops (``A cos(phi)``, :func:`pycro_gpu.fitting.fit_loop`),
   compared with the ground truth;
5. streamed SVD of the raw data (:func:`pycro_gpu.decomposition.svd_dataset`: scree, scores, components);
6. KMeans clustering of the loops (:func:`pycro_gpu.cluster.cluster`), compared with the true domains;
7. FFT filtering of a G-mode-like time series (harmonic pass, :class:`pycro_gpu.filters.SignalFilter` on a
   USID file) and of a noisy lattice image (Butterworth low pass), compared with the clean signals.

Writes into ``out``: ``beps.h5`` (raw data, ground truth and every results group), ``gmode.h5``,
``afm_image.h5`` (the translated file), ``figures/*.png``, ``report.html``, ``summary.json`` and
``demo.log`` (tracebacks of failed steps). Sizes: :data:`SIZES`.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from ._config import get_config
from .backend import (
    from_host,
    get_namespace,
    namespace_name,
    resolve_backend,
    synchronize,
    to_host,
)
from .errors import PycroGPUError
from .viz.report import ReportFigure, Section, write_report

__all__ = ["SIZES", "DemoError", "run_demo"]

#: Dataset sizes of the demo: BEPS grid, DC steps, frequency bins; G-mode grid and samples; SVD rank.
SIZES: dict[str, dict[str, Any]] = {
    "small": {"shape": (12, 12), "n_dc": 48, "n_freq": 32, "gmode_shape": (8, 8), "n_samples": 4096, "k": 8},
    "medium": {
        "shape": (32, 32),
        "n_dc": 64,
        "n_freq": 48,
        "gmode_shape": (32, 32),
        "n_samples": 8192,
        "k": 12,
    },
    "large": {
        "shape": (64, 64),
        "n_dc": 96,
        "n_freq": 64,
        "gmode_shape": (64, 64),
        "n_samples": 16384,
        "k": 16,
    },
}

_N_DOMAINS = 2


class DemoError(PycroGPUError):
    """One or more demo steps failed (details in ``report.html`` and ``demo.log``)."""


class _Skip(Exception):
    """A step cannot run here (missing optional data or an earlier step's result)."""


@dataclass
class _Ctx:
    out: Path
    fig_dir: Path
    size: str
    seed: int
    backend: str
    xp: Any
    progress: bool
    params: dict[str, Any]
    beps: Any = None
    h5: Any = None
    main: Any = None
    sho: dict[str, np.ndarray] | None = None
    loops: np.ndarray | None = None  # (N_pos, n_dc) piezoresponse loops, one row per position
    loops_main: Any = None
    loop_fit: np.ndarray | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def figure(self, fig, name: str, caption: str, section: Section) -> None:
        from .viz import save_figure

        path = save_figure(fig, self.fig_dir / f"{name}.png")
        section.figures = [*section.figures, ReportFigure(path.relative_to(self.out).as_posix(), caption)]


# ------------------------------------------------------------------------------------------ steps


def _step_generate(ctx: _Ctx, sec: Section) -> None:
    p = ctx.params
    ctx.beps = datasets.beps(p["shape"], p["n_freq"], p["n_dc"], n_domains=_N_DOMAINS, seed=ctx.seed)
    path = ctx.out / "beps.h5"
    datasets.write_usid(ctx.beps, path, mode="w", exclude=("clean",))
    import h5py

    from .io.usid import USIDataset

    ctx.h5 = h5py.File(path, "r+")
    ctx.main = USIDataset(ctx.h5["Measurement_000/Channel_000/Raw_Data"])
    ctx.files["results"] = path.name
    ny, nx = p["shape"]
    t = ctx.beps.truth
    sec.text = (
        "Band-excitation piezoresponse spectroscopy (BEPS): at every position of a grid, simple-"
        "harmonic-oscillator (SHO) spectra are recorded at each step of a bipolar DC bias cycle; the SHO "
        "amplitude and phase follow a ferroelectric hysteresis loop (9-parameter loop model). Two kinds of "
        "domains differ in loop height and coercive voltage; the resonance frequency drifts smoothly over "
        "the map (as topography cross-talk does). Complex Gaussian noise of 3 % of the resonance peak is "
        "added."
    )
    sec.rows = [
        ("positions (Y x X)", f"{ny} x {nx}"),
        ("DC steps", p["n_dc"]),
        ("frequency bins", p["n_freq"]),
        ("spectra", ny * nx * p["n_dc"]),
        ("Main dataset", f"{ctx.main.name} {ctx.main.shape} {ctx.main.dtype}"),
        (
            "dimensions",
            ", ".join(f"{n} [{u}]" for n, u in zip(ctx.main.n_dim_labels, ctx.main.n_dim_units, strict=True)),
        ),
        ("noise sigma (V)", float(t["noise_sigma"])),
        ("file", path.name),
    ]
    ctx.metrics["generate"] = {"positions": ny * nx, "dc_steps": p["n_dc"], "frequency_bins": p["n_freq"]}


def _test_data_dir() -> Path:
    env = os.environ.get("PYCRO_GPU_TEST_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1]
    return here.parent / "shared" / "data"


def _step_translate(ctx: _Ctx, sec: Section) -> None:
    import importlib.util

    if importlib.util.find_spec("igor2") is None:
        msg = "the io extra is not installed (pip install 'pycro-gpu[io]'): no real file translated"
        raise _Skip(msg)
    src = _test_data_dir() / "IgorIBWReader_P0089OP0027.ibw"
    if not src.is_file():
        msg = f"real example file {src} not found (set PYCRO_GPU_TEST_DATA)"
        raise _Skip(msg)
    import h5py

    from .io.translators import translate
    from .io.usid import find_main_datasets
    from .viz import Panel, map_figure, si_scale

    out = translate(src, ctx.out / "afm_image.h5", overwrite=True)
    ctx.files["translated"] = out.name
    panels = []
    with h5py.File(out, "r") as f:
        mains = find_main_datasets(f)
        for m in mains[:4]:
            img = np.asarray(m.position_maps(m[:, 0]), dtype=float)  # rows Y, columns X
            factor, unit = si_scale(float(np.nanmax(np.abs(img))), m.units)
            panels.append(Panel(m.quantity, img / factor, f"{m.quantity} ({unit})", cmap="afmhot"))
        y, x = (d.values for d in mains[0].map_dims)
        shape = mains[0].n_dim_shape
    sec.text = (
        f"{src.name} (Igor binary wave, AFM image) translated to USID: {len(mains)} channels, each a Main "
        f"dataset with position dimensions X, Y."
    )
    sec.rows = [("source", src.name), ("channels", len(mains)), ("N-D shape", str(shape)), ("file", out.name)]
    fig = map_figure(panels, title=f"Translated AFM image {src.name}", x=x, y=y)
    ctx.figure(fig, "translated_afm", "Channels of a real AFM image translated from Igor IBW to USID.", sec)
    ctx.metrics["translate"] = {"channels": len(mains)}


def _xy(dataset: datasets.SyntheticDataset) -> tuple[np.ndarray, np.ndarray]:
    """X and Y position values (m) of a synthetic dataset, as the ``x, y`` of the figures."""
    return dataset.pos_dims[1][2], dataset.pos_dims[0][2]


def _rms(diff: np.ndarray) -> float:
    return float(np.sqrt(np.mean(diff**2)))


def _rotate_real(u: np.ndarray) -> np.ndarray:
    """Rotate each column of a complex matrix by the phase that makes it as real as possible."""
    if not np.iscomplexobj(u):
        return u
    theta = 0.5 * np.angle(np.sum(u**2, axis=0))
    return u * np.exp(-1j * theta)


def _timed_warmup(func, *args, **kwargs) -> float:
    """Run ``func`` once on a tiny input (JIT compilation of the kernels) and return the seconds."""
    t0 = time.perf_counter()
    func(*args, **kwargs)
    return time.perf_counter() - t0


def _wrap(angle: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * angle))


def _step_sho(ctx: _Ctx, sec: Section) -> None:
    from .fitting import fit_sho
    from .fitting.dataset import SHO_FIELDS, fit_sho_dataset, project_loops

    ny, nx = ctx.params["shape"]
    n_dc, n_freq = ctx.params["n_dc"], ctx.params["n_freq"]
    t = ctx.beps.truth
    freq_h = t["frequency"]
    # compile the kernels on a tiny batch first, so that the fit time below is the fit alone
    first = from_host(np.asarray(ctx.main[0:1, : n_freq * 2]).reshape(2, n_freq), ctx.xp)
    compile_s = _timed_warmup(fit_sho, first, from_host(freq_h, ctx.xp))
    t0 = time.perf_counter()
    result = fit_sho_dataset(ctx.main, backend=ctx.backend, progress=ctx.progress, override=True)
    fit_s = time.perf_counter() - t0
    grp = ctx.h5[result.group]
    fit = ctx.main.position_maps(grp["Fit"][()])  # (ny, nx, n_dc)
    amp, w0, q, phi, r2 = (fit[k].astype(np.float64) for k in SHO_FIELDS)
    converged = float(np.mean(grp["Converged"][()]))
    n_spectra = ny * nx * n_dc
    # the projected piezoresponse loops A cos(phi), a Main dataset next to the fit (loop-fit input)
    ctx.loops_main = project_loops(grp["Fit"])
    loops = np.asarray(ctx.loops_main[()], dtype=np.float64)  # (N_pos, n_dc)

    # accuracy where the response is clearly above zero (the fit is ill-posed where the loop crosses 0)
    strong = t["amplitude"] > 0.3 * np.max(t["amplitude"])
    w0_t = np.broadcast_to(t["resonance_frequency"][..., None], amp.shape)
    q_t = np.broadcast_to(t["quality_factor"][..., None], amp.shape)
    err = {
        "resonance_median_abs_error_hz": float(np.median(np.abs(w0 - w0_t)[strong])),
        "quality_median_rel_error": float(np.median(np.abs(q / q_t - 1)[strong])),
        "amplitude_median_rel_error": float(np.median(np.abs(amp / t["amplitude"] - 1)[strong])),
        "phase_median_abs_error_rad": float(np.median(np.abs(_wrap(phi - t["phase"]))[strong])),
    }
    ctx.metrics["sho_fit"] = {
        "spectra": n_spectra,
        "batches": math.ceil(ny * nx / result.batch_rows),
        "compile_seconds": compile_s,
        "fit_seconds": fit_s,
        "fits_per_second": n_spectra / fit_s,
        "converged_fraction": converged,
        **err,
    }
    ctx.sho = {"amplitude": amp, "frequency": w0, "quality": q, "phase": phi, "r2": r2}
    ctx.loops = loops
    sec.text = (
        "Bounded Levenberg-Marquardt fit of the SHO model "
        "H(w) = A exp(i phi) w0^2 / (w^2 - i w w0 / Q - w0^2) to every spectrum (one fit per position and "
        "DC step; start points from the analytic two-point guess), on the active backend, streamed from "
        "the USID file by the checkpointed batch engine into the results group. Errors are medians over "
        "the spectra whose true amplitude exceeds "
        "30 % of the maximum (near the loop's zero crossing the response vanishes and so does the "
        "information on w0 and Q). The first call compiles the numba kernels; that time is listed apart."
    )
    sec.rows = [
        ("spectra fitted", n_spectra),
        ("positions per batch (streamed engine)", int(result.batch_rows)),
        ("kernel compilation (s)", compile_s),
        ("fit time (s)", fit_s),
        ("fits per second", n_spectra / fit_s),
        ("converged", f"{converged:.1%}"),
        ("median R2", float(np.nanmedian(r2))),
        ("resonance frequency: median |error| (Hz)", err["resonance_median_abs_error_hz"]),
        ("quality factor: median relative error", err["quality_median_rel_error"]),
        ("amplitude: median relative error", err["amplitude_median_rel_error"]),
        ("phase: median |error| (rad)", err["phase_median_abs_error_rad"]),
        ("results", f"{grp.name}: Guess, Fit (compound: {', '.join(SHO_FIELDS)}), Converged, Piezoresponse"),
    ]

    _sho_maps(ctx, sec, amp, w0, q, phi)
    _sho_spectra(ctx, sec, amp, w0, q, phi)


def _sho_maps(ctx: _Ctx, sec: Section, amp, w0, q, phi) -> None:
    """Maps of the fitted SHO parameters and of the ground truth at one DC step."""
    from .viz import Panel, map_figure

    t = ctx.beps.truth
    n_dc = ctx.params["n_dc"]
    # a DC step on the descending branch between the coercive voltages of the two domain kinds: one kind
    # has switched (phase pi), the other not yet (phase 0)
    half = n_dc // 2
    step = int(np.argmin(np.abs(t["dc_offset"][:half] + 0.35 * float(np.max(t["dc_offset"])))))
    x, y = _xy(ctx.beps)
    amp_lim = (0.0, float(np.max(t["amplitude"])) * 1.1e3)
    f_lim = (float(t["resonance_frequency"].min()) / 1e3, float(t["resonance_frequency"].max()) / 1e3)
    q_lim = (float(t["quality_factor"].min()) * 0.9, float(t["quality_factor"].max()) * 1.1)
    panels = []
    for label, a_, f_, q_, p_ in (
        ("fit", amp[..., step], w0[..., step], q[..., step], phi[..., step]),
        (
            "truth",
            t["amplitude"][..., step],
            t["resonance_frequency"],
            t["quality_factor"],
            t["phase"][..., step],
        ),
    ):
        panels += [
            Panel(f"Amplitude ({label})", a_ * 1e3, "A (mV)", vmin=amp_lim[0], vmax=amp_lim[1]),
            Panel(f"Resonance frequency ({label})", f_ / 1e3, "w0 (kHz)", "plasma", *f_lim),
            Panel(f"Quality factor ({label})", q_, "Q", "cividis", *q_lim),
            Panel(f"Phase ({label})", p_, "phase (rad)", "twilight", -math.pi, math.pi),
        ]
    fig = map_figure(
        panels,
        title=f"SHO fit at DC step {step} ({t['dc_offset'][step]:+.1f} V): fit (top) vs truth (bottom)",
        x=x,
        y=y,
    )
    ctx.figure(fig, "sho_maps", "SHO parameter maps from the fit and the ground truth.", sec)


def _sho_spectra(ctx: _Ctx, sec: Section, amp, w0, q, phi) -> None:
    """Measured spectra of three positions with their fitted SHO responses."""
    from .viz import spectra_figure

    t = ctx.beps.truth
    nx = ctx.params["shape"][1]
    freq_h = t["frequency"]
    # three positions: lowest, median and highest true resonance frequency, at the saturated first step
    order = np.argsort(t["resonance_frequency"].ravel())
    picks = [divmod(int(order[i]), nx) for i in (0, len(order) // 2, len(order) - 1)]
    meas = np.stack([ctx.beps.data[r, c, 0] for r, c in picks])
    model = np.stack(
        [datasets.sho_response(freq_h, amp[r, c, 0], w0[r, c, 0], q[r, c, 0], phi[r, c, 0]) for r, c in picks]
    )
    fig = spectra_figure(
        freq_h,
        meas,
        model,
        labels=[f"position (x={c}, y={r})" for r, c in picks],
        title=f"Band-excitation spectra at DC step 0 ({t['dc_offset'][0]:+.1f} V) and their SHO fits",
    )
    ctx.figure(fig, "sho_spectra", "Measured spectra (dots) and fitted SHO responses (lines).", sec)


def _step_loop(ctx: _Ctx, sec: Section) -> None:
    from .fitting import fit_loop
    from .fitting.dataset import LOOP_FIELDS, SWITCHING_FIELDS, fit_loop_dataset

    if ctx.loops is None or ctx.loops_main is None:
        msg = "needs the SHO fit (the loops are its amplitude x cos(phase))"
        raise _Skip(msg)
    ny, nx = ctx.params["shape"]
    t = ctx.beps.truth
    dc_h = t["dc_offset"]
    loops = ctx.loops
    first = from_host(np.asarray(ctx.loops_main[0:2], dtype=np.float64), ctx.xp)
    compile_s = _timed_warmup(fit_loop, from_host(dc_h, ctx.xp), first)
    t0 = time.perf_counter()
    result = fit_loop_dataset(ctx.loops_main, backend=ctx.backend, progress=ctx.progress, override=True)
    fit_s = time.perf_counter() - t0
    grp = ctx.h5[result.group]
    fit = np.asarray(grp["Fit"][()]).reshape(ny * nx)
    params = np.stack([fit[k].astype(np.float64) for k in LOOP_FIELDS[:9]], axis=-1)
    r2 = fit["R2 Criterion"]
    converged = float(np.mean(grp["Converged"][()]))
    per_position = np.asarray(grp["Switching"][()]).reshape(ctx.main.n_positions)
    switching = ctx.main.position_maps(per_position)  # (ny, nx)
    derived = {k: switching[k].astype(np.float64) for k in SWITCHING_FIELDS}
    truth_p = t["loop_parameters"].reshape(ny * nx, 9)
    truth_s = t["switching"]
    err = {
        "v_minus_median_abs_error_v": float(np.median(np.abs(params[:, 2] - truth_p[:, 2]))),
        "v_plus_median_abs_error_v": float(np.median(np.abs(params[:, 3] - truth_p[:, 3]))),
        "imprint_median_abs_error_v": float(np.median(np.abs(derived["Imprint"] - truth_s["Imprint"]))),
        "switchable_polarization_median_rel_error": float(
            np.median(np.abs(params[:, 1] / truth_p[:, 1] - 1))
        ),
    }
    ctx.metrics["loop_fit"] = {
        "loops": int(loops.shape[0]),
        "compile_seconds": compile_s,
        "fit_seconds": fit_s,
        "converged_fraction": converged,
        **err,
    }
    ctx.loop_fit = params
    sec.text = (
        "The SHO amplitude times cos(phase) at every DC step gives one piezoresponse hysteresis loop per "
        "position; the 9-parameter loop model (two branches with switching voltages V- = a2 and V+ = a3) is "
        "fitted to each with bounded Levenberg-Marquardt. Errors are medians over all positions."
    )
    sec.rows = [
        ("loops fitted", int(loops.shape[0])),
        ("kernel compilation (s)", compile_s),
        ("fit time (s)", fit_s),
        ("converged", f"{converged:.1%}"),
        ("median R2", float(np.nanmedian(r2))),
        ("V-: median |error| (V)", err["v_minus_median_abs_error_v"]),
        ("V+: median |error| (V)", err["v_plus_median_abs_error_v"]),
        ("imprint: median |error| (V)", err["imprint_median_abs_error_v"]),
        ("switchable polarization: median relative error", err["switchable_polarization_median_rel_error"]),
        ("results", f"{grp.name}: Guess, Fit (a0..a4, b0..b3, R2 Criterion), Switching, Converged"),
    ]
    _loop_maps(ctx, sec, derived)
    _loop_curves(ctx, sec, loops, params)


def _loop_maps(ctx: _Ctx, sec: Section, derived: dict) -> None:
    """Maps of the switching parameters from the loop fits and from the ground truth."""
    from .viz import Panel, map_figure

    truth_s = ctx.beps.truth["switching"]
    x, yv = _xy(ctx.beps)
    vm, vp, imp = (
        (float(truth_s[k].min()) - 0.5, float(truth_s[k].max()) + 0.5) for k in ("V-", "V+", "Imprint")
    )
    sp = (0.0, float(truth_s["Switchable Polarization"].max()) * 1.2e3)
    panels = []
    for label, src in (("fit", derived), ("truth", truth_s)):
        panels += [
            Panel(f"V- ({label})", src["V-"], "V- (V)", "coolwarm", *vm),
            Panel(f"V+ ({label})", src["V+"], "V+ (V)", "coolwarm", *vp),
            Panel(f"Imprint ({label})", src["Imprint"], "imprint (V)", "PuOr", *imp),
            Panel(
                f"Switchable polarization ({label})",
                np.asarray(src["Switchable Polarization"]) * 1e3,
                "a1 (mV)",
                "viridis",
                *sp,
            ),
        ]
    fig = map_figure(panels, title="Loop-fit switching parameters: fit (top) vs truth (bottom)", x=x, y=yv)
    ctx.figure(fig, "loop_maps", "Switching voltages, imprint and switchable polarization maps.", sec)


def _loop_curves(ctx: _Ctx, sec: Section, loops: np.ndarray, params: np.ndarray) -> None:
    """Four measured loops with their fits and the ground truth."""
    from .viz import loops_figure

    ny, nx = ctx.params["shape"]
    t = ctx.beps.truth
    dc_h = t["dc_offset"]
    picks = [0, (ny // 2) * nx + nx // 2, ny * nx - 1, (ny // 4) * nx + 3 * nx // 4]
    fig = loops_figure(
        dc_h,
        loops[picks],
        datasets.loop_model(dc_h, params[picks]),
        t["loop"].reshape(ny * nx, -1)[picks],
        labels=[f"position (x={p % nx}, y={p // nx})" for p in picks],
        title="Piezoresponse loops (SHO amplitude x cos(phase)) with loop fits and ground truth",
    )
    ctx.figure(fig, "loops", "Measured loops (dots), loop fits (lines) and ground truth (dashed).", sec)


def _step_svd(ctx: _Ctx, sec: Section) -> None:
    from .decomposition import svd_dataset
    from .viz import components_figure, scree_figure

    k = ctx.params["k"]
    # the BEPS matrix is wide (more spectral points than positions): the randomized range finder
    # reads it a few times but never forms the (n_spectral x n_spectral) Gram matrix
    res = svd_dataset(
        ctx.main,
        k=k,
        method="randomized",
        backend=ctx.backend,
        progress=ctx.progress,
        override=True,
        seed=ctx.seed,
    )
    grp = ctx.main.file[res.group]
    S = np.asarray(grp["S"][()])
    U = np.asarray(grp["U"][()])
    V = np.asarray(grp["V"][()])
    a64 = ctx.beps.as_2d().astype(np.complex128)
    total = float(np.sum(np.abs(a64) ** 2))
    captured = float(np.sum(S**2) / total)
    rows = [("components", k), ("results group", grp.name), ("variance captured by k components", captured)]
    metrics: dict[str, Any] = {"components": k, "variance_captured": captured}
    if a64.size <= 1_500_000:  # a reference check for the small size (cheap there)
        # reference singular values from the small Gram matrix (float64 eigenvalues, LAPACK)
        gram = a64 @ a64.conj().T if a64.shape[0] <= a64.shape[1] else a64.conj().T @ a64
        ref = np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1][:k], 0, None))
        err = float(np.max(np.abs(S - ref) / ref))
        rows.append(("max relative error of S vs LAPACK (eigenvalues of the Gram matrix)", err))
        metrics["singular_value_rel_error"] = err
    sec.rows = rows
    sec.text = (
        "Truncated SVD of the raw data matrix (positions x spectral points), streamed from the HDF5 file in "
        "batches sized by the memory budget; U (score maps), S and V are written to the results group."
    )
    ctx.metrics["svd"] = metrics
    ctx.figure(scree_figure(S), "svd_scree", "Scree plot: singular values and cumulative variance.", sec)
    n_show = min(4, k)
    scores = _rotate_real(U[:, :n_show] * S[:n_show]).real
    maps = ctx.main.position_maps(scores.T, axis=-1)  # (n_show, ny, nx)
    comps = V[:n_show].reshape(n_show, ctx.params["n_dc"], ctx.params["n_freq"])
    freq = ctx.beps.truth["frequency"] / 1e3
    x, y = _xy(ctx.beps)
    fig = components_figure(
        maps,
        comps,
        component_image_axes=(
            ("Frequency (kHz)", freq),
            ("DC step (+V max → −V max → +V max)", np.arange(ctx.params["n_dc"])),
        ),
        x=x,
        y=y,
        title="SVD of the BEPS raw data: score maps (top) and |components| over frequency x DC step (bottom)",
    )
    ctx.figure(fig, "svd_components", "First SVD score maps and component magnitudes.", sec)


def _quadrature_loops(data: np.ndarray) -> np.ndarray:
    """Model-free loops: imaginary part of each spectrum at its strongest bin.

    ``H(w0) = i A Q exp(i phi)``, so ``Im H(w0) = A Q cos(phi)``: the projected piezoresponse times Q.
    ``data`` is ``(..., n_freq)`` complex; returns ``(...)`` float64.
    """
    peak = np.argmax(np.abs(data), axis=-1)[..., None]
    return np.take_along_axis(data, peak, axis=-1)[..., 0].imag.astype(np.float64)


def _step_cluster(ctx: _Ctx, sec: Section) -> None:
    from sklearn.metrics import adjusted_rand_score

    from .cluster import cluster
    from .viz import cluster_figure

    if ctx.loops is not None:
        loops = ctx.loops
        what = "the piezoresponse loops from the SHO fit (amplitude x cos(phase))"
        ylabel = "mean piezoresponse (mV)"
    else:
        loops = _quadrature_loops(ctx.beps.data).reshape(ctx.main.n_positions, -1)  # rows of the file
        what = "model-free loops (imaginary part of each spectrum at its peak; no SHO fit available)"
        ylabel = "mean Im(response) at peak (mV)"
    res = cluster(from_host(loops, ctx.xp), n_clusters=_N_DOMAINS, seed=ctx.seed)
    labels = ctx.main.position_maps(to_host(res.labels)).astype(np.int64)
    centers = to_host(res.mean_response) * 1e3  # mV
    truth = np.asarray(ctx.beps.truth["domains"])
    ari = float(adjusted_rand_score(truth.ravel(), labels.ravel()))
    sec.text = (
        f"KMeans (k = {_N_DOMAINS}, engine {res.engine}) of {what}, one loop per position; compared with the "
        "ground-truth domains by the adjusted Rand index (1 = identical partitions, 0 = chance)."
    )
    sec.rows = [
        ("clusters", _N_DOMAINS),
        ("positions per cluster", ", ".join(str(int(c)) for c in to_host(res.counts))),
    ]
    sec.rows.append(("adjusted Rand index vs truth", ari))
    ctx.metrics["kmeans"] = {"clusters": _N_DOMAINS, "adjusted_rand_index": ari}
    x, y = _xy(ctx.beps)
    fig = cluster_figure(
        labels,
        centers,
        center_axis=ctx.beps.truth["dc_offset"],
        center_label="DC bias (V)",
        center_ylabel=ylabel,
        truth=truth,
        x=x,
        y=y,
        title="KMeans clusters of the hysteresis loops vs ground-truth domains",
        closed=True,
    )
    ctx.figure(fig, "kmeans_clusters", "Cluster map, ground-truth domains and mean loop per cluster.", sec)


def _step_fft_filter(ctx: _Ctx, sec: Section) -> None:
    import h5py

    from .filters import HarmonicPassFilter, SignalFilter
    from .viz import filter_figure

    p = ctx.params
    g = datasets.gmode(p["gmode_shape"], p["n_samples"], seed=ctx.seed + 1)
    path = datasets.write_usid(g, ctx.out / "gmode.h5", mode="w", exclude=("clean",))
    ctx.files["gmode"] = path.name
    t = g.truth
    n = p["n_samples"]
    rate = float(t["sample_rate"])
    f_ex = float(t["excitation_frequency"])
    n_harm = t["harmonic_amplitudes"].shape[-1]
    band = 8 * rate / n
    filt = HarmonicPassFilter(n, rate, f_ex, band, n_harm)
    with h5py.File(path, "r+") as f:
        raw_main = f["Measurement_000/Channel_000/Raw_Data"]
        result = SignalFilter(raw_main, filt, noise_threshold=1e-4).compute(
            backend=ctx.backend, progress=ctx.progress, override=True
        )
        y = np.asarray(f[result.group]["Filtered_Data"][()], dtype=np.float64)
        group = f[result.group].name
    clean = t["clean"].reshape(y.shape)
    raw = g.as_2d().astype(np.float64)
    before, after = _rms(raw - clean), _rms(y - clean)
    sec.text = (
        f"G-mode-like deflection time series ({g.n_positions} positions x {n} samples at "
        f"{rate / 1e6:g} MHz): excitation at {f_ex / 1e3:g} kHz with {n_harm - 1} harmonics, white noise "
        "and a spurious tone. "
        f"A harmonic pass filter keeps {band / 1e3:.3g} kHz around each of the first {n_harm} harmonics "
        "and a noise-floor threshold zeroes the bins under the noise; the USID file is filtered by the "
        "streamed, resumable batch engine (SignalFilter) into a results group."
    )
    sec.rows = [
        ("positions x samples", f"{g.n_positions} x {n}"),
        ("results group", f"{path.name}:{group}"),
        ("rms error vs clean, raw (V)", before),
        ("rms error vs clean, filtered (V)", after),
        ("improvement", before / after),
    ]
    ctx.metrics["fft_filter"] = {"rms_error_before": before, "rms_error_after": after}
    fig = filter_figure(
        t["time"],
        raw[0],
        y[0],
        clean[0],
        mask=filt.host_mask(),
        n_show=round(4 * rate / f_ex),
        title="G-mode signal: harmonic pass FFT filter (before / after)",
    )
    ctx.figure(fig, "fft_filter_gmode", "Time trace and power spectrum before and after filtering.", sec)


def _step_image_filter(ctx: _Ctx, sec: Section) -> None:
    from .filters import butterworth_mask, filter_image
    from .viz import Panel, map_figure

    img = datasets.lattice_image((128, 128), spacing=12.0, atom_sigma=1.8, noise=0.3, seed=ctx.seed + 2)
    cutoff = 0.15
    x = from_host(img.data, ctx.xp)
    mask = butterworth_mask(img.data.shape, cutoff, order=4, xp=ctx.xp, dtype=ctx.xp.float32)
    y = to_host(filter_image(x, mask))
    clean = img.truth["clean"]
    before, after = _rms(img.data - clean), _rms(y - clean)
    sec.text = (
        "Noisy image of atomic columns (square lattice, 12 px spacing, second sublattice, vacancies). A "
        f"4th-order Butterworth low pass at {cutoff} cycles/pixel keeps the lattice and removes most noise."
    )
    sec.rows = [
        ("rms error vs clean, raw", before),
        ("rms error vs clean, filtered", after),
        ("improvement", before / after),
    ]
    ctx.metrics["image_filter"] = {"rms_error_before": before, "rms_error_after": after}
    lo, hi = float(np.percentile(clean, 0.5)), float(np.percentile(clean, 99.5))
    panels = [
        Panel("Noisy image", img.data, "intensity (a.u.)", cmap="gray", vmin=lo, vmax=hi),
        Panel("Filtered", y, "intensity (a.u.)", cmap="gray", vmin=lo, vmax=hi),
        Panel("Ground truth", clean, "intensity (a.u.)", cmap="gray", vmin=lo, vmax=hi),
    ]
    x_img, y_img = _xy(img)
    fig = map_figure(panels, title="Lattice image: Butterworth low-pass FFT filter", x=x_img, y=y_img)
    ctx.figure(fig, "fft_filter_image", "Noisy lattice image, filtered image and ground truth.", sec)


#: (key, title, function) of each step, in order.
STEPS: list[tuple[str, str, Callable[[_Ctx, Section], None]]] = [
    ("generate", "Synthetic BEPS dataset (USID file)", _step_generate),
    ("translate", "Translate a real instrument file", _step_translate),
    ("sho_fit", "SHO fit of every spectrum", _step_sho),
    ("loop_fit", "Loop fit of the piezoresponse loops", _step_loop),
    ("svd", "SVD (streamed)", _step_svd),
    ("kmeans", "KMeans clustering", _step_cluster),
    ("fft_filter", "FFT filter of a G-mode signal", _step_fft_filter),
    ("image_filter", "FFT filter of a lattice image", _step_image_filter),
]


# ------------------------------------------------------------------------------------------ driver


def _fmt_metric(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _run_step(ctx: _Ctx, key: str, title: str, func: Callable, log: list[str]) -> Section:
    """Run one demo step into its report section: ok, skipped (missing capability) or failed (logged)."""
    sec = Section(title)
    t0 = time.perf_counter()
    try:
        func(ctx, sec)
        synchronize(ctx.xp)
    except _Skip as exc:
        sec.status, sec.text = "skipped", str(exc)
    except ImportError as exc:  # a capability that is not installed (or not built yet)
        sec.status, sec.text = "skipped", f"not available: {exc}"
    except Exception as exc:
        sec.status, sec.text = "failed", f"{type(exc).__name__}: {exc}"
        log.append(f"step {key} ({title}) failed:\n{traceback.format_exc()}")
    sec.seconds = time.perf_counter() - t0
    return sec


def run_demo(
    *, size: str = "small", out: str | Path = "demo_out", seed: int = 0, quiet: bool = False
) -> dict:
    """Run the demo job, write the report, figures, results file and ``summary.json``; return the summary.

    Parameters
    ----------
    size : {'small', 'medium', 'large'}
        Dataset sizes (see :data:`SIZES`); ``small`` runs in seconds on a laptop.
    out : str or pathlib.Path
        Output folder (created; files in it are overwritten).
    seed : int
        Seed of the synthetic data.
    quiet : bool
        No progress bars and no printed summary (progress bars also follow ``get_config()["progress"]``).

    Returns
    -------
    dict
        ``backend``, ``size``, ``seed``, ``seconds`` (total), ``steps`` (per step: ``status``,
        ``seconds``, ``title``, and the step's metrics, e.g. accuracy against the ground truth),
        ``files`` (report, results file, figures).

    Raises
    ------
    BackendUnavailableError
        The configured backend cannot run here (e.g. ``cupy`` without a GPU).
    DemoError
        A step failed (after the report was written; tracebacks in ``demo.log``).
    """
    if size not in SIZES:
        msg = f"size must be one of {', '.join(SIZES)}; got {size!r}"
        raise ValueError(msg)
    backend = resolve_backend()
    xp = get_namespace(backend)
    progress = bool(get_config()["progress"]) and not quiet
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()
    ctx = _Ctx(out, fig_dir, size, int(seed), backend, xp, progress, SIZES[size])

    from tqdm import tqdm

    sections: list[Section] = []
    log: list[str] = []
    summary_steps: dict[str, dict[str, Any]] = {}
    t_start = time.perf_counter()
    bar = tqdm(total=len(STEPS), desc="pycro-gpu demo", unit="step", disable=not progress, leave=False)
    try:
        for key, title, func in STEPS:
            bar.set_description(f"demo: {title}")
            sec = _run_step(ctx, key, title, func, log)
            sections.append(sec)
            summary_steps[key] = {
                "title": title,
                "status": sec.status,
                "seconds": sec.seconds,
                **({"message": sec.text} if sec.status != "ok" else {}),
                **ctx.metrics.get(key, {}),
            }
            bar.update()
    finally:
        bar.close()
        if ctx.h5 is not None:
            ctx.h5.close()
    total = time.perf_counter() - t_start

    from . import __version__

    meta = [
        ("backend", f"{namespace_name(xp)} (requested: {get_config()['backend']})"),
        ("size", size),
        ("seed", seed),
        ("total time (s)", round(total, 3)),
        ("pycro_gpu version", __version__),
        ("memory budget (MiB)", float(get_config()["memory_mb"])),
        ("files", ", ".join(ctx.files.values()) or "none"),
    ]
    report = write_report(
        out / "report.html",
        highlights=_highlights(summary_steps),
        title="pycro-gpu demo report",
        sections=sections,
        meta=meta,
        intro=(
            "End-to-end run of pycro_gpu on embedded synthetic data with known ground truth: every number "
            "below is checked against the truth the data was generated from."
        ),
    )
    (out / "demo.log").write_text("\n".join(log) if log else "all steps ran without error\n")
    figures = sorted(p.relative_to(out).as_posix() for p in fig_dir.glob("*.png"))
    summary = {
        "backend": namespace_name(xp),
        "size": size,
        "seed": int(seed),
        "seconds": total,
        "steps": summary_steps,
        "files": {"report": report.name, "figures": figures, **ctx.files},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    if not quiet:
        print(_text_summary(summary, out))
    failed = [k for k, s in summary_steps.items() if s["status"] == "failed"]
    if failed:
        msg = (
            f"demo steps failed: {', '.join(failed)} "
            f"({summary_steps[failed[0]].get('message', '')}); see {out / 'demo.log'}"
        )
        raise DemoError(msg)
    return summary


#: (step, metric, label) of the key results shown at the top of the report.
_HIGHLIGHTS = (
    ("sho_fit", "resonance_median_abs_error_hz", "SHO fit: resonance frequency, median |error| (Hz)"),
    ("sho_fit", "quality_median_rel_error", "SHO fit: quality factor, median relative error"),
    ("sho_fit", "amplitude_median_rel_error", "SHO fit: amplitude, median relative error"),
    ("sho_fit", "phase_median_abs_error_rad", "SHO fit: phase, median |error| (rad)"),
    ("sho_fit", "fits_per_second", "SHO fit: spectra per second (after compilation)"),
    ("loop_fit", "v_minus_median_abs_error_v", "Loop fit: V-, median |error| (V)"),
    ("loop_fit", "v_plus_median_abs_error_v", "Loop fit: V+, median |error| (V)"),
    ("svd", "singular_value_rel_error", "SVD: largest relative error of the singular values"),
    ("kmeans", "adjusted_rand_index", "KMeans: adjusted Rand index vs true domains"),
    ("fft_filter", "rms_error_before", "G-mode: rms error vs clean signal, raw (V)"),
    ("fft_filter", "rms_error_after", "G-mode: rms error vs clean signal, filtered (V)"),
    ("image_filter", "rms_error_before", "Lattice image: rms error vs clean image, raw"),
    ("image_filter", "rms_error_after", "Lattice image: rms error vs clean image, filtered"),
)


def _highlights(steps: dict[str, dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(label, steps[k][m]) for k, m, label in _HIGHLIGHTS if k in steps and m in steps[k]]


def _text_summary(summary: dict, out: Path) -> str:
    lines = [
        f"pycro-gpu demo ({summary['size']}, backend {summary['backend']}) "
        f"finished in {summary['seconds']:.2f} s",
    ]
    width = max(len(s["title"]) for s in summary["steps"].values())
    for s in summary["steps"].values():
        lines.append(f"  {s['title']:<{width}}  {s['status']:<7}  {s['seconds']:7.2f} s")
    lines.append("  results (accuracy against the ground truth where one applies):")
    for key, s in summary["steps"].items():
        if s["status"] != "ok":
            continue
        for name, value in s.items():
            if name in ("title", "status", "seconds", "message"):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                continue
            lines.append(f"    {key}.{name}: {_fmt_metric(value)}")
    lines.append(f"  report: {out / summary['files']['report']}")
    return "\n".join(lines)
