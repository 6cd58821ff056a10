"""GJR-GARCH skew-t against independent references: exact 1-step quantiles, closed-form Var(R_H), 2-step CDF by
quadrature, persistence with skewed innovations, and domain errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from density_engine.engine.paths import simulate_horizons
from density_engine.engine.quantiles import sample_quantiles
from density_engine.models import get_model_class, skewt
from density_engine.models.gjrgarch import persistence
from tests.models.conftest import G1

GJR = get_model_class("gjrgarch_normalized")


def test_persistence_uses_partial_moment_not_one_half() -> None:
    # models.md set G1: P = 0.957263 (gamma/2 would give 0.95), omega = 0.042737
    m = GJR(**G1)
    assert m.persistence == pytest.approx(0.957263, abs=1e-6)
    assert m.omega == pytest.approx(0.042737, abs=1e-6)
    symmetric = persistence(0.05, 0.10, 0.85, 6.0, 0.0)
    assert symmetric == pytest.approx(0.95, abs=1e-10)  # lam = 0: E[z^2 1{z<0}] = 1/2


def test_one_step_quantiles_are_scaled_skewt_quantiles() -> None:
    """R_1 = sqrt(sigma0_sq) z exactly, so q_p(R_1) = sqrt(sigma0_sq) F_z^{-1}(p). Tolerance: 4.5 asymptotic standard
    errors of an order statistic, sqrt(p(1-p)/N) / f(q_p), f the density of R_1 (9 levels: family-wise false-alarm
    probability < 1e-4)."""
    n = 400_000
    q = sample_quantiles(simulate_horizons(GJR(**G1), [1], n, seed=5), 512)[0].double().numpy()
    levels = (np.arange(512) + 0.5) / 512
    scale = math.sqrt(G1["sigma0_sq"])
    for j in (0, 5, 51, 128, 256, 384, 460, 506, 511):
        p = levels[j]
        exact = scale * float(skewt.ppf(p, 6.0, -0.2))
        density = float(skewt.pdf(exact / scale, 6.0, -0.2)) / scale
        se = math.sqrt(p * (1 - p) / n) / density
        assert abs(q[j] - exact) < 4.5 * se, (p, q[j], exact, se)


def test_variance_of_cumulative_return_closed_form() -> None:
    """Var(R_H) = H + (sigma0_sq - 1)(1 - P^H)/(1 - P) (E h_t = 1 + P^(t-1)(sigma0_sq - 1)). Tolerance: 5 standard
    errors of the sample variance, sqrt((m4 - m2^2)/N) with m4, m2 estimated from the same sample."""
    params = {"alpha": 0.03, "gamma": 0.05, "beta": 0.90, "eta": 10.0, "lam": -0.1, "sigma0_sq": 1.8}  # finite m4
    n = 200_000
    m = GJR(**params)
    horizons = [1, 5, 20]
    samples = simulate_horizons(m, horizons, n, seed=9).double().numpy()
    p = m.persistence
    for row, h in enumerate(horizons):
        exact = h + (params["sigma0_sq"] - 1) * (1 - p**h) / (1 - p)
        x = samples[row] - samples[row].mean()
        m2, m4 = (x**2).mean(), (x**4).mean()
        se = math.sqrt((m4 - m2**2) / n)
        assert abs(m2 - exact) < 5 * se, (h, m2, exact, se)
        assert abs(samples[row].mean()) < 5 * math.sqrt(m2 / n)  # E R_H = 0


def two_step_cdf(x: float, params: dict[str, float]) -> float:
    """P(R_2 <= x) = E_{z1}[F_z((x - sqrt(h1) z1) / sqrt(h2(z1)))] by adaptive quadrature over z1."""
    eta, lam, h1 = params["eta"], params["lam"], params["sigma0_sq"]
    omega = 1 - persistence(params["alpha"], params["gamma"], params["beta"], eta, lam)

    def integrand(z1: float) -> float:
        coef = params["alpha"] + (params["gamma"] if z1 < 0 else 0.0)
        h2 = omega + coef * h1 * z1 * z1 + params["beta"] * h1
        return float(skewt.pdf(z1, eta, lam) * skewt.cdf((x - math.sqrt(h1) * z1) / math.sqrt(h2), eta, lam))

    split = skewt.hansen_constants(eta, lam).mode_split
    parts = [(-np.inf, split), (split, 0.0), (0.0, np.inf)]
    return sum(integrate.quad(integrand, a, b, limit=200, epsabs=1e-12)[0] for a, b in parts)


def test_two_step_cdf_by_quadrature() -> None:
    """Empirical CDF of R_2 vs quadrature; tolerance 4.5 binomial standard errors sqrt(F(1-F)/N)."""
    xs = [-4.0, -2.0, 0.0, 2.0, 3.5]
    reference = [0.020414, 0.109191, 0.469753, 0.902095, 0.985764]  # models.md set G1 (6 digits)
    exact = [two_step_cdf(x, G1) for x in xs]
    assert np.allclose(exact, reference, atol=1e-6)
    n = 300_000
    r2 = simulate_horizons(GJR(**G1), [2], n, seed=13)[0].double().numpy()
    for x, f in zip(xs, exact, strict=True):
        empirical = float((r2 <= x).mean())
        assert abs(empirical - f) < 4.5 * math.sqrt(f * (1 - f) / n), (x, empirical, f)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"beta": 0.93}, "persistence .* must be < 1, got 1.0"),
        ({"eta": 2.0}, "'eta' must be > 2"),
        ({"lam": -1.0}, "'lam' must be > -1"),
        ({"lam": 1.0}, "'lam' must be < 1"),
        ({"sigma0_sq": 0.0}, "'sigma0_sq' must be > 0"),
        ({"alpha": -0.01}, "'alpha' must be >= 0"),
        ({"gamma": -0.2}, "'alpha' \\+ 'gamma' must be >= 0"),
        ({"beta": float("inf")}, "'beta' must be finite"),
    ],
)
def test_invalid_parameters(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GJR(**{**G1, **change})
