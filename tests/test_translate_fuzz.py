"""Fuzz the translators with mutated real files: bit flips and truncations.

Whatever the damage, ``translate`` either writes a valid USID file or raises one of the documented
errors (:class:`TranslationError`, a :class:`~pycro_gpu.errors.DataError`); nothing else escapes,
and a failure leaves no file behind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pycro_gpu.io.translators import TranslationError, translate
from pycro_gpu.io.usid import find_main_datasets
from tests.conftest import TEST_DATA

FILES = [
    "IgorIBWReader_ForceCurve.ibw",
    "IgorIBWReader_P0089OP0027.ibw",
    "SingFreqPFM_0003.gwy",
    "NanonisReader_STS_grid_lockin.3ds",
    "NanonisReader_BiasSpectroscopy.dat",
    "DMReader_SpectrumImage_SI-EELS.dm3",
    "DMReader_EELS_STO.dm3",
    "AFM_Force_Curve.h5",
    "sparse_sampling.h5",
]
_CACHE: dict[str, bytes] = {}

pytestmark = pytest.mark.skipif(not TEST_DATA.is_dir(), reason=f"test data folder {TEST_DATA} not found")


def _blob(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = (TEST_DATA / name).read_bytes()
    return _CACHE[name]


@st.composite
def mutated(draw):
    """A real file with 0-8 bit flips (biased towards the header) and maybe a truncation."""
    name = draw(st.sampled_from(FILES))
    data = bytearray(_blob(name))
    n_flips = draw(st.integers(0, 8))
    header = draw(st.booleans())
    for _ in range(n_flips):
        hi = min(len(data), 4096) if header else len(data)
        pos = draw(st.integers(0, hi - 1))
        data[pos] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()) or n_flips == 0:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return name, bytes(data)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_only_documented_errors_escape(case):
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = folder / name
        src.write_bytes(data)
        out = folder / "out.h5"
        try:
            result = translate(src, out)
        except TranslationError as exc:
            event(f"error: {type(exc).__name__}")
            assert str(exc).startswith(f"{src}: "), str(exc)
            assert "\n" not in str(exc)
            assert sorted(p.name for p in folder.iterdir()) == [name]
        else:
            event("translated")
            with h5py.File(result, "r") as h5:
                assert find_main_datasets(h5)
            assert sorted(p.name for p in folder.iterdir()) == sorted({name, result.name})
