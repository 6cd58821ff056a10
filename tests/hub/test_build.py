"""Dataset build: stable deterministic shards, card + provenance, local load_dataset, bad inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from density_engine.cli import main
from density_engine.dataset.build import build_dataset
from density_engine.dataset.inputs import DatasetInputError, load_model_table
from density_engine.dataset.shards import default_params_per_shard, quantile_standard_errors
from density_engine.workflow.merge import merge_chunks

from .conftest import PARAMS_PER_SHARD

GARCH = "gjrgarch_normalized"
HESTON = "rough_heston"
CONFIG = {
    "models": {GARCH: {"sampler": "sobol", "n_samples": 10, "parameters": {"alpha": [0.02, 0.1], "lam": -0.2}}},
    "hf": {"repo_id": "org/densities", "tag": "v0.1.0"},
}


def digests(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime_ns of every file under the folder."""
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def front_matter(readme: Path) -> dict:
    return yaml.safe_load(readme.read_text().split("---", 2)[1])


def test_shards_are_deterministic_stable_and_well_formed(tmp_path: Path, make_chunks) -> None:
    chunks = make_chunks(GARCH, [[0, 1, 2, 3], [4, 5, 6, 7]])
    out = tmp_path / "hf"
    build_dataset(chunks, out, CONFIG, params_per_shard=PARAMS_PER_SHARD)
    first = digests(out)
    assert sorted(first) == [
        "README.md",
        f"data/{GARCH}/params-000000-000003.parquet",
        f"data/{GARCH}/params-000004-000007.parquet",
        "provenance.json",
    ]

    # Same rows through the workflow's merge, chunks in another order → the same bytes; unchanged files are not even
    # rewritten.
    merged = tmp_path / "merged.parquet"
    merge_chunks(GARCH, list(reversed(chunks)), merged)
    build_dataset([merged], out, CONFIG, params_per_shard=PARAMS_PER_SHARD)
    assert digests(out) == first

    # One more chunk (param_ids 8, 9): the two existing shards keep name, bytes and mtime; one shard is added.
    extra = make_chunks(GARCH, [[8, 9]], first_chunk=2)
    manifests = build_dataset([*chunks, *extra], out, CONFIG, params_per_shard=PARAMS_PER_SHARD)
    after = digests(out)
    for name in first:
        if name.startswith("data/"):
            assert after[name] == first[name]
    assert f"data/{GARCH}/params-000008-000011.parquet" in after
    assert after["README.md"][0] != first["README.md"][0]  # row counts and shard list changed

    shard = out / f"data/{GARCH}/params-000000-000003.parquet"
    metadata = pq.ParquetFile(shard).metadata
    assert set(metadata.metadata) == {b"ARROW:schema"}  # no wall_time_s or other run-specific keys
    table = pq.read_table(shard)
    assert table.schema.field("quantiles").type == pa.list_(pa.float32(), 512)
    assert table.column_names[:8] == ["model", "param_id", "alpha", "gamma", "beta", "eta", "lam", "sigma0_sq"]
    keys = list(zip(table.column("param_id").to_pylist(), table.column("horizon").to_pylist(), strict=True))
    assert keys == sorted(keys)
    column_chunk = metadata.row_group(0).column(table.column_names.index("mean") + 512 * 0)
    assert column_chunk.compression == "ZSTD"
    quantile_chunk = next(
        metadata.row_group(0).column(i)
        for i in range(metadata.num_columns)
        if metadata.row_group(0).column(i).path_in_schema == "quantiles.list.element"
    )
    assert "BYTE_STREAM_SPLIT" in quantile_chunk.encodings
    assert manifests[0].rows == 30 and manifests[0].param_sets == 10

    # The shard rows are exactly the input rows.
    source = pq.read_table(chunks[0])
    np.testing.assert_array_equal(
        table.column("quantiles").combine_chunks().flatten().to_numpy(),
        source.column("quantiles").combine_chunks().flatten().to_numpy(),
    )


def test_default_shard_width_depends_only_on_horizons() -> None:
    # 100k target rows: 3 horizons → 20000 param sets (60k rows), 20 → 5000, 7 → 10000 (70k rows)
    assert default_params_per_shard(3) == 20_000
    assert default_params_per_shard(20) == 5_000
    assert default_params_per_shard(7) == 10_000
    assert default_params_per_shard(1) == 100_000


def test_card_yaml_provenance_and_local_load(tmp_path: Path, make_chunks) -> None:
    import datasets

    chunks = make_chunks(GARCH, [[0, 1, 2, 3], [4, 5]]) + make_chunks(HESTON, [[0, 1, 2]])
    out = tmp_path / "hf"
    build_dataset(chunks, out, CONFIG, params_per_shard=PARAMS_PER_SHARD)
    readme_bytes = (out / "README.md").read_bytes()
    build_dataset(chunks, out, CONFIG, params_per_shard=PARAMS_PER_SHARD)
    assert (out / "README.md").read_bytes() == readme_bytes  # no timestamps: same inputs, same card

    meta = front_matter(out / "README.md")
    assert meta["license"] == "cc-by-4.0"
    assert meta["size_categories"] == ["n<1K"]
    assert "time-series-forecasting" in meta["task_categories"]
    assert [c["config_name"] for c in meta["configs"]] == [GARCH, HESTON]
    assert meta["configs"][0]["default"] is True
    assert meta["configs"][1]["data_files"] == [{"split": "train", "path": f"data/{HESTON}/*.parquet"}]
    quantile_feature = next(f for info in meta["dataset_info"] for f in info["features"] if f["name"] == "quantiles")
    assert quantile_feature == {"name": "quantiles", "list": "float32", "length": 512}
    body = (out / "README.md").read_text()
    for needed in ("p_j = (j + 0.5) / 512", "iVi", "Hansen", "load_dataset", "pandas", "polars", "bibtex", "sobol"):
        assert needed in body, needed

    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["code"]["git_commit"]
    assert provenance["software"]["pyarrow"] == pa.__version__
    garch = provenance["models"][GARCH]
    assert garch["num_paths"] == [2048] and garch["horizons"] == [1, 5, 20] and garch["seeds"] == [1]
    alpha = next(p for p in garch["parameters"] if p["name"] == "alpha")
    assert alpha["config"] == [0.02, 0.1] and alpha["bounds"] == "[0, 1)"
    beta = next(p for p in garch["parameters"] if p["name"] == "beta")
    assert beta.get("config_is_model_default") is True
    assert "wall_time_s" not in garch["simulation"] and garch["simulation"]["torch.version"] == "2.13.0+cpu"
    assert garch["simulation"]["quantile_levels"] == "(j + 0.5) / 512, j = 0..511"  # checked, then condensed
    for shard in garch["shards"]:
        assert hashlib.sha256((out / shard["path"]).read_bytes()).hexdigest() == shard["sha256"]

    # datasets reads the folder like the Hub repo: configs, fixed-length float32 vectors, streaming.
    assert datasets.get_dataset_config_names(str(out)) == [GARCH, HESTON]
    ds = datasets.load_dataset(str(out), HESTON, split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.features["quantiles"] == datasets.List(datasets.Value("float32"), length=512)
    assert ds.num_rows == 9
    matrix = ds.with_format("numpy")[:]["quantiles"]
    assert matrix.shape == (9, 512) and matrix.dtype == np.float32
    expected = load_model_table(chunks[2:]).table
    np.testing.assert_array_equal(matrix.ravel(), expected.column("quantiles").combine_chunks().flatten().to_numpy())
    stream = datasets.load_dataset(str(out), GARCH, split="train", streaming=True)
    rows = list(stream)
    assert len(rows) == 18
    assert len(rows[0]["quantiles"]) == 512
    garch_table = load_model_table(chunks[:2]).table
    np.testing.assert_array_equal(
        np.asarray(rows[-1]["quantiles"], dtype=np.float32), garch_table.column("quantiles")[17].values.to_numpy()
    )
    assert [r["param_id"] for r in rows] == garch_table.column("param_id").to_pylist()


def test_quantile_standard_error_matches_the_normal_formula() -> None:
    """On exact N(0, s^2) quantiles, the estimate must equal sqrt(p(1-p)/N) s / phi(z_p) at every reported level.

    No Monte Carlo noise: the slope is differenced in normal scores, where a normal quantile function is linear, so the
    only error is float32 rounding of the quantiles, eps * |q| / (q_{j+1} - q_{j-1}) <= 6e-8 * 3.3 / 0.0098 ≈ 2e-5
    relative; the test allows 1e-3.
    """
    from scipy.stats import norm

    width, num_paths, sigma = 512, 10_000, 0.3
    levels = (np.arange(width) + 0.5) / width
    row = (sigma * norm.ppf(levels)).astype(np.float32)
    table = pa.table(
        {
            "quantiles": pa.FixedSizeListArray.from_arrays(pa.array(np.tile(row, 3), pa.float32()), width),
            "num_paths": pa.array([num_paths] * 3, pa.int64()),
            "std": pa.array([sigma] * 3, pa.float64()),
        }
    )
    result = {round(item["level"], 4): item for item in quantile_standard_errors(table)["levels"]}
    for level, item in result.items():
        exact = np.sqrt(item["level"] * (1 - item["level"]) / num_paths) * sigma / norm.pdf(norm.ppf(item["level"]))
        assert item["median_se"] == pytest.approx(exact, rel=1e-3), level
        assert item["median_se_over_std"] == pytest.approx(exact / sigma, rel=1e-3)


@pytest.mark.parametrize("problem", ["missing", "truncated", "decreasing", "duplicate", "wrong_type"])
def test_bad_input_stops_the_build_naming_the_file(tmp_path: Path, make_chunks, problem: str) -> None:
    chunks = make_chunks(GARCH, [[0, 1], [2, 3]])
    bad = chunks[1]
    if problem == "missing":
        bad.unlink()
        expected = "input file not found"
    elif problem == "truncated":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
        expected = "not a readable parquet file"
    elif problem == "decreasing":
        table = pq.read_table(bad)
        values = table.column("quantiles").combine_chunks().flatten().to_numpy().copy()
        values[512 + 100] = values[512 + 99] - 1.0  # row 1, level 100
        quantiles = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), 512)
        pq.write_table(table.set_column(table.column_names.index("quantiles"), "quantiles", quantiles), bad)
        expected = "quantiles decrease in row 1"
    elif problem == "duplicate":
        pq.write_table(pq.read_table(chunks[0]), bad)
        expected = f"is also in {chunks[0]}"
    else:
        table = pq.read_table(bad)
        pq.write_table(
            table.set_column(table.column_names.index("horizon"), "horizon", table["horizon"].cast("int64")), bad
        )
        expected = "column 'horizon' must be int32"
    out = tmp_path / "hf"
    result = CliRunner().invoke(main, ["dataset", "build", "--out", str(out), *map(str, chunks)])
    assert result.exit_code == 1, result.output
    assert str(bad) in result.output and expected in result.output
    assert not (out / "README.md").exists()
    with pytest.raises(DatasetInputError, match=expected.split(" in ")[0]):
        load_model_table(chunks)


def test_quantile_levels_in_the_chunk_metadata_must_match_the_card(tmp_path: Path, make_chunks) -> None:
    (chunk,) = make_chunks(GARCH, [[0, 1]])
    table = pq.read_table(chunk)
    metadata = dict(table.schema.metadata)
    metadata[b"quantile_levels"] = json.dumps([j / 512 for j in range(512)]).encode()  # not (j + 0.5) / 512
    pq.write_table(table.replace_schema_metadata(metadata), chunk)
    with pytest.raises(DatasetInputError, match=f"{chunk}: file metadata 'quantile_levels' is not"):
        build_dataset([chunk], tmp_path / "hf")
