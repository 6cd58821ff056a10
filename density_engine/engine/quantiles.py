"""Quantiles (exact order statistics) and moments of simulated samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PathSummary:
    """Per-horizon summary of the samples: ``quantiles`` (H, M) tensor; float64 arrays (H,) of moments."""

    quantiles: torch.Tensor
    mean: np.ndarray
    std: np.ndarray
    skew: np.ndarray
    kurt: np.ndarray
    num_paths: int


def quantile_levels(num_quantiles: int) -> np.ndarray:
    """Levels ``p_j = (j + 0.5) / num_quantiles``, j = 0..M-1 (float64)."""
    if isinstance(num_quantiles, bool) or not isinstance(num_quantiles, int) or num_quantiles < 1:
        raise ValueError(f"num_quantiles must be a positive integer, got {num_quantiles!r}")
    return (np.arange(num_quantiles, dtype=np.float64) + 0.5) / num_quantiles


def order_statistic_indices(num_samples: int, num_quantiles: int) -> np.ndarray:
    """0-based indices ``floor(p_j * N)`` into the sorted samples, computed exactly in integers."""
    quantile_levels(num_quantiles)  # validates
    j = np.arange(num_quantiles, dtype=np.int64)
    return ((2 * j + 1) * num_samples) // (2 * num_quantiles)


def sample_quantiles(samples: torch.Tensor, num_quantiles: int) -> torch.Tensor:
    """Order-statistic quantiles of each row of ``samples`` (H, N): tensor (H, num_quantiles), same dtype/device.

    One sort per row (no ``torch.quantile``: it refuses more than 2^24 samples), so the result does not depend on the
    order of the samples.
    """
    if samples.ndim != 2 or samples.shape[1] < 1:
        raise ValueError(f"samples must have shape (H, N) with N >= 1, got {tuple(samples.shape)}")
    index = torch.as_tensor(order_statistic_indices(samples.shape[1], num_quantiles), device=samples.device)
    out = torch.empty((samples.shape[0], num_quantiles), dtype=samples.dtype, device=samples.device)
    for row in range(samples.shape[0]):
        out[row] = torch.sort(samples[row]).values.index_select(0, index)
    return out


def sample_moments(samples: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean, std, skewness and excess kurtosis of each row (float64, population moments, two-pass)."""
    stats = {k: np.empty(samples.shape[0]) for k in ("mean", "std", "skew", "kurt")}
    for row in range(samples.shape[0]):
        x = samples[row].to(torch.float64)
        mean = x.mean()
        d = x - mean
        d2 = d * d
        m2 = d2.mean()
        m3 = (d2 * d).mean()
        m4 = (d2 * d2).mean()
        m2f = float(m2)
        stats["mean"][row] = float(mean)
        stats["std"][row] = m2f**0.5
        stats["skew"][row] = float(m3) / m2f**1.5 if m2f > 0 else 0.0
        stats["kurt"][row] = float(m4) / m2f**2 - 3.0 if m2f > 0 else 0.0
    return stats


def summarize(samples: torch.Tensor, num_quantiles: int) -> PathSummary:
    """Quantiles and moments of each row of ``samples`` (H, N); ``FloatingPointError`` if any sample is NaN/inf."""
    if not bool(torch.isfinite(samples).all()):
        bad = int((~torch.isfinite(samples)).sum())
        raise FloatingPointError(f"{bad} simulated value(s) are NaN or infinite")
    q = sample_quantiles(samples, num_quantiles)
    m = sample_moments(samples)
    return PathSummary(q, m["mean"], m["std"], m["skew"], m["kurt"], int(samples.shape[1]))
