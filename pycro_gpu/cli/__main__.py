"""``python -m pycro_gpu.cli``: the same as the ``pycro-gpu`` console script."""

import sys

from . import main

sys.exit(main())
