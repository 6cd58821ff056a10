"""The prototypes in schemes.py reproduce the production models when fed the same random numbers (float64).

python -m benchmarks.accuracy.check_prototypes
"""

from __future__ import annotations

import torch

from benchmarks.accuracy.schemes import ivi, rb_hybrid
from density_engine.engine.rng import RandomStream
from density_engine.models.rough_bergomi import RoughBergomi
from density_engine.models.rough_heston import RoughHeston
from density_engine.models.rough_heston_fourier import RHParams
from tests.models.rough_bergomi_exact import RBParams

PATHS = 4096


def stream(seed: int) -> RandomStream:
    return RandomStream(seed, 0, 0, PATHS, PATHS, dtype=torch.float64)


def check_rough_heston() -> float:
    params = {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02}
    n, maturity = 40, 5 / 252
    model = RoughHeston(device="cpu", seed=1, dtype=torch.float64, dt=maturity / n, substeps=1, **params)
    production = model.simulate_block(stream(5), [n])[0]
    s = stream(5)
    normals = s.normal(2, n).view(2, n, PATHS)
    uniforms = s.uniform(n).view(n, PATHS)
    out = ivi(RHParams.of(params), torch.linspace(0, maturity, n + 1, dtype=torch.float64), normals, uniforms)
    return float((out.x - production).abs().max())


def check_rough_bergomi() -> float:
    params = {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2}
    n, maturity = 48, 5 / 252
    model = RoughBergomi(device="cpu", seed=1, dtype=torch.float64, dt=maturity / n, substeps=1, **params)
    production = model.simulate_block(stream(7), [n])[0]
    s = stream(7)
    z1, z2, z3 = s.normal(n), s.normal(n), s.normal(n)
    out = rb_hybrid(RBParams.of(params), maturity, z1, z2, z3, strides=(1, 2))
    return float((out.x - production).abs().max())


if __name__ == "__main__":
    print(f"rough Heston iVi prototype vs production: max |dX| = {check_rough_heston():.2e}")
    print(f"rough Bergomi hybrid prototype vs production: max |dX| = {check_rough_bergomi():.2e}")
