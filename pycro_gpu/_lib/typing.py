"""Type aliases shared across the package."""

from __future__ import annotations

from types import ModuleType
from typing import Any, TypeAlias

#: An array of any array-API namespace (NumPy, CuPy, array_api_strict).
Array: TypeAlias = Any
#: An array-API namespace module (``array_api_compat.numpy``, ``array_api_compat.cupy``, ...).
Namespace: TypeAlias = ModuleType
#: A device object of an array-API namespace.
Device: TypeAlias = Any

__all__ = ["Array", "Device", "Namespace"]
