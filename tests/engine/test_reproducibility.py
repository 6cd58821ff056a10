"""Reproducibility: a parameter set's result is a pure function of (model, params, seed, param_id, num_paths, dt,
substeps, horizons) on one device type: bit-equal on rerun, for any block size, chunk, or position in a chunk."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from density_engine.engine.chunkio import parse_spec
from density_engine.engine.rng import RNG_SUBBLOCK_PATHS
from density_engine.engine.runner import run_chunk
from density_engine.models import get_model_class
from tests.engine.conftest import G1, G2, RB, RH, make_spec

MODELS = [("gjrgarch_normalized", G1), ("rough_bergomi", RB), ("rough_heston", RH)]

DATA_COLUMNS = ["param_id", "horizon", "quantiles", "mean", "std", "skew", "kurt"]


def _rows(table: pa.Table, param_id: int) -> pa.Table:
    return table.filter(pa.compute.equal(table.column("param_id"), param_id)).select(DATA_COLUMNS)


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_block_size_invariance(model: str, params: dict) -> None:
    """Tiny budget (one RNG sub-block per block) vs the default (all paths in one block): identical bits."""
    num_paths = 2 * RNG_SUBBLOCK_PATHS + 1000
    outputs = []
    for budget in (1, None):
        m = get_model_class(model)(device="cpu", seed=11, param_id=4, memory_budget_bytes=budget, **params)
        m.reset(num_paths)
        outputs.append(m.simulate_horizons([3, 12]))
    assert outputs[0].shape == (2, num_paths)
    assert torch.equal(outputs[0], outputs[1])


def test_rerun_and_chunk_position_invariance() -> None:
    other = {**G2, "lam": 0.05}
    spec_a = parse_spec(make_spec(num_paths=5000, chunk_id=0))
    sets_b = [{"param_id": 7, "params": other}, {"param_id": 12, "params": G1}, {"param_id": 2, "params": G2}]
    spec_b = parse_spec(make_spec(num_paths=5000, chunk_id=9, parameter_sets=sets_b))
    first = run_chunk(spec_a, device="cpu").table
    again = run_chunk(spec_a, device="cpu").table
    moved = run_chunk(spec_b, device="cpu").table
    assert first.select(DATA_COLUMNS).equals(again.select(DATA_COLUMNS))
    assert _rows(first, 12).equals(_rows(moved, 12))  # G1 first in chunk 0, second in chunk 9
    assert not _rows(first, 3).equals(_rows(moved, 2).set_column(0, "param_id", _rows(first, 3).column(0)))


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_chunk_position_invariance_for_every_model(model: str, params: dict) -> None:
    """A parameter set gives the same rows alone in chunk 0 and as the second set of chunk 5 (stream from
    (seed, param_id) only), for every model."""
    moved_params = {**params, params_key(model): params[params_key(model)] * 0.9}
    alone = make_spec(model, [{"param_id": 4, "params": params}], num_paths=3000, chunk_id=0, horizons=[1, 5])
    second = make_spec(
        model,
        [{"param_id": 9, "params": moved_params}, {"param_id": 4, "params": params}],
        num_paths=3000,
        chunk_id=5,
        horizons=[1, 5],
    )
    first = run_chunk(parse_spec(alone), device="cpu").table
    moved = run_chunk(parse_spec(second), device="cpu").table
    assert _rows(first, 4).equals(_rows(moved, 4))
    assert not _rows(moved, 9).column("quantiles").equals(_rows(moved, 4).column("quantiles"))


def params_key(model: str) -> str:
    """A parameter whose value can be scaled by 0.9 without leaving the domain."""
    return {"gjrgarch_normalized": "alpha", "rough_bergomi": "eta", "rough_heston": "sigma"}[model]


def test_seed_and_param_id_change_the_stream() -> None:
    def quantiles(seed: int, param_id: int) -> torch.Tensor:
        m = get_model_class("gjrgarch_normalized")(device="cpu", seed=seed, param_id=param_id, **G1)
        m.reset(2000)
        return m.path_quantiles([5], 32)

    base = quantiles(1, 0)
    assert torch.equal(base, quantiles(1, 0))
    assert not torch.equal(base, quantiles(2, 0))
    assert not torch.equal(base, quantiles(1, 1))


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_whole_block_path_equals_cpu_subblock_pool(model: str, params: dict) -> None:
    """The CUDA code path of simulate_horizons (budget-sized blocks, one simulate_block call each), run on CPU with
    a budget of two sub-blocks per block, gives the same bits as the CPU sub-block thread pool."""
    num_paths = 3 * RNG_SUBBLOCK_PATHS + 77
    m = get_model_class(model)(device="cpu", seed=3, param_id=1, **params)
    m.reset(num_paths)
    pooled = m.simulate_horizons([1, 6])
    per_path = m.block_bytes_per_path(6) + 4 * 2
    m.memory_budget_bytes = 2 * RNG_SUBBLOCK_PATHS * per_path
    from density_engine.engine.paths import simulate_horizons

    assert torch.equal(simulate_horizons(m, [1, 6], per_subblock=False), pooled)


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_model_block_call_equals_per_subblock_calls(model: str, params: dict) -> None:
    """The CUDA path hands a multi-sub-block stream to simulate_block in one call; the CPU path calls it per
    sub-block. Both must give the same bits (checked here on CPU)."""
    from density_engine.engine.rng import RandomStream

    total = 2 * RNG_SUBBLOCK_PATHS + 300
    m = get_model_class(model)(device="cpu", seed=2, param_id=5, **params)
    whole = m.simulate_block(RandomStream(2, 5, 0, total, total), [2, 9])
    parts = RandomStream(2, 5, 0, total, total).split()
    assert [p.num_paths for p in parts] == [RNG_SUBBLOCK_PATHS, RNG_SUBBLOCK_PATHS, 300]
    assert torch.equal(whole, torch.cat([m.simulate_block(p, [2, 9]) for p in parts], dim=1))


def test_tf32_is_switched_off_by_every_run() -> None:
    """TF32 (10-bit mantissa) would wreck the Volterra sums on CUDA: every chunk run switches it off again."""
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        run_chunk(parse_spec(make_spec(num_paths=500, horizons=[1])), device="cpu")
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def test_a_budget_below_one_subblock_warns_and_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    m = get_model_class("rough_bergomi")(device="cpu", seed=1, memory_budget_bytes=1000, **RB)
    m.reset(3000)
    with caplog.at_level("WARNING", logger="density_engine.engine.paths"):
        values = m.simulate_horizons([4])
    assert values.shape == (1, 3000)
    assert "more than the memory budget" in caplog.text and "rough_bergomi" in caplog.text


def test_memory_budget_planning(monkeypatch) -> None:
    from density_engine.engine.paths import cpu_workers, memory_budget_bytes, plan_blocks

    s = RNG_SUBBLOCK_PATHS
    assert plan_blocks(3 * s + 5, 1000, 2 * 1000 * s) == [(0, 2 * s), (2 * s, 3 * s + 5)]
    assert plan_blocks(10, 10**9, 1) == [(0, 10)]  # at least one sub-block per block
    assert cpu_workers(10**9, 1) == 1
    cpu = torch.device("cpu")
    assert memory_budget_bytes(cpu, 123) == 123
    monkeypatch.setenv("DENSITY_ENGINE_MEMORY_BUDGET", "2e6")
    assert memory_budget_bytes(cpu) == 2_000_000
    monkeypatch.setenv("DENSITY_ENGINE_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="DENSITY_ENGINE_MEMORY_BUDGET"):
        memory_budget_bytes(cpu)
