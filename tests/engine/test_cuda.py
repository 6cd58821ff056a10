"""The CUDA code path: the same references and reproducibility promises as on CPU, on a GPU.

Skipped where no CUDA device exists (CI has none). Run on a GPU host with
``python -m pytest -q tests/engine/test_cuda.py`` (docs/engine.md, "CUDA"). Tolerances: as in the CPU tests, each
stated next to its assertion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from density_engine.engine.chunkio import parse_spec
from density_engine.engine.rng import RNG_SUBBLOCK_PATHS
from density_engine.engine.runner import run_chunk
from density_engine.models import get_model_class, skewt
from tests.engine.conftest import G1, RB, RH, make_spec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

MODELS = [("gjrgarch_normalized", G1), ("rough_bergomi", RB), ("rough_heston", RH)]


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_rerun_and_block_size_give_identical_bits_on_cuda(model: str, params: dict) -> None:
    """Budget of one sub-block per block vs the default (all paths in one block), and a rerun: identical bits."""
    num_paths = 3 * RNG_SUBBLOCK_PATHS + 123
    outputs = []
    for budget in (1, None, None):
        m = get_model_class(model)(device="cuda", seed=11, param_id=4, memory_budget_bytes=budget, **params)
        m.reset(num_paths)
        outputs.append(m.simulate_horizons([3, 12]).cpu())
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[1], outputs[2])


def test_garch_one_step_quantiles_on_cuda() -> None:
    """q_p(R_1) = sqrt(sigma0_sq) F_z^-1(p); 4.5 asymptotic order-statistic standard errors (9 levels)."""
    n = 1_000_000
    m = get_model_class("gjrgarch_normalized")(device="cuda", seed=5, **G1)
    m.reset(n)
    q = m.path_quantiles([1], 512)[0].double().cpu().numpy()
    levels = (np.arange(512) + 0.5) / 512
    scale = math.sqrt(G1["sigma0_sq"])
    for j in (0, 5, 51, 128, 256, 384, 460, 506, 511):
        p = levels[j]
        exact = scale * float(skewt.ppf(p, G1["eta"], G1["lam"]))
        density = float(skewt.pdf(exact / scale, G1["eta"], G1["lam"])) / scale
        assert abs(q[j] - exact) < 4.5 * math.sqrt(p * (1 - p) / n) / density, (p, q[j], exact)


def test_rough_bergomi_martingale_on_cuda() -> None:
    """E[exp(X_t)] = 1 exactly in discrete time; 4.5 sample standard errors per horizon (float32, 1M paths)."""
    m = get_model_class("rough_bergomi")(device="cuda", seed=21, dt=0.25 / 26, **RB)
    m.reset(1_000_000)
    growth = torch.exp(m.simulate_horizons([1, 13, 26]).double())
    mean = growth.mean(dim=1).cpu().numpy()
    se = (growth.std(dim=1) / math.sqrt(growth.shape[1])).cpu().numpy()
    assert np.all(np.abs(mean - 1) < 4.5 * se), (mean - 1, se)


def test_chunk_on_cuda_is_statistically_equivalent_to_cpu() -> None:
    """CPU and CUDA streams differ (mt19937 vs Philox), so compare distributions: every model's median and
    interquartile quantiles at horizon 5 agree within 5 standard errors of the difference of two independent
    order statistics (density estimated from the pooled quantiles)."""
    n = 200_000
    for model, params in MODELS:
        spec = parse_spec(make_spec(model, [{"param_id": 0, "params": params}], num_paths=n, num_quantiles=64))
        cpu = run_chunk(spec, device="cpu").table
        cuda = run_chunk(spec, device="cuda").table
        assert cuda.schema.metadata[b"device"].decode().startswith('"cuda (')
        q_cpu = np.asarray(cpu.column("quantiles")[1].as_py())
        q_gpu = np.asarray(cuda.column("quantiles")[1].as_py())
        levels = (np.arange(64) + 0.5) / 64
        for j in (16, 32, 47):
            p = levels[j]
            density = (levels[j + 1] - levels[j - 1]) / max(q_cpu[j + 1] - q_cpu[j - 1], 1e-12)
            se = math.sqrt(2 * p * (1 - p) / n) / density
            assert abs(q_cpu[j] - q_gpu[j]) < 5 * se, (model, p, q_cpu[j], q_gpu[j], se)


def test_tf32_stays_off_on_cuda() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    spec = make_spec("rough_heston", [{"param_id": 0, "params": RH}], num_paths=1000, horizons=[1, 5])
    run_chunk(parse_spec(spec), device="cuda")
    assert not torch.backends.cuda.matmul.allow_tf32
