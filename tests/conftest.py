"""Shared pytest configuration.

Hypothesis runs derandomized (reproducible CI) and without per-example deadlines: the first
example of a test may pay a one-off numba compilation.
"""

from hypothesis import settings

settings.register_profile("stdbp", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("stdbp")
