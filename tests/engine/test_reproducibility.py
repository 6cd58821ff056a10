"""Reproducibility: a parameter set's result is a pure function of (model, params, seed, param_id, num_paths, dt,
time grid, horizons, dtype, eager or compiled kernels) on one device type: bit-equal on rerun, for any block size,
chunk, position in a chunk or thread count."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from density_engine.engine.chunkio import decode_metadata, parse_spec
from density_engine.engine.paths import (
    HISTORY_GROUP,
    PATH_ALIGN,
    plan_blocks,
    resolve_memory_budget,
    simulate_grid,
    simulate_horizons,
    use_compiled,
)
from density_engine.engine.runner import run_chunk
from density_engine.models import get_model_class
from tests.engine.conftest import G1, G2, RB, RH, make_spec

MODELS = [
    ("gjrgarch_normalized", G1),
    ("rough_bergomi", RB),
    ("rough_bergomi", {**RB, "scheme": "cell"}),  # the cell-average scheme's kernel
    ("rough_heston", RH),
]
DATA_COLUMNS = ["param_id", "horizon", "quantiles", "mean", "std", "skew", "kurt"]
# more steps than one history group, so the history GEMMs (whose shapes follow the block size) are exercised
HORIZONS = [3, HISTORY_GROUP + 9, 2 * HISTORY_GROUP + 7]


def _rows(table: pa.Table, param_id: int) -> pa.Table:
    return table.filter(pa.compute.equal(table.column("param_id"), param_id)).select(DATA_COLUMNS)


def _simulate(model: str, params: dict, num_paths: int, budget: int | None, **options) -> torch.Tensor:
    declared = get_model_class(model)(**params)
    return simulate_horizons(declared, HORIZONS, num_paths, seed=11, param_id=4, memory_budget_bytes=budget, **options)


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_block_size_invariance(model: str, params: dict) -> None:
    """Blocks of 64 paths, of 192 paths and one block of all paths (with a padded, odd-sized last block): identical
    bits, although every GEMM of the Volterra history changes shape with the block size."""
    num_paths = 1000
    outputs = [_simulate(model, params, num_paths, budget) for budget in (1, 3 * 64 * 2000, None)]
    assert outputs[0].shape == (3, num_paths)
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_thread_count_does_not_change_results(model: str, params: dict) -> None:
    """Eager kernels (run single-threaded by the engine whatever the caller's thread count)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = _simulate(model, params, 700, None)
        torch.set_num_threads(max(2, threads))
        multi = _simulate(model, params, 700, None)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, multi)


def test_paths_are_a_prefix_and_record_steps_only_select() -> None:
    """A path's values do not depend on how many paths are simulated, nor on which other steps are recorded."""
    model = get_model_class("rough_heston")(**RH)
    many = simulate_horizons(model, [5, 40], 900, seed=3, param_id=2)
    few = simulate_horizons(model, [40], 130, seed=3, param_id=2)
    assert torch.equal(many[1, :130], few[0])


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
    assert "kernels=eager" in decode_metadata(first.schema)["rng"]


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_chunk_position_invariance_for_every_model(model: str, params: dict) -> None:
    """A parameter set gives the same rows alone in chunk 0 and as the second set of chunk 5 (stream keyed by
    (seed, param_id) only), for every model (and both rough Bergomi schemes, chosen by the spec's time grid)."""
    params = dict(params)
    scheme = params.pop("scheme", "hybrid" if model == "rough_bergomi" else None)
    grid = {} if scheme is None else {"time_grid": {**make_spec(model)["time_grid"], "scheme": scheme}}
    if scheme == "cell":
        grid["time_grid"]["richardson"] = "none"
    moved_params = {**params, params_key(model): params[params_key(model)] * 0.9}
    alone = make_spec(model, [{"param_id": 4, "params": params}], num_paths=3000, chunk_id=0, horizons=[1, 5], **grid)
    second = make_spec(
        model,
        [{"param_id": 9, "params": moved_params}, {"param_id": 4, "params": params}],
        num_paths=3000,
        chunk_id=5,
        horizons=[1, 5],
        **grid,
    )
    first = run_chunk(parse_spec(alone), device="cpu").table
    moved = run_chunk(parse_spec(second), device="cpu").table
    assert _rows(first, 4).equals(_rows(moved, 4))
    assert not _rows(moved, 9).column("quantiles").equals(_rows(moved, 4).column("quantiles"))


def params_key(model: str) -> str:
    """A parameter whose value can be scaled by 0.9 without leaving the domain."""
    return {"gjrgarch_normalized": "alpha", "rough_bergomi": "eta", "rough_heston": "sigma"}[model]


def test_seed_param_id_and_stream_change_the_numbers() -> None:
    model = get_model_class("gjrgarch_normalized")(**G1)
    grid = model.fine_grid(5)

    def values(seed: int, param_id: int, stream: int = 0) -> torch.Tensor:
        return simulate_grid(model, grid, [5], 2000, seed, param_id, stream=stream)["log_return"]

    base = values(1, 0)
    assert torch.equal(base, values(1, 0))
    for other in (values(2, 0), values(1, 1), values(1, 0, stream=1)):
        assert not torch.equal(base, other)


def test_compiled_kernels_agree_with_eager_and_are_block_size_invariant() -> None:
    """The compiled group function (inductor) of every model: identical bits for two block sizes, and equal to the
    eager result up to float rounding (different log/cos/exp implementations; relative 1e-5 over 75 steps)."""
    for model, params in MODELS:
        compiled = [_simulate(model, params, 640, budget, compiled=True) for budget in (1, None)]
        assert torch.equal(compiled[0], compiled[1]), model
        eager = _simulate(model, params, 640, None, compiled=False)
        scale = float(eager.abs().max())
        assert float((compiled[0] - eager).abs().max()) <= 1e-5 * scale, model
    # compiled kernels (OpenMP loops) and the history GEMMs (MKL) with one and two threads: identical bits
    threads = torch.get_num_threads()
    try:
        per_thread_count = []
        for count in (1, 2):
            torch.set_num_threads(count)
            per_thread_count.append(_simulate("rough_heston", RH, 4096, None, compiled=True))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(per_thread_count[0], per_thread_count[1])


def test_compile_choice_is_a_function_of_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DENSITY_ENGINE_KERNELS", raising=False)
    assert not use_compiled(10_000, 252)
    assert use_compiled(10**6, 252) and use_compiled(2**26, 1)
    assert use_compiled(10, 10, override=True) and not use_compiled(10**7, 252, override=False)
    monkeypatch.setenv("DENSITY_ENGINE_KERNELS", "eager")
    assert not use_compiled(10**7, 252)
    monkeypatch.setenv("DENSITY_ENGINE_KERNELS", "fast")
    with pytest.raises(ValueError, match="DENSITY_ENGINE_KERNELS"):
        use_compiled(1, 1)


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


def test_memory_budget_planning(monkeypatch) -> None:
    assert plan_blocks(1000, 100, 64 * 100 * 3) == [(0, 192), (192, 384), (384, 576), (576, 768), (768, 960),
                                                   (960, 1000)]  # fmt: skip
    assert plan_blocks(10, 10**9, 1) == [(0, 10)]  # at least one aligned block
    assert all((b - a) % PATH_ALIGN == 0 for a, b in plan_blocks(10**6, 77, 10**7)[:-1])
    cpu = torch.device("cpu")
    assert resolve_memory_budget(cpu, 123) == 123
    monkeypatch.setenv("DENSITY_ENGINE_MEMORY_BUDGET", "2e6")
    assert resolve_memory_budget(cpu) == 2_000_000
    monkeypatch.setenv("DENSITY_ENGINE_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="DENSITY_ENGINE_MEMORY_BUDGET"):
        resolve_memory_budget(cpu)


def test_bad_arguments() -> None:
    model = get_model_class("rough_heston")(**RH)
    grid = model.fine_grid(10)
    with pytest.raises(ValueError, match="record_steps"):
        simulate_grid(model, grid, [5, 3], 10, 1, 0)
    with pytest.raises(ValueError, match="record_steps"):
        simulate_grid(model, grid, [11], 10, 1, 0)
    with pytest.raises(ValueError, match="unknown output"):
        simulate_grid(model, grid, [3], 10, 1, 0, outputs=["variance"])
    with pytest.raises(ValueError, match="seed"):
        simulate_grid(model, grid, [3], 10, 2**32, 0)
    with pytest.raises(ValueError, match="num_paths"):
        simulate_grid(model, grid, [3], 0, 1, 0)
