"""Input/output: the USID data model in HDF5, streamed access and instrument translators."""
