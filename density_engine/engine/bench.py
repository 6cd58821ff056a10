"""Throughput benchmark (``density-engine bench``): path-steps/s per model, size and device, and the quantile step.

Not a test: figures depend on the machine and its load. Recorded figures live in docs/engine.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from density_engine.engine.paths import simulate_horizons
from density_engine.engine.quantiles import sample_moments, sample_quantiles
from density_engine.engine.runner import device_description
from density_engine.models import get_model_class
from density_engine.models.base import resolve_device

BENCH_PARAMS: dict[str, dict[str, float]] = {
    # reference sets of docs/engine.md (set G1, McCrickerd-Pakkanen, rough Heston set A)
    "gjrgarch_normalized": {"alpha": 0.05, "gamma": 0.10, "beta": 0.85, "eta": 6.0, "lam": -0.2, "sigma0_sq": 1.5},
    "rough_bergomi": {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2},
    "rough_heston": {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02},
}


def bench_params(name: str) -> dict[str, float]:
    """The benchmark parameter set of a model (a reference set, or the midpoints of the default ranges)."""
    if name in BENCH_PARAMS:
        return dict(BENCH_PARAMS[name])
    return {p.name: 0.5 * (p.default_range[0] + p.default_range[1]) for p in get_model_class(name).parameters}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def time_simulation(
    name: str, num_paths: int, steps: int, device: torch.device, dtype: torch.dtype, **settings: Any
) -> tuple[float, float, torch.Tensor]:
    """Wall seconds and process CPU seconds to simulate ``num_paths`` x ``steps`` (one horizon), and the samples."""
    model = get_model_class(name)(device=device, seed=1, dtype=dtype, **bench_params(name), **settings)
    model.reset(num_paths)
    _sync(device)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    samples = simulate_horizons(model, [steps])
    _sync(device)
    return time.perf_counter() - start, _cpu_seconds() - cpu_start, samples


def run_bench(names: Sequence[str], sizes: Sequence[int], steps: int, device: str, dtype: torch.dtype) -> Iterator[str]:
    """Yield report lines: one per (model, size) with path-steps/s (wall and per process CPU second: on a shared
    machine, the second times the core count estimates the unloaded figure) and the quantile/moment times."""
    dev = resolve_device(device)
    yield f"# device {device_description(dev)}, torch {torch.__version__}, {dtype}"
    yield (
        f"{'model':<22}{'paths':>10}{'steps':>7}{'sim s':>9}{'path-steps/s':>14}{'per cpu-s':>12}"
        f"{'quantiles s':>13}{'moments s':>11}"
    )
    for name in names:
        time_simulation(name, min(sizes), min(steps, 8), dev, dtype)  # warm-up (allocations, kernels)
        for n in sizes:
            seconds, cpu_seconds, samples = time_simulation(name, n, steps, dev, dtype)
            t0 = time.perf_counter()
            sample_quantiles(samples, 512)
            _sync(dev)
            t1 = time.perf_counter()
            sample_moments(samples)
            t2 = time.perf_counter()
            rate = n * steps / seconds
            per_cpu = n * steps / max(cpu_seconds, 1e-9)
            yield (
                f"{name:<22}{n:>10}{steps:>7}{seconds:>9.3f}{rate:>14.3g}{per_cpu:>12.3g}"
                f"{t1 - t0:>13.3f}{t2 - t1:>11.3f}"
            )
