"""Rough Heston by Fourier: the continuous model's and the iVi scheme's characteristic functions, CDF and quantiles.

Pure numpy (float64 / complex128); used by the reference generator ``make_rough_heston_quantiles.py`` and by the
accuracy measurements under ``benchmarks/accuracy/``. Convention of ``density_engine.models.rough_heston`` (kappa,
theta, sigma, rho, alpha = H + 1/2, v0; zero rates; X_T = log(S_T / S_0)).

Continuous model (El Euch & Rosenbaum 2019): phi(u) = E exp(i u X_T) = exp(kappa theta int_0^T h + v0 int_0^T F(h)),
where h = I^alpha F(h) (Riemann-Liouville integral), F(h) = -(u^2 + i u)/2 + (i rho sigma u - kappa) h + sigma^2 h^2/2.
Solved by the fractional Adams *product-trapezoid* rule (Diethelm et al. 2002) on a *graded* mesh t_k = T (k/n)^gamma:
F(h(s)) is replaced by its piecewise-linear interpolant on the mesh and the fractional integral of that is exact. The
step is *implicit*: h_k = S_k + w_kk F(h_k) is a quadratic in h_k, solved exactly (the root continuous in w_kk -> 0).
The explicit PECE predictor of the textbook scheme overflows at the large u that short horizons of very rough,
Feller-violating sets need (|phi(u)| decays slowly there); the implicit step does not, and the graded mesh resolves
the initial layer of h (time scale (sigma u)^(-1/alpha), far below T/n at large u) that a uniform mesh cannot.

iVi scheme (Abi Jaber et al., arXiv 2504.19885) is a *discrete affine Volterra* process: with k_i = Kbar(t_{i+1} - t_i)
the conditional law of the step given a_i is an inverse Gaussian in dU_i whose log-MGF is linear in a_i, and a_i is
linear in the past Y_j = (dU_j - a_j) / k_j. Hence its characteristic function is exact by a backward recursion
(derived here; checked against Monte Carlo of the production code in tests/models/test_rough_heston_accuracy.py):

    E exp(i u X_n) = exp(sum_i dg0_i phi_i),  phi_i = Phi_i(u, c_i),  c_i = sum_{m > i} M[m, i] phi_m   (i = n-1 .. 0)

(Phi_i: :func:`ivi_log_cf`), so the scheme's own CDF at any step count is available without Monte Carlo noise.

CDF by Gil-Pelaez, F(x) = 1/2 - 1/pi int_0^inf Im(exp(-i u x) phi(u)) / u du, by the midpoint rule with step
du = 2 pi / (2.5 (hi - lo)) (aliasing period 2.5 times the bracket [lo, hi] of the distribution) up to u_max where
|phi| has fallen below ``cf_tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gamma as gamma_fn

PARAM_ORDER = ("kappa", "theta", "sigma", "rho", "alpha", "v0")


@dataclass(frozen=True)
class RHParams:
    """A rough Heston parameter set (convention of the model module)."""

    kappa: float
    theta: float
    sigma: float
    rho: float
    alpha: float
    v0: float

    @classmethod
    def of(cls, values: dict[str, float]) -> RHParams:
        return cls(*(float(values[k]) for k in PARAM_ORDER))

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in PARAM_ORDER}


# ---- continuous model: implicit product-trapezoid Adams on a graded mesh --------------------------------------------


def graded_mesh(maturity: float, steps: int, grading: float) -> np.ndarray:
    """t_k = T (k / n)^grading, k = 0..n."""
    return maturity * (np.arange(steps + 1) / steps) ** grading


def product_trapezoid_weights(mesh: np.ndarray, alpha: float) -> np.ndarray:
    """W[k, j] such that I^alpha f(t_k) = sum_{j<=k} W[k, j] f(t_j) for f piecewise linear on the mesh (exact).

    Interval [t_j, t_{j+1}] seen from t_k (k > j): with r = t_k - s in [B, A], A = t_k - t_j, B = t_k - t_{j+1},
    I0 = (A^a - B^a)/a, I1 = (A^(a+1) - B^(a+1))/(a+1): weight of f_j = (I1 - B I0)/D, of f_{j+1} = (A I0 - I1)/D.
    (Cancellation costs at most log10(A/D) digits: ~1e-13 relative on a 2000-step uniform mesh.)
    """
    n = len(mesh) - 1
    a = alpha
    W = np.zeros((n + 1, n + 1))
    for k in range(1, n + 1):
        big = mesh[k] - mesh[:k]  # A_j, j = 0..k-1
        small = mesh[k] - mesh[1 : k + 1]  # B_j
        width = big - small
        # A^a - B^a = A^a (1 - (B/A)^a), written with expm1/log1p for B close to A
        ratio = small / big
        i0 = big**a * -np.expm1(a * np.log(ratio, where=ratio > 0, out=np.full_like(ratio, -np.inf))) / a
        i1 = big ** (a + 1) * -np.expm1((a + 1) * np.log(ratio, where=ratio > 0, out=np.full_like(ratio, -np.inf)))
        i1 /= a + 1
        left = (i1 - small * i0) / width
        right = (big * i0 - i1) / width
        W[k, :k] += left
        W[k, 1 : k + 1] += right
    return W / gamma_fn(alpha)


def _quadratic_root(a2: np.ndarray, b1: np.ndarray, c0: np.ndarray) -> np.ndarray:
    """The root of a2 h^2 - b1 h + c0 = 0 that tends to c0 / b1 as a2 -> 0 (no cancellation)."""
    disc = np.sqrt(b1 * b1 - 4.0 * a2 * c0)
    disc = np.where((np.conj(b1) * disc).real >= 0, disc, -disc)
    return 2.0 * c0 / (b1 + disc)


def riccati_coefficients(u: np.ndarray, p: RHParams) -> tuple[np.ndarray, np.ndarray, float]:
    """F(h) = A + B h + C h^2 for each u."""
    return -0.5 * (u * u + 1j * u), 1j * p.rho * p.sigma * u - p.kappa, 0.5 * p.sigma**2


@dataclass
class AdamsSolver:
    """Implicit product-trapezoid Adams on a graded mesh; weights shared by all u (one per (T, alpha, n, grading))."""

    maturity: float
    alpha: float
    steps: int = 800
    grading: float | None = None  # default 2 / alpha (optimal for the t^alpha singularity of F(h(t)))

    def __post_init__(self) -> None:
        g = self.grading if self.grading is not None else max(1.0, 2.0 / self.alpha)
        self.mesh = graded_mesh(self.maturity, self.steps, g)
        self.weights = product_trapezoid_weights(self.mesh, self.alpha)
        dt = np.diff(self.mesh)
        self.trap = np.zeros(self.steps + 1)  # trapezoid weights of int_0^T
        self.trap[:-1] += dt / 2
        self.trap[1:] += dt / 2

    def log_cf(self, u: np.ndarray, p: RHParams, batch: int = 4096) -> np.ndarray:
        """log E exp(i u X_T) for complex ``u`` (the exponent itself: no branch of the log is taken)."""
        if abs(p.alpha - self.alpha) > 0:
            raise ValueError("solver built for another alpha")
        u = np.atleast_1d(np.asarray(u, dtype=complex))
        out = np.empty(u.shape, dtype=complex)
        for s in range(0, u.size, batch):
            out[s : s + batch] = self._log_cf(u[s : s + batch], p)
        return out

    def _log_cf(self, u: np.ndarray, p: RHParams) -> np.ndarray:
        n, W = self.steps, self.weights
        A, B, C = riccati_coefficients(u, p)
        m = u.size
        # F values stored as real (n+1, 2m): one real GEMV per step
        f_ri = np.zeros((n + 1, 2 * m))
        h = np.zeros((n + 1, m), dtype=complex)
        f0 = A.astype(complex)
        f_ri[0, :m], f_ri[0, m:] = f0.real, f0.imag
        for k in range(1, n + 1):
            acc = W[k, :k] @ f_ri[:k]
            s_k = acc[:m] + 1j * acc[m:]
            w = W[k, k]
            hk = _quadratic_root(w * C * np.ones(m), 1.0 - w * B, s_k + w * A)
            h[k] = hk
            fk = A + (B + C * hk) * hk
            f_ri[k, :m], f_ri[k, m:] = fk.real, fk.imag
        f = f_ri[:, :m] + 1j * f_ri[:, m:]
        return p.kappa * p.theta * (self.trap @ h) + p.v0 * (self.trap @ f)


def heston_log_cf(u: np.ndarray, maturity: float, p: RHParams) -> np.ndarray:
    """Classical Heston (alpha = 1) log-CF of X_T, closed form ('little trap' of Albrecher et al. 2007)."""
    u = np.asarray(u, dtype=complex)
    beta = p.kappa - 1j * p.rho * p.sigma * u
    d = np.sqrt(beta**2 + p.sigma**2 * (u * u + 1j * u))
    g = (beta - d) / (beta + d)
    e = np.exp(-d * maturity)
    c_term = p.kappa * p.theta / p.sigma**2 * ((beta - d) * maturity - 2.0 * np.log((1.0 - g * e) / (1.0 - g)))
    d_term = (beta - d) / p.sigma**2 * (1.0 - e) / (1.0 - g * e)
    return c_term + d_term * p.v0


# ---- the iVi scheme's exact characteristic function ----------------------------------------------------------------


def ivi_log_cf(u: np.ndarray, grid: np.ndarray, p: RHParams) -> np.ndarray:
    """log E exp(i u X_n) of the iVi scheme on ``grid`` (t_0 = 0 < ... < t_n = T), exactly.

    Scheme (density_engine.models.rough_heston, here on any grid): k_i = Kbar(t_{i+1} - t_i),
    a_i = dg0_i + sum_{j<i} M[i, j] Y_j,  M[i, j] = Kbar(t_{i+1} - t_j) - Kbar(t_i - t_j),  Y_j = (dU_j - a_j) / k_j,
    dU_i ~ IG(mean a_i / (1 + kappa k_i), shape (a_i / (sigma k_i))^2), dZ_i = ((1 + kappa k_i) dU_i - a_i)/(sigma k_i),
    dX_i = -dU_i / 2 + rho dZ_i + sqrt(1 - rho^2) sqrt(dU_i) N_i.
    Given a_i, E exp(i u dX_i + c Y_i) = exp(a_i Phi_i(c)) with s = i u (rho (1 + kappa k)/(sigma k) - 1/2)
    - u^2 (1 - rho^2)/2 + c/k and Phi_i(c) = lam_mu (1 - sqrt(1 - 2 s mu2_lam)) - i u rho/(sigma k) - c/k, where
    lam_mu = (1 + kappa k)/(sigma k)^2 = shape/mean per unit a and mu2_lam = (sigma k)^2/(1 + kappa k)^2 = mean^2/shape
    (inverse-Gaussian log-MGF, linear in a_i). Backward: phi_i = Phi_i(c_i), c_i = sum_{m>i} M[m, i] phi_m.
    """
    u = np.atleast_1d(np.asarray(u, dtype=complex))
    t = np.asarray(grid, dtype=float)
    n = len(t) - 1
    a = p.alpha
    ga1 = math.gamma(a + 1.0)

    def kbar(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0) ** a / ga1

    g0 = p.v0 * t + p.kappa * p.theta * t ** (a + 1.0) / math.gamma(a + 2.0)
    dg0 = np.diff(g0)
    k = kbar(np.diff(t))
    # M[m, j] for j < m: Kbar(t_{m+1} - t_j) - Kbar(t_m - t_j)
    M = kbar(t[1:, None] - t[None, :-1]) - kbar(t[:-1, None] - t[None, :-1])
    M = np.tril(M, -1)
    one_plus = 1.0 + p.kappa * k
    lam_mu = one_plus / (p.sigma * k) ** 2
    mu2_lam = (p.sigma * k) ** 2 / one_plus**2
    rho_bar2 = 1.0 - p.rho**2
    phis = np.zeros((n, u.size), dtype=complex)
    for i in range(n - 1, -1, -1):
        c = M[i + 1 :, i] @ phis[i + 1 :] if i < n - 1 else np.zeros(u.size, dtype=complex)
        s = 1j * u * (p.rho * one_plus[i] / (p.sigma * k[i]) - 0.5) - 0.5 * u * u * rho_bar2 + c / k[i]
        root = np.sqrt(1.0 - 2.0 * s * mu2_lam[i])
        phis[i] = lam_mu[i] * (1.0 - root) - 1j * u * p.rho / (p.sigma * k[i]) - c / k[i]
    return dg0 @ phis


def uniform_grid(maturity: float, steps: int) -> np.ndarray:
    return np.linspace(0.0, maturity, steps + 1)


# ---- CDF and quantiles from a log-CF --------------------------------------------------------------------------------


@dataclass
class FourierCDF:
    """Gil-Pelaez CDF (and density) from log-CF values on the midpoint rule u_k = (k + 1/2) du, k < u_max / du.

    The midpoint rule of a Fourier integral aliases the distribution with period L = 2 pi / du (Poisson summation): for
    x in [lo, hi] its error is bounded by the probability mass farther than L - (hi - lo) from [lo, hi], negligible for
    L = 2.5 (hi - lo) and lo, hi in the far tails. Truncation at u_max adds at most 1/pi int_{u_max} |phi(u)|/u du."""

    nodes: np.ndarray
    weights: np.ndarray
    phi: np.ndarray

    @classmethod
    def build(cls, log_cf: Callable[[np.ndarray], np.ndarray], u_max: float, du: float) -> FourierCDF:
        nodes = (np.arange(max(1, math.ceil(u_max / du))) + 0.5) * du
        phi = np.exp(log_cf(nodes.astype(complex)))
        if not np.all(np.abs(phi) <= 1.0 + 1e-9):
            raise ValueError(f"|phi| > 1 at u = {nodes[np.abs(phi) > 1.0 + 1e-9][:3]}: CF solver failed")
        return cls(nodes, np.full(nodes.shape, du), phi)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_1d(np.asarray(x, dtype=float))
        out = np.empty(x.shape)
        scaled_w = self.weights / self.nodes
        for s in range(0, x.size, 128):
            xs = x[s : s + 128]
            integrand = np.imag(np.exp(-1j * np.outer(xs, self.nodes)) * self.phi[None, :])
            out[s : s + 128] = 0.5 - (integrand @ scaled_w) / np.pi
        return out

    def pdf(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_1d(np.asarray(x, dtype=float))
        out = np.empty(x.shape)
        for s in range(0, x.size, 128):
            xs = x[s : s + 128]
            integrand = np.real(np.exp(-1j * np.outer(xs, self.nodes)) * self.phi[None, :])
            out[s : s + 128] = (integrand @ self.weights) / np.pi
        return out

    def quantiles(self, levels: Sequence[float], lo: float, hi: float, tol: float = 1e-13) -> np.ndarray:
        """Invert F at ``levels`` inside [lo, hi]: bracketed Newton (bisection fallback), to |F(q) - p| < tol."""
        p = np.asarray(levels, dtype=float)
        a = np.full(p.shape, lo)
        b = np.full(p.shape, hi)
        fa, fb = self.cdf(a) - p, self.cdf(b) - p
        if np.any(fa > 0) or np.any(fb < 0):
            raise ValueError(f"bracket [{lo}, {hi}] does not contain all levels: F(lo)={fa[0] + p[0]:.3g}")
        # start from a linear interpolation on a coarse table
        grid = np.linspace(lo, hi, 4001)
        table = np.maximum.accumulate(self.cdf(grid))
        q = np.interp(p, table, grid)
        for _ in range(60):
            fq = self.cdf(q) - p
            if np.all(np.abs(fq) < tol):
                break
            a = np.where(fq < 0, np.maximum(a, q), a)
            b = np.where(fq > 0, np.minimum(b, q), b)
            dens = self.pdf(q)
            newton = q - fq / np.where(dens > 0, dens, np.inf)
            ok = (newton > a) & (newton < b) & np.isfinite(newton)
            q = np.where(np.abs(fq) < tol, q, np.where(ok, newton, 0.5 * (a + b)))
        return q


def decay_u_max(log_cf: Callable[[np.ndarray], np.ndarray], scale: float, tol: float) -> float:
    """First u of a geometric scan (from 0.5/scale, 10 points per decade) where |phi| < tol and stays below on the
    next three scan points (|phi| decays in the end; far beyond, the Adams roots are not needed and not trusted)."""
    u = np.geomspace(0.5 / scale, 1e7 / scale, 73)
    below = np.real(log_cf(u.astype(complex))) < math.log(tol)
    for i in range(len(u) - 3):
        if below[i : i + 4].all():
            return float(u[i])
    raise ValueError(f"|phi| has not decayed below {tol:g} by u = {u[-1]:.3g}")


def quantile_levels(num: int = 512) -> np.ndarray:
    return (np.arange(num) + 0.5) / num


TAIL_LEVELS = (1e-6, 1e-5, 1e-4, 3e-4, 6e-4)
"""Extra levels below the first published one (and 1 - these above the last) so that an interpolated reference CDF
covers every Monte Carlo quantile of the published levels."""


def table_levels(num: int = 512) -> np.ndarray:
    """The levels stored in a reference table: the published ones plus the tail levels on both sides."""
    tails = np.asarray(TAIL_LEVELS)
    return np.concatenate([tails, quantile_levels(num), 1.0 - tails[::-1]])


def moments_from_log_cf(log_cf: Callable[[np.ndarray], np.ndarray], scale: float) -> tuple[float, float]:
    """(mean, standard deviation) of X from the log-CF near u = 0 (central differences at u = +-eps)."""
    eps = 1e-3 / scale
    psi = log_cf(np.array([eps, -eps], dtype=complex))
    mean = float((psi[0].imag - psi[1].imag) / (2 * eps))
    var = float(-(psi[0].real + psi[1].real) / eps**2)
    return mean, math.sqrt(max(var, 0.0))


@dataclass
class CDFBuild:
    """A FourierCDF with the bracket it is valid on and how it was built."""

    cdf: FourierCDF
    lo: float
    hi: float
    u_max: float
    du: float
    mean: float
    sd: float


def find_bracket(
    log_cf: Callable[[np.ndarray], np.ndarray], scale_guess: float, tail_mass: float = 1e-7, cf_tol: float = 1e-10
) -> tuple[float, float]:
    """[lo, hi] with F(lo) < tail_mass and F(hi) > 1 - tail_mass (use a cheap, accurate-enough log_cf)."""
    mean, sd = moments_from_log_cf(log_cf, scale_guess)
    u_max = decay_u_max(log_cf, sd, cf_tol)
    lo, hi = mean - 10.0 * sd, mean + 10.0 * sd
    for _ in range(20):
        fc = FourierCDF.build(log_cf, u_max, 2.0 * math.pi / (2.5 * (hi - lo)))
        f_lo, f_hi = fc.cdf(np.array([lo, hi]))
        if f_lo < tail_mass and f_hi > 1.0 - tail_mass:
            return lo, hi
        if f_lo >= tail_mass:
            lo = mean - 1.5 * (mean - lo)
        if f_hi <= 1.0 - tail_mass:
            hi = mean + 1.5 * (hi - mean)
    raise ValueError("could not bracket the distribution")


def build_cdf(
    log_cf: Callable[[np.ndarray], np.ndarray],
    bracket: tuple[float, float],
    scale_guess: float,
    cf_tol: float = 1e-10,
    period_factor: float = 2.5,
) -> CDFBuild:
    """Midpoint-rule Gil-Pelaez CDF valid on ``bracket``: du = 2 pi / (period_factor (hi - lo)), u_max where |phi| falls
    below cf_tol (on a geometric scan)."""
    lo, hi = bracket
    mean, sd = moments_from_log_cf(log_cf, scale_guess)
    u_max = decay_u_max(log_cf, sd, cf_tol)
    du = 2.0 * math.pi / (period_factor * (hi - lo))
    return CDFBuild(FourierCDF.build(log_cf, u_max, du), lo, hi, u_max, du, mean, sd)


class ReferenceCDF:
    """A CDF interpolated from stored quantiles: monotone cubic (PCHIP) of z = Phi^-1(p) against q, F = Phi(z).

    Exact at the stored quantiles; between them its error is measured by the generator (stored per table). Beyond the
    outermost stored quantiles it extrapolates z linearly (F there is below the first stored level anyway)."""

    def __init__(self, levels: Sequence[float], quantiles: Sequence[float]) -> None:
        from scipy.interpolate import PchipInterpolator
        from scipy.stats import norm

        q = np.asarray(quantiles, dtype=float)
        z = norm.ppf(np.asarray(levels, dtype=float))
        if np.any(np.diff(q) <= 0):
            raise ValueError("stored quantiles must be strictly increasing")
        self._norm = norm
        self._q, self._z = q, z
        self._pchip = PchipInterpolator(q, z, extrapolate=False)
        self._slopes = ((z[1] - z[0]) / (q[1] - q[0]), (z[-1] - z[-2]) / (q[-1] - q[-2]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        z = self._pchip(x)
        z = np.where(x < self._q[0], self._z[0] + self._slopes[0] * (x - self._q[0]), z)
        z = np.where(x > self._q[-1], self._z[-1] + self._slopes[1] * (x - self._q[-1]), z)
        return self._norm.cdf(z)

    def quantile(self, levels: np.ndarray) -> np.ndarray:
        from scipy.interpolate import PchipInterpolator

        return PchipInterpolator(self._z, self._q)(self._norm.ppf(np.asarray(levels, dtype=float)))


# ---- the per-row discretisation-error column of the pipeline -------------------------------------------------------

#: Fractional Adams steps of the continuous CF for the error column (graded mesh; second order: the CF is within
#: ~1e-5 of the n = 1600 reference tables at n = 100, docs/accuracy.md "RH column").
COLUMN_ADAMS_STEPS = 100
#: |phi| below this at the Fourier cut-off of the error column (truncation error of the CDF difference ~ this).
COLUMN_CF_TOL = 1e-7


def richardson_weights(richardson: str) -> tuple[float, float]:
    """Weights (fine grid, half grid) of the published quantiles: ``independent`` 2 q_N - q_{N/2}, ``none`` q_N."""
    if richardson == "independent":
        return 2.0, -1.0
    if richardson == "none":
        return 1.0, 0.0
    raise ValueError(f"rough Heston has no Richardson mode {richardson!r} (independent, none)")


def discretisation_error(
    params: dict[str, float] | RHParams,
    maturity: float,
    fine_steps: int,
    richardson: str,
    x: np.ndarray,
    bracket: tuple[float, float],
    adams_steps: int = COLUMN_ADAMS_STEPS,
    cf_tol: float = COLUMN_CF_TOL,
) -> np.ndarray:
    """The CDF error of the published quantiles of one row, exactly up to second order and Fourier accuracy.

    The published quantile at level p is q(p) = w_f q_N(p) + w_c q_{N/2}(p) (:func:`richardson_weights`; q_N: the iVi
    scheme on N = ``fine_steps`` uniform steps to ``maturity``). To first order in the scheme's CDF error,
    F_cont(q(p)) - p = -(w_f F_N + w_c F_{N/2} - F_cont)(q(p)), and that combination of CDFs is one Gil-Pelaez
    integral of w_f phi_N + w_c phi_{N/2} - phi_cont: the schemes' CFs exactly (:func:`ivi_log_cf`), the continuous one
    by the graded implicit Adams solver. Returns |.| at ``x`` (the row's published quantiles). ``bracket`` must hold
    all but a negligible mass of X_T (the aliasing period is 2.5 times its width); the sample's extremes do.
    """
    p = params if isinstance(params, RHParams) else RHParams.of(params)
    w_fine, w_half = richardson_weights(richardson)
    fine = uniform_grid(maturity, fine_steps)
    half = uniform_grid(maturity, fine_steps // 2) if w_half else None
    solver = AdamsSolver(maturity, p.alpha, adams_steps)

    def log_cf_cont(u: np.ndarray) -> np.ndarray:
        return solver.log_cf(u, p)

    lo, hi = bracket
    scale = max(hi - lo, 1e-12) / 10.0
    u_max = max(decay_u_max(log_cf_cont, scale, cf_tol), decay_u_max(lambda u: ivi_log_cf(u, fine, p), scale, cf_tol))
    du = 2.0 * math.pi / (2.5 * (hi - lo))
    nodes = (np.arange(max(1, math.ceil(u_max / du))) + 0.5) * du
    u = nodes.astype(complex)
    combined = w_fine * np.exp(ivi_log_cf(u, fine, p)) - np.exp(log_cf_cont(u))
    if half is not None:
        combined += w_half * np.exp(ivi_log_cf(u, half, p))
    difference = FourierCDF(nodes, np.full(nodes.shape, du), combined).cdf(np.asarray(x, dtype=float)) - 0.5
    return np.abs(difference)
