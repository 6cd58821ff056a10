"""Idiomatic vectorised NumPy implementations of the engine's three schemes: the peers of the CPU targets
(benchmarks/targets.py). Same schemes and float32 like the engine, NumPy's own generator (PCG64) for the random
numbers, vectorised over paths, a Python loop over time steps where the scheme is a recursion.

* GJR-GARCH: per step two uniforms, the skew-t transform (Bailey's polar t + Hansen composition), the recursion.
* rough Bergomi: all normals of a block of paths at once, the Volterra part of Y as one matmul with the Toeplitz
  matrix of the hybrid weights (BLAS), the log-Euler increments and a cumulative sum (McCrickerd-Pakkanen style).
* rough Heston (iVi): per step the Volterra sum as a matrix-vector product over the history so far (BLAS), the
  inverse-Gaussian draw by Michael-Schucany-Haas, the log-price update.

They are not part of the package or the default test run; tests/perf/test_numpy_peers.py checks they simulate the
same distributions as the engine (run with ``python -m pytest tests/perf``).
"""

from __future__ import annotations

import math

import numpy as np

from density_engine.models.gjrgarch import GJRGarchNormalized
from density_engine.models.rough_bergomi import RoughBergomi
from density_engine.models.rough_heston import RoughHeston

F32 = np.float32


def gjrgarch(params: dict[str, float], num_paths: int, steps: int, seed: int = 0) -> np.ndarray:
    """Cumulative returns after ``steps`` steps, float32 (num_paths,)."""
    model = GJRGarchNormalized(**params)
    c = {k: F32(v) for k, v in model.scheme_tables(model.fine_grid(steps)).scalars.items()}
    rng = np.random.default_rng(seed)
    h = np.full(num_paths, F32(params["sigma0_sq"]), dtype=F32)
    x = np.zeros(num_paths, dtype=F32)
    for _ in range(steps):
        u = rng.random((2, num_paths), dtype=F32)
        d = u[0] - c["branch_split"]
        w = np.where(d < 0, c["w_neg"], c["w_pos"])
        radius = np.sqrt(np.expm1(np.log1p(-u[1]) * c["neg_two_over_eta"]) * c["radius_scale"])
        z = radius * np.cos(d / w) * w - c["a_over_b"]
        x += np.sqrt(h) * z
        negative = np.minimum(z, F32(0))
        h = h * (z * z * c["alpha"] + c["beta"] + negative * negative * c["gamma"]) + c["omega"]
    return x


def rough_bergomi(params: dict[str, float], num_paths: int, steps: int, dt: float, seed: int = 0,
                  block: int = 65536) -> np.ndarray:  # fmt: skip
    """Log-returns after ``steps`` steps of ``dt``, float32 (num_paths,), in blocks of ``block`` paths."""
    model = RoughBergomi(**params, dt=dt)
    tables = model.scheme_tables(model.fine_grid(steps))
    c = {k: F32(v) for k, v in tables.scalars.items()}
    toeplitz = tables.volterra.T.astype(F32)  # [j, i]: weight of z1_j in Y_i
    compensator = tables.per_step["compensator"].astype(F32)
    rng = np.random.default_rng(seed)
    out = np.empty(num_paths, dtype=F32)
    for start in range(0, num_paths, block):
        n = min(block, num_paths - start)
        z1, z2, z3 = (rng.standard_normal((n, steps), dtype=F32) for _ in range(3))
        y = (z1 @ toeplitz) * c["sqrt_h"]
        y[:, 1:] += z1[:, :-1] * c["wt_on_z1"] + z2[:, :-1] * c["wt_on_z2"]
        vol = np.exp((y * c["eta"] - compensator + c["log_xi0"]) * F32(0.5))
        increments = (z1 * c["rho"] + z3 * c["rho_perp"]) * vol * c["sqrt_h"] - vol * vol * c["half_h"]
        out[start : start + n] = increments.sum(axis=1, dtype=F32)
    return out


def rough_heston(params: dict[str, float], num_paths: int, steps: int, dt: float, seed: int = 0) -> np.ndarray:
    """Log-returns after ``steps`` iVi steps of ``dt``, float32 (num_paths,)."""
    model = RoughHeston(**params, dt=dt)
    tables = model.scheme_tables(model.fine_grid(steps))
    c = {k: F32(v) for k, v in tables.scalars.items()}
    weights = np.ascontiguousarray(tables.volterra, dtype=F32)  # [i, j] = w_{i-j}
    g0 = tables.per_step["g0_increment"].astype(F32)
    rng = np.random.default_rng(seed)
    history = np.empty((steps, num_paths), dtype=F32)  # D_j = dU_j - a_j, time-major
    x = np.zeros(num_paths, dtype=F32)
    for i in range(steps):
        a = g0[i] + weights[i, :i] @ history[:i] if i else np.full(num_paths, g0[0], dtype=F32)
        a = np.maximum(a, c["a_floor"])
        normal = rng.standard_normal((2, num_paths), dtype=F32)
        uniform = rng.random(num_paths, dtype=F32)
        ig_a = normal[0] * normal[0] * c["ig_scale"] / a
        r = np.sqrt((ig_a + F32(2)) * ig_a) + ig_a + F32(1)
        mu = a * c["inv_one_plus"]
        d_u = np.where(uniform * (r + F32(1)) <= r, mu / r, mu * r)
        history[i] = d_u - a
        x += d_u * c["du_coef"] + a * c["a_coef"] + np.sqrt(d_u) * normal[1] * c["rho_perp"]
    return x


PEERS = {"gjrgarch_normalized": gjrgarch, "rough_bergomi": rough_bergomi, "rough_heston": rough_heston}


def run_peer(name: str, params: dict[str, float], num_paths: int, steps: int, seed: int = 0) -> np.ndarray:
    """The peer of model ``name`` (daily steps for the rough models)."""
    if name == "gjrgarch_normalized":
        return gjrgarch(params, num_paths, steps, seed)
    return PEERS[name](params, num_paths, steps, 1.0 / 252.0, seed)


__all__ = ["PEERS", "math", "run_peer"]
