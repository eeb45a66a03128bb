"""The package version, the one place it is written (``pyproject.toml`` reads it from here).

A plain constant rather than ``importlib.metadata.version``: that import and its e-mail parser cost
about 50 ms of every process's start, a tenth of a small command's whole run.
"""

__version__ = "0.1.0"
