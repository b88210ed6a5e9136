"""Random test cases for the ReL-PSP core: ties, silent inputs, negative weights, t_max edges."""

from __future__ import annotations

import math

import numpy as np


def dense_case(rng: np.random.Generator, batch: int = 4, n_in: int = 10, n_out: int = 6):
    """Times on a coarse grid (many ties), ~25 % silent, one all-silent row, mixed-sign weights."""
    t = rng.integers(0, 8, (batch, n_in)) / 4.0
    t[rng.random(t.shape) < 0.25] = np.inf
    t[rng.integers(batch)] = np.inf
    w = rng.normal(0.25, 0.5, (n_out, n_in))
    w[rng.random(w.shape) < 0.1] = 0.0
    return t, w


T_MAX_CHOICES = (math.inf, 1.0, 0.75, 1.5, 0.3)  # grid values: boundaries at input times
