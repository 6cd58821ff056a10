"""The dataset with moments that do not exist (issue 9, item 4): GJR rows with eta <= 4 carry kurt = NaN into the
shards and the card explains it; a NaN where the model has the moment stops the build."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from density_engine.dataset.build import build_dataset
from density_engine.dataset.inputs import DatasetInputError

from .chunks import chunk_table, write_chunk
from .conftest import PARAMS_PER_SHARD
from .test_build import GARCH, config


def _replace(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    field = table.schema.field(name)
    return table.set_column(table.schema.get_field_index(name), field, pa.array(values, field.type))


def _heavy_tailed(table: pa.Table, param_id: int, eta: float) -> pa.Table:
    """``table`` with parameter set ``param_id`` moved to ``eta`` <= 4 and its kurtosis NaN, as the runner writes it."""
    rows = table.column("param_id").to_numpy() == param_id
    etas = table.column("eta").to_numpy().copy()
    kurt = table.column("kurt").to_numpy().copy()
    etas[rows], kurt[rows] = eta, math.nan
    return _replace(_replace(table, "eta", etas), "kurt", kurt)


def _config() -> dict:
    cfg = copy.deepcopy(config(garch=2))
    cfg["models"][GARCH]["parameters"] = {"eta": [3.0, 30.0]}  # the rows below have eta 3.5
    return cfg


def test_nan_kurtosis_reaches_the_shards_and_the_card_explains_it(tmp_path: Path) -> None:
    chunk = write_chunk(tmp_path / "chunk_00000.parquet", _heavy_tailed(chunk_table(GARCH, [0, 1]), 0, 3.5))
    folder = tmp_path / "hf"
    build_dataset([chunk], folder, _config(), PARAMS_PER_SHARD)
    shard = pq.read_table(next((folder / "data" / GARCH).glob("*.parquet")))
    kurt, eta = shard.column("kurt").to_numpy(), shard.column("eta").to_numpy()
    assert np.isnan(kurt[eta <= 4]).all() and np.isfinite(kurt[eta > 4]).all() and (eta <= 4).sum() == 3
    readme = (folder / "README.md").read_text()
    section = readme.split(f"### `{GARCH}`", 1)[1].split("### ", 1)[0]
    assert "**Moments.** `kurt` is NaN where eta <= 4: the skew-t innovations have no finite 4th moment" in section


def test_nan_kurtosis_where_the_fourth_moment_exists_stops_the_build(tmp_path: Path) -> None:
    table = chunk_table(GARCH, [0, 1])
    kurt = table.column("kurt").to_numpy().copy()
    kurt[4] = math.nan  # param_id 1 has eta > 4
    path = tmp_path / "chunk_00000.parquet"
    pq.write_table(_replace(table, "kurt", kurt), path)  # not through the writer: it would refuse the table
    with pytest.raises(DatasetInputError, match=rf"{path}: column 'kurt' has NaN/inf \(row 4\)"):
        build_dataset([path], tmp_path / "hf", _config(), PARAMS_PER_SHARD)
