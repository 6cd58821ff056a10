"""Fixtures and reference parameter sets of the model tests (reference values: docs/engine.md, models.md)."""

from __future__ import annotations

import numpy as np

# Set G1: alpha=.05, gamma=.10, beta=.85, eta=6, lam=-.2, sigma0_sq=1.5
G1 = {"alpha": 0.05, "gamma": 0.10, "beta": 0.85, "eta": 6.0, "lam": -0.2, "sigma0_sq": 1.5}
# McCrickerd-Pakkanen (2018) rough Bergomi set
RB = {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2}


def mean_and_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean along the last axis and its standard error (float64)."""
    values = np.asarray(values, dtype=np.float64)
    return values.mean(-1), values.std(-1, ddof=1) / np.sqrt(values.shape[-1])
