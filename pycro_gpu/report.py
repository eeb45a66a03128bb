"""Deprecated import path: the HTML report moved to :mod:`pycro_gpu.viz.report` (removed next release)."""

from __future__ import annotations

import warnings

from .viz.report import ReportFigure, Section, format_value, write_report

__all__ = ["ReportFigure", "Section", "format_value", "write_report"]

warnings.warn(
    "pycro_gpu.report is now pycro_gpu.viz.report (the old path goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
