"""Chunk specs (validation errors name file and key) and chunk parquet I/O (schema, atomic write, validation)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from density_engine.atomic import file_sha256
from density_engine.engine.chunkio import (
    CHECKSUM_KEY,
    DISC_ERROR_COLUMNS,
    ChunkError,
    SpecError,
    chunk_schema,
    content_sha256,
    decode_metadata,
    load_spec,
    parse_spec,
    quantile_matrix,
    read_chunk,
    write_chunk,
    write_spec,
)
from density_engine.engine.runner import run_chunk
from tests.engine.conftest import G1, make_spec


def test_load_valid_spec(spec_file) -> None:
    spec = load_spec(spec_file())
    assert spec.model == "gjrgarch_normalized" and spec.dt is None and spec.time_grid is None
    assert [s.param_id for s in spec.parameter_sets] == [12, 3]
    assert spec.parameter_sets[0].params == G1
    assert parse_spec(spec.to_dict()) == spec
    rough = parse_spec(make_spec("rough_bergomi"))
    assert rough.model_settings() == {"dt": 1 / 252}
    policy = rough.time_grid_policy()
    assert policy is not None and (policy.steps, policy.richardson, policy.allow_coarse) == (4, "none", True)
    assert policy.scheme == "cell"


def test_missing_and_malformed_spec_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.json: chunk spec not found"):
        load_spec(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match=r"bad\.json: not valid JSON"):
        load_spec(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(SpecError, match="must be a JSON object"):
        load_spec(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "black_scholes"}, "key 'model' must be one of"),
        ({"spec_version": 1}, "key 'spec_version' must be 2"),
        ({"num_paths": 0}, "key 'num_paths' must be an integer >= 1"),
        ({"seed": -1}, "key 'seed'"),
        ({"seed": 1.5}, "key 'seed'"),
        ({"horizons": []}, "key 'horizons'"),
        ({"horizons": [1, 1]}, "duplicates"),
        ({"horizons": [0, 5]}, "key 'horizons'"),
        ({"dt": 0.004}, "key 'dt' must be null"),
        ({"time_grid": {"steps": 4}}, "key 'time_grid' must be null for the discrete-time model"),
        ({"substeps": 1}, r"unknown key\(s\) \['substeps'\]"),
        ({"parameter_sets": []}, "parameter_sets"),
        ({"extra": 1}, r"unknown key\(s\) \['extra'\]"),
        ({"parameter_sets": [{"param_id": 1, "params": G1}, {"param_id": 1, "params": G1}]}, "appears twice"),
        (
            {"parameter_sets": [{"param_id": 4, "params": {**G1, "eta": 2.0}}]},
            r"parameter_sets\[0\].*'eta' must be > 2",
        ),
        ({"parameter_sets": [{"param_id": 4, "params": {**G1, "beta": 0.95}}]}, "persistence"),
    ],
)
def test_invalid_spec_names_file_and_key(spec_file, change: dict, message: str) -> None:
    path = spec_file(make_spec(**change))
    with pytest.raises(SpecError, match=message) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_missing_key_and_rough_dt() -> None:
    spec = make_spec()
    del spec["horizons"]
    with pytest.raises(SpecError, match=r"missing key\(s\) \['horizons'\]"):
        parse_spec(spec)
    with pytest.raises(SpecError, match="key 'dt' must be a number > 0"):
        parse_spec(make_spec("rough_bergomi", dt=None))


def test_write_spec_roundtrip(tmp_path: Path) -> None:
    write_spec(tmp_path / "s.json", make_spec())
    assert load_spec(tmp_path / "s.json").to_dict() == parse_spec(make_spec()).to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


@pytest.fixture(scope="module")
def small_chunk() -> pa.Table:
    return run_chunk(parse_spec(make_spec(num_paths=2000)), device="cpu").table


def test_chunk_schema_and_metadata(small_chunk: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "chunk.parquet"
    manifest = write_chunk(small_chunk, path)
    # no temp file left behind; the chunk manifest beside the chunk records its bytes and checksums
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk.manifest.json", "chunk.parquet"]
    assert json.loads((tmp_path / "chunk.manifest.json").read_text()) == manifest
    assert manifest["bytes"] == path.stat().st_size and manifest["file_sha256"] == file_sha256(path)
    assert decode_metadata(pq.read_schema(path))[CHECKSUM_KEY] == manifest["content_sha256"]
    assert manifest["content_sha256"] == content_sha256(small_chunk)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    table = read_chunk(path)
    expected = chunk_schema(["alpha", "gamma", "beta", "eta", "lam", "sigma0_sq"], 64)
    assert table.schema.remove_metadata().equals(expected)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert table.column("param_id").to_pylist() == [3, 3, 3, 12, 12, 12]
    assert table.column("horizon").to_pylist() == [1, 5, 20] * 2
    assert table.column("dt").null_count == 6
    meta = decode_metadata(table.schema)
    assert meta["quantile_levels"] == list((np.arange(64) + 0.5) / 64)
    assert meta["density_engine.version"] and meta["torch.version"] == torch.__version__
    assert meta["spec_version"] == 2 and meta["path_steps_per_s"] > 0 and "philox4x32-10" in meta["rng"]
    assert meta["time_grid"] is None and set(meta["error_estimates"]) == {"mc_se", "disc_err"}
    # GJR is exact: steps = the horizon, no discretisation error; the Monte Carlo error of plain order statistics
    assert table.column("steps").to_pylist() == [1, 5, 20] * 2
    for name in DISC_ERROR_COLUMNS:
        assert table.column(name).to_pylist() == [0.0] * 6
    levels = (np.arange(64) + 0.5) / 64
    assert table.column("mc_se_cdf_p50").to_pylist() == pytest.approx(
        [np.sqrt(levels[32] * (1 - levels[32]) / 2000)] * 6
    )


def test_content_checksum_covers_values_not_layout(small_chunk: pa.Table) -> None:
    """The checksum is a function of the values only: the same values in other Arrow chunks (or with other file
    metadata) give the same digest; one changed quantile, a changed moment or an added column change it."""
    digest = content_sha256(small_chunk)
    rechunked = pa.Table.from_batches(small_chunk.to_batches(max_chunksize=2)).replace_schema_metadata(None)
    assert content_sha256(rechunked) == digest
    assert content_sha256(pa.concat_tables([small_chunk.slice(0, 2), small_chunk.slice(2)])) == digest
    q = quantile_matrix(small_chunk).copy()
    q[4, 10] = np.nextafter(q[4, 10], np.float32(np.inf))
    edited = _replace(
        small_chunk, "quantiles", pa.FixedSizeListArray.from_arrays(pa.array(q.ravel(), pa.float32()), q.shape[1])
    )
    assert content_sha256(edited) != digest
    mean = small_chunk.column("mean").to_numpy().copy()
    mean[0] += 1e-12
    assert content_sha256(_replace(small_chunk, "mean", pa.array(mean))) != digest
    extra = small_chunk.append_column("mc_se", pa.array(np.zeros(small_chunk.num_rows)))
    assert content_sha256(extra) != digest


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), table.schema.field(name), values)


def test_read_chunk_rejects_bad_files(small_chunk: pa.Table, tmp_path: Path) -> None:
    with pytest.raises(ChunkError, match=r"missing\.parquet: chunk file not found"):
        read_chunk(tmp_path / "missing.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    with pytest.raises(ChunkError, match=r"junk\.parquet: not a readable parquet"):
        read_chunk(junk)
    q = small_chunk.column("quantiles").combine_chunks()
    flat = q.flatten().to_numpy().copy()
    nan = flat.copy()
    nan[5] = np.nan
    decreasing = flat.copy()
    decreasing[64 + 10] = decreasing[64 + 11] + 1.0
    bad_tables = {
        "NaN": _replace(small_chunk, "quantiles", pa.FixedSizeListArray.from_arrays(pa.array(nan), 64)),
        "decrease": _replace(small_chunk, "quantiles", pa.FixedSizeListArray.from_arrays(pa.array(decreasing), 64)),
        "duplicate": _replace(small_chunk, "horizon", pa.array([1, 1, 20, 1, 5, 20], pa.int32())),
        "schema mismatch": small_chunk.drop(["kurt"]),
        "metadata": small_chunk.replace_schema_metadata({}),
        "not sorted": small_chunk.take([3, 4, 5, 0, 1, 2]),
    }
    for message, table in bad_tables.items():
        path = tmp_path / f"bad_{message.replace(' ', '_')}.parquet"
        pq.write_table(table, path)
        with pytest.raises(ChunkError, match=message) as info:
            read_chunk(path)
        assert str(path) in str(info.value)
        with pytest.raises(ChunkError):
            write_chunk(table, tmp_path / "never.parquet")
    assert not (tmp_path / "never.parquet").exists()


def test_write_is_atomic_on_failure(small_chunk: pa.Table, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "chunk.parquet"

    def explode(*args, **kwargs):
        Path(args[1]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(OSError, match="disk full"):
        write_chunk(small_chunk, path)
    assert list(tmp_path.iterdir()) == []


def test_spec_json_is_the_documented_layout(spec_file) -> None:
    data = json.loads(spec_file().read_text())
    assert list(parse_spec(data).to_dict()) == list(data)


def test_temp_files_of_killed_writes_are_swept(small_chunk: pa.Table, tmp_path: Path) -> None:
    """A SIGKILLed write leaves its hidden temp file; the next write of the same chunk removes it (and only its own)."""
    path = tmp_path / "chunk_00001.parquet"
    killed = tmp_path / ".chunk_00001.parquet.k1ll3d.tmp"
    other = tmp_path / ".chunk_00002.parquet.alive.tmp"
    killed.write_bytes(b"partial")
    other.write_bytes(b"another chunk's write in progress")
    write_chunk(small_chunk, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "chunk_00001.manifest.json", path.name]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": 2**32}, "key 'seed' must be <= 4294967295 (a 32-bit Philox key word)"),
        ({"num_paths": 2**32}, "key 'num_paths' must be <= 4294967232"),
        ({"parameter_sets": [{"param_id": 2**32, "params": G1}]}, "param_id' must be <= 4294967295"),
    ],
)
def test_spec_keys_must_fit_philox_words(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(make_spec(**change))
