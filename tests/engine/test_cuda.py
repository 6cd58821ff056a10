"""The CUDA code path: the same references and reproducibility promises as on CPU, on a GPU, and the same streams.

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
from density_engine.engine.counters import philox_key
from density_engine.engine.paths import simulate_horizons
from density_engine.engine.quantiles import sample_quantiles, summarize
from density_engine.engine.rng import step_words, uniform_from_word
from density_engine.engine.runner import run_chunk
from density_engine.models import get_model_class, skewt
from tests.engine.conftest import G1, RB, RH, make_spec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

MODELS = [
    ("gjrgarch_normalized", G1),
    ("rough_bergomi", RB),
    ("rough_bergomi", {**RB, "scheme": "cell"}),  # the cell-average scheme's kernel
    ("rough_heston", RH),
]
HORIZONS = [3, 41, 71]  # beyond two history groups


def _simulate(model: str, params: dict, num_paths: int, device: str, **options) -> torch.Tensor:
    return simulate_horizons(get_model_class(model)(**params), HORIZONS, num_paths, 11, 4, device=device, **options)


def test_words_and_uniforms_are_identical_on_cpu_and_cuda() -> None:
    """The integer words and the uniforms of a stream are bit-identical on CPU and CUDA (eager and compiled)."""
    k0, k1 = philox_key(20260101, 7)
    paths = torch.arange(3_000_000, dtype=torch.int64)
    for step in (0, 251):
        cpu = step_words(paths, step, 2, 0, k0, k1)
        cuda = step_words(paths.cuda(), step, 2, 0, k0, k1)
        for a, b in zip(cpu, cuda, strict=True):
            assert torch.equal(a, b.cpu())
            for dtype in (torch.float32, torch.float64):
                assert torch.equal(uniform_from_word(a, dtype), uniform_from_word(b, dtype).cpu())

    def words(p: torch.Tensor) -> torch.Tensor:
        return torch.stack(step_words(p, 5, 1, 3, k0, k1))

    compiled = torch.compile(words, dynamic=True, fullgraph=True)
    assert torch.equal(compiled(paths.cuda()).cpu(), words(paths))


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize(("model", "params"), MODELS)
def test_rerun_and_block_size_give_identical_bits_on_cuda(model: str, params: dict, compiled: bool) -> None:
    """Blocks of 64 paths vs one block, and a rerun: identical bits (eager and compiled step kernels)."""
    num_paths = 20_000
    outputs = [_simulate(model, params, num_paths, "cuda", memory_budget_bytes=b, compiled=compiled).cpu()
               for b in (1, None, None)]  # fmt: skip
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[1], outputs[2])


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_cuda_paths_equal_cpu_paths_to_rounding(model: str, params: dict) -> None:
    """Same uniforms on both devices, so every path agrees up to the rounding of log/cos/exp/sqrt: max |difference|
    below 1e-4 of the sample's range after 71 steps (float32), eager and compiled."""
    for compiled in (False, True):
        cpu = _simulate(model, params, 4096, "cpu", compiled=compiled)
        cuda = _simulate(model, params, 4096, "cuda", compiled=compiled).cpu()
        scale = float(cpu.abs().max())
        assert float((cpu - cuda).abs().max()) <= 1e-4 * scale, (model, compiled)


def test_garch_one_step_quantiles_on_cuda() -> None:
    """q_p(R_1) = sqrt(sigma0_sq) F_z^-1(p); 4.5 asymptotic order-statistic standard errors (9 levels)."""
    n = 1_000_000
    samples = simulate_horizons(get_model_class("gjrgarch_normalized")(**G1), [1], n, 5, device="cuda")
    q = sample_quantiles(samples, 512)[0].double().cpu().numpy()
    levels = (np.arange(512) + 0.5) / 512
    scale = math.sqrt(G1["sigma0_sq"])
    for j in (0, 5, 51, 128, 256, 384, 460, 506, 511):
        p = levels[j]
        exact = scale * float(skewt.ppf(p, G1["eta"], G1["lam"]))
        density = float(skewt.pdf(exact / scale, G1["eta"], G1["lam"])) / scale
        assert abs(q[j] - exact) < 4.5 * math.sqrt(p * (1 - p) / n) / density, (p, q[j], exact)


def test_rough_bergomi_martingale_on_cuda() -> None:
    """E[exp(X_t)] = 1 exactly in discrete time; 4.5 sample standard errors per horizon (float32, 1M paths x 26
    steps: compiled step kernels)."""
    model = get_model_class("rough_bergomi")(dt=0.25 / 26, **RB)
    growth = torch.exp(simulate_horizons(model, [1, 13, 26], 1_000_000, 21, device="cuda").double())
    mean = growth.mean(dim=1).cpu().numpy()
    se = (growth.std(dim=1) / math.sqrt(growth.shape[1])).cpu().numpy()
    assert np.all(np.abs(mean - 1) < 4.5 * se), (mean - 1, se)


def test_quantile_stage_on_cuda_equals_cpu() -> None:
    """Order statistics are exact: the same samples give the same quantiles on both devices; moments to 1e-12."""
    gen = torch.Generator().manual_seed(1)
    samples = torch.randn(3, 2**20 + 17, generator=gen)
    cpu, cuda = summarize(samples, 512), summarize(samples.cuda(), 512)
    assert torch.equal(cpu.quantiles, cuda.quantiles.cpu())
    for name in ("mean", "std", "skew", "kurt"):
        assert np.allclose(getattr(cpu, name), getattr(cuda, name), rtol=1e-12, atol=1e-12)


def test_chunk_on_cuda_matches_cpu() -> None:
    """A chunk per model on both devices: the device is recorded, quantiles agree to 1e-4 of their range."""
    for model, params in MODELS:
        spec = parse_spec(make_spec(model, [{"param_id": 0, "params": params}], num_paths=20_000, num_quantiles=64))
        cpu = run_chunk(spec, device="cpu").table
        cuda = run_chunk(spec, device="cuda").table
        assert cuda.schema.metadata[b"device"].decode().startswith('"cuda (')
        q_cpu = np.asarray(cpu.column("quantiles").to_pylist())
        q_gpu = np.asarray(cuda.column("quantiles").to_pylist())
        assert np.abs(q_cpu - q_gpu).max() <= 1e-4 * np.abs(q_cpu).max(), model


def test_tf32_stays_off_on_cuda() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    spec = make_spec("rough_heston", [{"param_id": 0, "params": RH}], num_paths=1000, horizons=[1, 5])
    run_chunk(parse_spec(spec), device="cuda")
    assert not torch.backends.cuda.matmul.allow_tf32
