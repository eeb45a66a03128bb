"""``python -m pycro_gpu``: the same as the ``pycro-gpu`` command."""

import sys

from pycro_gpu.cli import main

sys.exit(main())
