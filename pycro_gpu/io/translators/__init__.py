"""Translators from instrument file formats to USID HDF5 (one module per format)."""
