"""Batch spectral fitting: models, guesses and Levenberg-Marquardt fits on CPU and GPU."""
