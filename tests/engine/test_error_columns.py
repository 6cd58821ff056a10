"""The model-side error columns (rough Heston: Fourier) may run in a thread pool while a GPU simulates the next
parameter sets: the chunk is the same, value for value, as with the columns computed in line."""

from __future__ import annotations

import pytest
import torch

from density_engine.engine.chunkio import content_sha256, parse_spec
from density_engine.engine.runner import COLUMN_WORKERS_ENV, column_workers, run_chunk
from tests.engine.conftest import RH, make_spec


def test_column_pool_gives_the_same_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec(make_spec("rough_heston", [{"param_id": 4, "params": RH}, {"param_id": 9, "params": RH}]))
    monkeypatch.setenv(COLUMN_WORKERS_ENV, "0")
    inline = run_chunk(spec, device="cpu").table
    monkeypatch.setenv(COLUMN_WORKERS_ENV, "2")
    pooled = run_chunk(spec, device="cpu").table
    assert content_sha256(pooled) == content_sha256(inline)
    assert min(inline.column("disc_err_cdf_max").to_pylist()) > 0


def test_column_workers_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COLUMN_WORKERS_ENV, raising=False)
    assert column_workers(torch.device("cpu")) == 0  # a CPU chunk job has one core: the columns run in line
    monkeypatch.setenv(COLUMN_WORKERS_ENV, "3")
    assert column_workers(torch.device("cpu")) == 3
    monkeypatch.setenv(COLUMN_WORKERS_ENV, "many")
    with pytest.raises(ValueError, match="DENSITY_ENGINE_COLUMN_WORKERS must be an integer >= 0, got 'many'"):
        column_workers(torch.device("cpu"))
