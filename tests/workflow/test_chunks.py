"""Chunk plans, content keys (rerun triggers) and the spec files (checked against the engine's own spec parser)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from density_engine.engine.chunkio import load_spec
from density_engine.workflow.chunks import build_specs, plan_model, write_grid, write_specs

from .conftest import TINY_CONFIG

GARCH = "gjrgarch_normalized"


def _garch(**changes) -> dict:
    return {**copy.deepcopy(TINY_CONFIG["models"][GARCH]), **changes}


def test_plan_counts_chunks_without_sampling() -> None:
    plan = plan_model(GARCH, _garch(n_samples=1_000_000, chunk_size=100))
    assert plan.num_sets == 1_000_000 and plan.num_chunks == 10_000
    assert plan.chunk_names[-1] == "chunk_09999"
    assert len(set(plan.chunk_keys)) == 10_000


def test_content_keys_change_exactly_for_affected_chunks() -> None:
    base = plan_model(GARCH, _garch(n_samples=5, chunk_size=2)).chunk_keys
    grown = plan_model(GARCH, _garch(n_samples=8, chunk_size=2)).chunk_keys
    assert grown[:2] == base[:2]  # Sobol is prefix-stable: full chunks keep their content
    assert grown[2] != base[2]  # the partial last chunk gains a set
    assert len(grown) == 4
    base_plan = plan_model(GARCH, _garch(n_samples=5, chunk_size=2))
    assert base_plan.plan_key == plan_model(GARCH, _garch(n_samples=5, chunk_size=2)).plan_key
    assert base_plan.plan_key != plan_model(GARCH, _garch(n_samples=8, chunk_size=2)).plan_key
    assert base_plan.plan_key != plan_model(GARCH, _garch(n_samples=5, chunk_size=2, num_paths=5000)).plan_key
    assert base_plan.chunk_stems == [f"chunk_0000{k}.{key}" for k, key in enumerate(base)]
    new_horizons = plan_model(GARCH, _garch(n_samples=5, chunk_size=2, horizons=[1, 3, 10])).chunk_keys
    assert all(a != b for a, b in zip(base, new_horizons, strict=True))
    lhs = plan_model(GARCH, _garch(n_samples=5, chunk_size=2, sampler="lhs")).chunk_keys
    lhs_grown = plan_model(GARCH, _garch(n_samples=6, chunk_size=2, sampler="lhs")).chunk_keys
    assert all(a != b for a, b in zip(lhs, lhs_grown, strict=False))  # an LHS design depends on n_samples


def test_specs_follow_the_engine_contract(tmp_path: Path) -> None:
    model_cfg = _garch(n_samples=5, chunk_size=2)
    (tmp_path / "chunk_00001.0123456789abcdef.json").write_text("{}")  # chunk 1 of an earlier config
    paths = write_specs(GARCH, model_cfg, tmp_path)
    keys = plan_model(GARCH, model_cfg).chunk_keys
    assert [p.name for p in paths] == [f"chunk_0000{k}.{keys[k]}.json" for k in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # no temporary or stale files
    specs = [load_spec(p) for p in paths]  # the engine's own validating parser
    assert [len(s.parameter_sets) for s in specs] == [2, 2, 1]
    assert [ps.param_id for s in specs for ps in s.parameter_sets] == [0, 1, 2, 3, 4]
    assert specs[0].dt is None and specs[0].time_grid is None and specs[0].num_quantiles == 64
    raw = json.loads(paths[0].read_text())
    assert set(raw) == {
        "spec_version",
        "model",
        "chunk_id",
        "seed",
        "num_paths",
        "num_quantiles",
        "horizons",
        "dt",
        "time_grid",
        "parameter_sets",
    }
    grid = tmp_path.parent / "grid.parquet"
    assert write_grid(GARCH, model_cfg, grid) == 5
    again = write_specs(GARCH, model_cfg, tmp_path, grid_path=grid, chunks=[1])
    assert again == paths[1:2] and json.loads(again[0].read_text()) == json.loads(paths[1].read_text())
    heston = build_specs("rough_heston", TINY_CONFIG["models"]["rough_heston"])
    assert heston[0]["dt"] == 1.0 / 252.0 and heston[0]["spec_version"] == 2
    grid = heston[0]["time_grid"]  # the tiny config's steps, the model's other defaults
    assert (grid["steps"], grid["steps_per_day"], grid["richardson"]) == (16, 0, "independent")


def test_grid_is_written_only_under_its_current_key(tmp_path: Path) -> None:
    """The grid rule is one wildcard rule for every model: a keyed grid name of another model or config is refused."""
    model_cfg = _garch(n_samples=5, chunk_size=2)
    key = plan_model(GARCH, model_cfg).grid_key
    assert write_grid(GARCH, model_cfg, tmp_path / f"parameters.{key}.parquet") == 5
    other = plan_model(GARCH, _garch(n_samples=6, chunk_size=2)).grid_key
    with pytest.raises(ValueError, match=f"the config's grid of {GARCH} is parameters.{key}.parquet"):
        write_grid(GARCH, model_cfg, tmp_path / f"parameters.{other}.parquet")
    assert [p.name for p in tmp_path.iterdir()] == [f"parameters.{key}.parquet"]
