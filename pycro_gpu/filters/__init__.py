"""Frequency-domain filters of signals and images, and image operations."""
