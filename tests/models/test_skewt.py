"""Hansen skew-t math (float64) against reference values and scipy's Student t; the torch sampler against the CDF."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from density_engine.models import skewt
from density_engine.models.gjrgarch import GJRGarchNormalized
from density_engine.models.kernels.gjrgarch import expm1_nonnegative, hansen_skewt


def skewt_from_uniforms(u1: torch.Tensor, u2: torch.Tensor, eta: float, lam: float) -> torch.Tensor:
    """The GJR kernel's skew-t transform with the model's own constants (``u2`` in (0, 1])."""
    params = {"alpha": 0.05, "gamma": 0.0, "beta": 0.9, "eta": eta, "lam": lam, "sigma0_sq": 1.0}
    scalars = GJRGarchNormalized(**params).scheme_tables(GJRGarchNormalized(**params).fine_grid(1)).scalars
    constants = {name: torch.tensor(value, dtype=u1.dtype) for name, value in scalars.items()}
    return hansen_skewt(u1, u2, constants)


def test_constants_and_moments_of_set_g1() -> None:
    # reference values (models.md, set G1: eta=6, lam=-0.2), computed there with arch; 6 printed digits
    k = skewt.hansen_constants(6.0, -0.2)
    assert (round(k.a, 6), round(k.b, 6), round(k.c, 6)) == (-0.3, 1.014889, 0.46875)
    assert skewt.moment(1, 6.0, -0.2) == pytest.approx(0.0, abs=1e-10)
    assert skewt.moment(2, 6.0, -0.2) == pytest.approx(1.0, abs=1e-10)
    assert skewt.moment(3, 6.0, -0.2) == pytest.approx(-0.679208, abs=1e-6)
    assert skewt.moment(4, 6.0, -0.2) == pytest.approx(6.628052, abs=1e-6)
    assert skewt.partial_moment(2, 6.0, -0.2) == pytest.approx(0.572625, abs=1e-6)
    assert skewt.partial_moment(4, 6.0, -0.2) == pytest.approx(5.080133, abs=1e-6)
    assert skewt.prob_negative(6.0, -0.2) == pytest.approx(0.461885, abs=1e-6)
    assert skewt.moment(6, 6.0, -0.2) == math.inf


@pytest.mark.parametrize(("eta", "lam"), [(6.0, -0.2), (3.5, 0.6), (30.0, 0.0), (2.5, -0.9)])
def test_pdf_cdf_ppf_consistent(eta: float, lam: float) -> None:
    split = skewt.hansen_constants(eta, lam).mode_split
    f = lambda z: float(skewt.pdf(z, eta, lam))  # noqa: E731
    assert integrate.quad(f, -np.inf, split)[0] + integrate.quad(f, split, np.inf)[0] == pytest.approx(1, abs=1e-9)
    u = np.array([1e-6, 0.001, 0.2, (1 - lam) / 2, 0.7, 0.999, 1 - 1e-6])
    assert np.allclose(skewt.cdf(skewt.ppf(u, eta, lam), eta, lam), u, rtol=1e-9, atol=1e-13)
    z = np.linspace(-3, 3, 13)
    dz = 1e-5  # central difference of the cdf: error O(dz^2 f''') ~ 1e-10
    numeric = (skewt.cdf(z + dz, eta, lam) - skewt.cdf(z - dz, eta, lam)) / (2 * dz)
    assert np.allclose(numeric, skewt.pdf(z, eta, lam), atol=1e-7)


def test_symmetric_case_is_scaled_student_t() -> None:
    eta = 5.0
    s = math.sqrt(eta / (eta - 2))
    z = np.linspace(-6, 6, 25)
    assert np.allclose(skewt.pdf(z, eta, 0.0), stats.t.pdf(z * s, eta) * s, rtol=1e-12)
    assert np.allclose(skewt.cdf(z, eta, 0.0), stats.t.cdf(z * s, eta), rtol=1e-12)


@pytest.mark.parametrize(("eta", "lam"), [(6.0, -0.2), (2.5, 0.5), (40.0, -0.7)])
def test_sampler_matches_cdf(eta: float, lam: float) -> None:
    """Kolmogorov-Smirnov on 400k float64 draws. The KS critical value at level 1e-4 is 2.23/sqrt(n) (asymptotic
    Kolmogorov distribution), so a correct sampler fails with probability 1e-4 per case (fixed seed: deterministic)."""
    n = 400_000
    gen = torch.Generator().manual_seed(2024)
    u1 = torch.rand(n, dtype=torch.float64, generator=gen)
    u2 = 1.0 - torch.rand(n, dtype=torch.float64, generator=gen)  # (0, 1]
    z = skewt_from_uniforms(u1, u2, eta, lam).numpy()
    d = stats.kstest(z, lambda x: skewt.cdf(x, eta, lam)).statistic
    assert d < 2.23 / math.sqrt(n)
    # mean 0 and variance 1: se of the mean is 1/sqrt(n); tolerance 5 se
    assert abs(z.mean()) < 5 / math.sqrt(n)


def test_expm1_is_accurate_for_small_arguments() -> None:
    """The kernel's expm1 (exp and log only) against torch.expm1 in float64 and float32, down to 1e-30 and up to 40
    (inductor's vectorised CPU expm1 is exp(y) - 1, which returns 0 below 6e-8 in float32)."""
    y = torch.cat([torch.logspace(-30, 1.6, 2000, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    for dtype, tolerance in ((torch.float64, 1e-15), (torch.float32, 5e-7)):
        x = y.to(dtype)
        exact = torch.expm1(x.double())
        relative = ((expm1_nonnegative(x).double() - exact).abs() / exact.clamp(min=1e-300)).max()
        assert float(relative) < tolerance, dtype


def _quad_partial_moment(k: int, eta: float, lam: float, full: bool = False) -> float:
    """The former implementation (adaptive quadrature of z^k times the density), kept as an independent reference:
    ``E[z^k 1{z<0}]``, or ``E[z^k]`` with ``full``."""
    split = skewt.hansen_constants(eta, lam).mode_split
    f = lambda z: z**k * float(skewt.pdf(z, eta, lam))  # noqa: E731

    def quad(lo: float, hi: float) -> float:
        with warnings.catch_warnings():  # heavy tails near eta = k: quad warns but meets the tolerance below
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            return integrate.quad(f, lo, hi, limit=400, epsabs=1e-13, epsrel=1e-12)[0]

    if full:
        return quad(-math.inf, split) + quad(split, math.inf)
    cut = min(split, 0.0)
    return quad(-math.inf, cut) + (quad(cut, 0.0) if cut < 0.0 else 0.0)


@pytest.mark.parametrize("eta", [2.01, 2.5, 3.9, 4.01, 6.0, 30.0, 200.0])
def test_closed_form_moments_match_quadrature(eta: float) -> None:
    for lam in (-0.999, -0.6, -0.2, 0.0, 0.3, 0.999):
        for k in range(5):
            if k >= eta:
                assert skewt.partial_moment(k, eta, lam) == math.inf
                continue
            reference = _quad_partial_moment(k, eta, lam)
            assert skewt.partial_moment(k, eta, lam) == pytest.approx(reference, rel=1e-10), (k, lam)
            if k >= 2:  # E z^k with k >= 2 is not near 0 (E z = 0, E z^3 = 0 at lam = 0: absolute)
                reference = _quad_partial_moment(k, eta, lam, full=True)
                assert skewt.moment(k, eta, lam) == pytest.approx(reference, rel=1e-10, abs=1e-12), (k, lam)


def test_vectorised_moments_equal_the_scalar_ones() -> None:
    rng = np.random.default_rng(11)
    eta = np.concatenate([rng.uniform(2.05, 40.0, 200), [3.0, 4.0, 4.5]])
    lam = np.concatenate([rng.uniform(-0.99, 0.99, 200), [0.0, -0.5, 0.5]])
    for k in (0, 2, 3, 4):
        vector = skewt.partial_moments(k, eta, lam)
        scalar = [skewt.partial_moment(k, float(e), float(v)) for e, v in zip(eta, lam, strict=True)]
        assert np.array_equal(vector, scalar)  # the sampler's batch check must decide exactly like the scalar one
    probabilities = [skewt.prob_negative(float(e), float(v)) for e, v in zip(eta, lam, strict=True)]
    assert np.allclose(skewt.partial_moments(0, eta, lam), probabilities, rtol=1e-12)  # k = 0: P(z < 0) via the cdf
    assert np.allclose(skewt.moments(2, eta, lam), 1.0, rtol=1e-12)
    a, b, c = skewt.constants_array(eta, lam)
    k0 = skewt.hansen_constants(float(eta[0]), float(lam[0]))
    assert (a[0], b[0], c[0]) == pytest.approx((k0.a, k0.b, k0.c), rel=1e-14)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'eta' must be > 2"):
        skewt.hansen_constants(2.0, 0.0)
    with pytest.raises(ValueError, match="'lam' must satisfy"):
        skewt.hansen_constants(5.0, 1.0)
