"""Private helpers shared across pycro_gpu's packages: array types, argument checks, optional imports and
linear algebra. Import public names from the modules here; nothing in ``_lib`` is public API."""
