"""Order-statistic quantiles and moments against numpy/scipy on the same samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from density_engine.engine.quantiles import (
    order_statistic_indices,
    quantile_levels,
    sample_moments,
    sample_quantiles,
    summarize,
)


def test_levels_and_indices() -> None:
    levels = quantile_levels(512)
    assert levels[0] == 0.5 / 512 and levels[-1] == 511.5 / 512
    n = 10_000_019
    idx = order_statistic_indices(n, 512)
    assert np.array_equal(idx, np.floor(levels * n).astype(np.int64))
    assert idx[0] >= 0 and idx[-1] < n
    assert np.array_equal(order_statistic_indices(1, 4), [0, 0, 0, 0])
    with pytest.raises(ValueError, match="num_quantiles"):
        quantile_levels(0)


def test_quantiles_are_order_statistics_and_permutation_invariant() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 10_001, generator=gen)
    q = sample_quantiles(x, 512)
    ref = np.sort(x.numpy(), axis=1)[:, order_statistic_indices(10_001, 512)]
    assert np.array_equal(q.numpy(), ref)
    shuffled = x[:, torch.randperm(10_001, generator=gen)]
    assert torch.equal(sample_quantiles(shuffled, 512), q)


def test_moments_match_scipy() -> None:
    x = torch.distributions.Gamma(2.0, 1.0).sample((2, 50_000)).to(torch.float32)
    m = sample_moments(x)
    xd = x.double().numpy()
    assert np.allclose(m["mean"], xd.mean(1), rtol=1e-12)
    assert np.allclose(m["std"], xd.std(1), rtol=1e-10)
    assert np.allclose(m["skew"], stats.skew(xd, axis=1), rtol=1e-9)
    assert np.allclose(m["kurt"], stats.kurtosis(xd, axis=1), rtol=1e-9)


def test_summarize_rejects_nan() -> None:
    x = torch.zeros(2, 10)
    x[1, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="1 simulated value"):
        summarize(x, 4)


def test_moments_leave_float64_samples_unchanged() -> None:
    x = torch.randn(2, 1000, dtype=torch.float64)
    before = x.clone()
    m = sample_moments(x)
    assert torch.equal(x, before)
    assert np.allclose(m["std"], x.numpy().std(1), rtol=1e-12)
