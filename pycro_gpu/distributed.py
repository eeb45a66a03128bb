"""``pycro_gpu.distributed`` is :mod:`pycro_gpu.process.distributed` (the Dask executors of the engine).

The module replaces itself in ``sys.modules``, so both names refer to one module object.
"""

from __future__ import annotations

import sys

from .process import distributed

sys.modules[__name__] = distributed
