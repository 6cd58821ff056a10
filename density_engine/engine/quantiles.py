"""Quantiles (exact order statistics) and moments of simulated samples, from one sort per horizon.

The ``M`` quantiles at levels ``p_j = (j + 0.5) / M`` are the order statistics with 0-based index ``floor(p_j N)``
(computed exactly in integers) of all ``N`` samples. One sort per row gives them all: ``numpy.sort`` on CPU (measured
faster there than ``numpy.partition`` with 512 indices and than ``torch.sort``), ``torch.sort`` on CUDA (never
``torch.quantile``, which refuses more than 2^24 values). The moments are taken from the same sorted row (float64,
two-pass: mean, then the central sums), so they do not depend on the order of the paths either, and non-finite values
are found at the ends of the sorted row (NaN sorts last) without another pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from density_engine.engine.chunkio import quantile_levels


@dataclass(frozen=True)
class PathSummary:
    """Per-horizon summary of the samples: ``quantiles`` (H, M) tensor; float64 arrays (H,) of moments."""

    quantiles: torch.Tensor
    mean: np.ndarray
    std: np.ndarray
    skew: np.ndarray
    kurt: np.ndarray
    num_paths: int


def order_statistic_indices(num_samples: int, num_quantiles: int) -> np.ndarray:
    """0-based indices ``floor(p_j * N)`` into the sorted samples, computed exactly in integers."""
    quantile_levels(num_quantiles)  # validates
    j = np.arange(num_quantiles, dtype=np.int64)
    return ((2 * j + 1) * num_samples) // (2 * num_quantiles)


def _check_samples(samples: torch.Tensor) -> None:
    if samples.ndim != 2 or samples.shape[1] < 1:
        raise ValueError(f"samples must have shape (H, N) with N >= 1, got {tuple(samples.shape)}")


def sorted_rows(samples: torch.Tensor) -> np.ndarray | torch.Tensor:
    """Each row sorted ascending: a numpy array on CPU, a tensor on CUDA (NaN last in both)."""
    _check_samples(samples)
    if samples.device.type == "cpu":
        return np.sort(samples.numpy(), axis=1)
    return torch.sort(samples, dim=1).values


MOMENT_CHUNK = 2**16
"""Elements per chunk of the second moment pass (float64 temporaries stay in cache)."""


def _moments_from_sorted(row: np.ndarray) -> tuple[float, float, float, float]:
    """Mean and central moments m2, m3, m4 (float64, two-pass) of one sorted float row; the central sums are taken
    chunk by chunk (fixed chunks of the sorted row, so the result does not depend on the order of the paths)."""
    n = row.shape[0]
    mean = float(np.sum(row, dtype=np.float64)) / n
    sums = np.zeros(3)
    for start in range(0, n, MOMENT_CHUNK):
        centred = np.subtract(row[start : start + MOMENT_CHUNK], mean, dtype=np.float64)
        squared = centred * centred
        sums[0] += squared.sum()
        sums[1] += np.einsum("i,i->", squared, centred)  # no BLAS: independent of the thread count
        sums[2] += np.einsum("i,i->", squared, squared)
    return mean, float(sums[0]) / n, float(sums[1]) / n, float(sums[2]) / n


def _moments_from_sorted_tensor(row: torch.Tensor) -> tuple[float, float, float, float]:
    x = row.to(torch.float64)
    mean = x.mean()
    centred = x - mean
    squared = centred * centred
    return float(mean), float(squared.mean()), float((squared * centred).mean()), float((squared * squared).mean())


def _count_non_finite(row: np.ndarray | torch.Tensor) -> int:
    finite = np.isfinite(row) if isinstance(row, np.ndarray) else torch.isfinite(row)
    return int((~finite).sum())


def summarize_sorted(ordered: np.ndarray | torch.Tensor, num_quantiles: int) -> PathSummary:
    """Quantiles and moments of rows that are already sorted (:func:`sorted_rows`); ``FloatingPointError`` if any
    value is NaN or infinite."""
    num_rows, n = ordered.shape
    # sorted: -inf comes first, +inf and NaN last, so a row is finite iff its two ends are
    bad = sum(_count_non_finite(ordered[r]) for r in range(num_rows) if not _ends_finite(ordered[r]))
    if bad:
        raise FloatingPointError(f"{bad} simulated value(s) are NaN or infinite")
    index = order_statistic_indices(n, num_quantiles)
    stats = {k: np.empty(num_rows) for k in ("mean", "std", "skew", "kurt")}
    for r in range(num_rows):
        moments = _moments_from_sorted if isinstance(ordered, np.ndarray) else _moments_from_sorted_tensor
        mean, m2, m3, m4 = moments(ordered[r])
        stats["mean"][r] = mean
        stats["std"][r] = m2**0.5
        stats["skew"][r] = m3 / m2**1.5 if m2 > 0 else 0.0
        stats["kurt"][r] = m4 / m2**2 - 3.0 if m2 > 0 else 0.0
    if isinstance(ordered, np.ndarray):
        quantiles = torch.from_numpy(np.ascontiguousarray(ordered[:, index]))
    else:
        quantiles = ordered.index_select(1, torch.as_tensor(index, device=ordered.device))
    return PathSummary(quantiles, stats["mean"], stats["std"], stats["skew"], stats["kurt"], int(n))


def _ends_finite(row: np.ndarray | torch.Tensor) -> bool:
    ends = row[[0, -1]]
    return bool(np.isfinite(ends).all()) if isinstance(row, np.ndarray) else bool(torch.isfinite(ends).all())


def summarize(samples: torch.Tensor, num_quantiles: int) -> PathSummary:
    """Quantiles and moments of each row of ``samples`` (H, N); ``FloatingPointError`` if any sample is NaN/inf."""
    return summarize_sorted(sorted_rows(samples), num_quantiles)


def sample_quantiles(samples: torch.Tensor, num_quantiles: int) -> torch.Tensor:
    """Order-statistic quantiles of each row of ``samples`` (H, N): tensor (H, num_quantiles), same dtype/device."""
    ordered = sorted_rows(samples)
    index = order_statistic_indices(samples.shape[1], num_quantiles)
    if isinstance(ordered, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(ordered[:, index]))
    return ordered.index_select(1, torch.as_tensor(index, device=ordered.device))


def sample_moments(samples: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean, std, skewness and excess kurtosis of each row (float64, population moments, from the sorted rows)."""
    s = summarize_sorted(sorted_rows(samples), 1)
    return {"mean": s.mean, "std": s.std, "skew": s.skew, "kurt": s.kurt}
