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
from density_engine.dataset.build import build_card, build_dataset, build_model
from density_engine.dataset.checks import check_parameter_ranges
from density_engine.dataset.inputs import DatasetInputError, ModelTable, load_model_table
from density_engine.dataset.layout import TARGET_ROWS_PER_SHARD, default_params_per_shard
from density_engine.dataset.shards import (
    MIN_TAIL_PATHS,
    ROW_GROUP_ROWS,
    describe_model,
    quantile_standard_errors,
    write_model_shards,
)
from density_engine.engine import chunkio
from density_engine.workflow.merge import merge_chunks

from .chunks import GARCH_PARAMETERS
from .conftest import PARAMS_PER_SHARD

GARCH = "gjrgarch_normalized"
HESTON = "rough_heston"
MB = 1_000_000


def model_config(n_samples: int, **extra: object) -> dict:
    """A model's config entry matching the test chunks (chunks.py draws inside the models' default ranges)."""
    return {
        "sampler": "sobol",
        "n_samples": n_samples,
        "horizons": [1, 5, 20],
        "num_paths": 2048,
        "chunk_size": 4,
        "seed": 1,
        "parameters": {"alpha": [0.02, 0.1]},
        **extra,
    }


def config(garch: int | None = None, heston: int | None = None, **top: object) -> dict:
    models = {}
    if garch is not None:
        models[GARCH] = model_config(garch)
    if heston is not None:
        models[HESTON] = {**model_config(heston), "parameters": {}, "seed": 1}
    return {"models": models, "hf": {"repo_id": "org/densities", "tag": "v0.1.0"}, **top}


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
    build_dataset(chunks, out, config(garch=8), params_per_shard=PARAMS_PER_SHARD)
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
    build_dataset([merged], out, config(garch=8), params_per_shard=PARAMS_PER_SHARD)
    assert digests(out) == first

    # One more chunk (param_ids 8, 9): the two existing shards keep name, bytes and mtime; one shard is added.
    extra = make_chunks(GARCH, [[8, 9]], first_chunk=2)
    manifests = build_dataset([*chunks, *extra], out, config(garch=10), params_per_shard=PARAMS_PER_SHARD)
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


def test_a_chunk_inside_an_existing_shard_range_changes_only_that_shard(tmp_path: Path, make_chunks) -> None:
    out = tmp_path / "hf"
    chunks = make_chunks(GARCH, [[0, 1, 2, 3], [4, 5]])
    build_dataset(chunks, out, config(garch=6), params_per_shard=PARAMS_PER_SHARD)
    before = digests(out)
    chunks += make_chunks(GARCH, [[6, 7]], first_chunk=2)  # n_samples 6 → 8: ids 6, 7 fall into shard 4–7
    build_dataset(chunks, out, config(garch=8), params_per_shard=PARAMS_PER_SHARD)
    after = digests(out)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == ["README.md", f"data/{GARCH}/params-000004-000007.parquet", "provenance.json"]


def test_default_shard_width_depends_only_on_horizons() -> None:
    # 100k target rows, rounded down to two significant digits of parameter sets
    assert default_params_per_shard(1) == 100_000
    assert default_params_per_shard(3) == 33_000
    assert default_params_per_shard(9) == 11_000  # config/production.yaml: 9 horizons
    assert default_params_per_shard(20) == 5_000
    assert default_params_per_shard(21) == 4_700  # a 1-2-5 rounding gave 2000 sets: 42 % of the target
    for horizons in range(1, 1001):
        rows = default_params_per_shard(horizons) * horizons
        assert 0.9 * TARGET_ROWS_PER_SHARD <= rows <= TARGET_ROWS_PER_SHARD, horizons


def _production_table(num_sets: int, horizons: list[int]) -> ModelTable:
    """Synthetic rows of the production shape: smooth sorted quantile vectors (a skewed normal shape scaled by
    sqrt(horizon)) with small noise, so that they compress like simulated quantiles."""
    from scipy.stats import norm

    rng = np.random.default_rng(7)
    rows = num_sets * len(horizons)
    base = norm.ppf((np.arange(512) + 0.5) / 512)
    scale = np.repeat(rng.uniform(0.005, 0.05, num_sets), len(horizons)) * np.tile(np.sqrt(horizons), num_sets)
    shape = base * (1 + 0.1 * np.tanh(base))
    quantiles = np.sort((shape + 2e-3 * rng.standard_normal((rows, 512))) * scale[:, None], axis=1)
    params = rng.random((num_sets, len(GARCH_PARAMETERS)))
    columns = {
        "model": pa.array([GARCH] * rows),
        "param_id": pa.array(np.repeat(np.arange(num_sets), len(horizons)), pa.int64()),
        **{name: pa.array(np.repeat(params[:, i], len(horizons))) for i, name in enumerate(GARCH_PARAMETERS)},
        "horizon": pa.array(np.tile(horizons, num_sets), pa.int32()),
        "quantiles": pa.FixedSizeListArray.from_arrays(pa.array(quantiles.ravel(), pa.float32()), 512),
        **{name: pa.array(rng.standard_normal(rows)) for name in ("mean", "kurt", "skew")},
        "std": pa.array(scale),
        "num_paths": pa.array([10_000_000] * rows, pa.int64()),
        "seed": pa.array([1] * rows, pa.int64()),
        "dt": pa.array([None] * rows, pa.float64()),
        "steps": pa.array(np.tile(horizons, num_sets), pa.int32()),
        **{name: pa.array(rng.uniform(0, 1e-3, rows)) for name in chunkio.ERROR_COLUMNS},
    }
    schema = chunkio.chunk_schema(list(GARCH_PARAMETERS), 512)
    table = pa.Table.from_pydict({f.name: columns[f.name] for f in schema}, schema=schema)
    return ModelTable(GARCH, table, list(GARCH_PARAMETERS), 512)


@pytest.mark.slow
def test_shard_and_row_group_sizes_for_the_production_shape(tmp_path: Path) -> None:
    """config/production.yaml: 8192 parameter sets × 9 horizons. hf-hub.md §1.3: shards of about 100–500 MB, row groups
    of 16k–50k rows / 32–100 MB uncompressed (the Dataset Viewer refuses row groups over ~286 MiB)."""
    horizons = [1, 2, 5, 10, 21, 42, 63, 126, 252]
    data = _production_table(8192, horizons)
    manifest = write_model_shards(data, tmp_path / "hf")
    assert manifest.params_per_shard == 11_000 and len(manifest.shards) == 1  # all 8192 sets fit one shard
    (shard,) = manifest.shards
    assert 100 * MB <= shard.bytes <= 500 * MB, shard.bytes
    metadata = pq.ParquetFile(tmp_path / "hf" / shard.path).metadata
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    assert [g.num_rows for g in groups[:-1]] == [ROW_GROUP_ROWS] * (len(groups) - 1)
    for group in groups[:-1]:
        assert 16_000 <= group.num_rows <= 50_000
        assert 32 * MB <= group.total_byte_size <= 100 * MB, group.total_byte_size
    assert max(g.total_byte_size for g in groups) < 286 * 2**20
    # A full shard (11000 sets × 9 horizons = 99k rows) at the measured bytes per row stays in range as well, in memory
    # (what datasets' 500 MB max shard size counts) and on disk.
    full_rows = manifest.params_per_shard * len(horizons)
    assert 100 * MB <= shard.bytes / shard.rows * full_rows <= 500 * MB
    assert 100 * MB <= data.table.nbytes / data.table.num_rows * full_rows <= 500 * MB


def test_card_yaml_provenance_and_local_load(tmp_path: Path, make_chunks) -> None:
    import datasets

    chunks = make_chunks(GARCH, [[0, 1, 2, 3], [4, 5]]) + make_chunks(HESTON, [[0, 1, 2]])
    out = tmp_path / "hf"
    build_dataset(chunks, out, config(garch=6, heston=3), params_per_shard=PARAMS_PER_SHARD)
    readme_bytes = (out / "README.md").read_bytes()
    build_dataset(chunks, out, config(garch=6, heston=3), params_per_shard=PARAMS_PER_SHARD)
    assert (out / "README.md").read_bytes() == readme_bytes  # no timestamps: same inputs, same card

    meta = front_matter(out / "README.md")
    assert meta["license"] == "cc-by-4.0"
    assert meta["pretty_name"] == "Simulated return densities of stochastic-volatility models (GJR-GARCH, rough Heston)"
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
    assert body.count("- Code: density-engine `0.1.0+g000000000000`, git commit `" + "0" * 40 + "`.") == 2

    provenance = json.loads((out / "provenance.json").read_text())
    assert "code" not in provenance and "software" not in provenance  # nothing about the process building the card
    assert len(provenance["models_config_sha256"]) == 64
    garch = provenance["models"][GARCH]
    assert garch["num_paths"] == [2048] and garch["horizons"] == [1, 5, 20] and garch["seeds"] == [1]
    alpha = next(p for p in garch["parameters"] if p["name"] == "alpha")
    assert alpha["config"] == [0.02, 0.1] and alpha["bounds"] == "[0, 1)"
    beta = next(p for p in garch["parameters"] if p["name"] == "beta")
    assert beta.get("config_is_model_default") is True
    simulation = garch["simulation"]
    assert "wall_time_s" not in simulation and "quantile_levels" not in simulation  # levels checked, then dropped
    assert simulation["torch.version"] == ["2.13.0+cpu"] and simulation["device"] == ["cpu"]
    assert simulation["density_engine.code_version"] == ["0.1.0+g000000000000"]
    assert simulation["density_engine.git_commit"] == ["0" * 40]
    assert [h["horizon"] for h in garch["mc_error"]["horizons"]] == [1, 5, 20]
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


def test_card_is_a_function_of_the_data_and_the_model_config(tmp_path: Path, make_chunks, monkeypatch) -> None:
    """Not of the process building it: its git commit, the `device`/`resources` of the config, the `hf` section's
    private flag; a change of the model config does change it."""
    chunks = make_chunks(GARCH, [[0, 1, 2, 3]])

    def card(name: str, commit: str, **top: object) -> tuple[bytes, bytes]:
        monkeypatch.setenv("DENSITY_ENGINE_GIT_COMMIT", commit)
        out = tmp_path / name
        cfg = config(garch=4, **top)
        build_dataset(chunks, out, cfg, params_per_shard=PARAMS_PER_SHARD)
        return (out / "README.md").read_bytes(), (out / "provenance.json").read_bytes()

    reference = card("a", "1" * 40, device="cpu", resources={"mem_mb": 2000, "runtime": 30})
    assert card("b", "2" * 40 + "-dirty", device="cuda", resources={"mem_mb": 9000, "runtime": 300}) == reference
    assert card("c", "unknown") == reference

    changed = config(garch=4)
    changed["models"][GARCH]["chunk_size"] = 2
    out = tmp_path / "d"
    build_dataset(chunks, out, changed, params_per_shard=PARAMS_PER_SHARD)
    assert (out / "README.md").read_bytes() != reference[0]
    assert (out / "provenance.json").read_bytes() != reference[1]


def test_distinct_code_versions_of_the_chunks_are_all_listed(tmp_path: Path, make_chunks) -> None:
    versions = {"density_engine.code_version": "0.1.0+gaaaaaaaaaaaa", "density_engine.git_commit": "a" * 40}
    dirty = {"density_engine.code_version": "0.1.0+gbbbbbbbbbbbb", "density_engine.git_commit": "b" * 40 + "-dirty"}
    chunks = make_chunks(GARCH, [[0, 1]], metadata=versions) + make_chunks(GARCH, [[2, 3]], 1, metadata=dirty)
    merged = tmp_path / "densities.parquet"
    merge_chunks(GARCH, chunks, merged)  # the merge stores the two values as a JSON list
    for inputs in (chunks, [merged]):
        out = tmp_path / "hf"
        build_dataset(inputs, out, config(garch=4), params_per_shard=PARAMS_PER_SHARD)
        simulation = json.loads((out / "provenance.json").read_text())["models"][GARCH]["simulation"]
        assert simulation["density_engine.code_version"] == ["0.1.0+gaaaaaaaaaaaa", "0.1.0+gbbbbbbbbbbbb"]
        assert simulation["density_engine.git_commit"] == ["a" * 40, "b" * 40 + "-dirty"]
        body = (out / "README.md").read_text()
        assert (
            "- Code: density-engine `0.1.0+gaaaaaaaaaaaa`, `0.1.0+gbbbbbbbbbbbb` (2 distinct versions across the "
            f"chunks), git commit `{'a' * 40}`, `{'b' * 40}-dirty` (2 distinct commits across the chunks)"
        ) in body
        assert "simulated with uncommitted changes" in body


def test_quantile_standard_error_matches_the_normal_formula() -> None:
    """On exact N(0, s^2) quantiles, the estimate must equal sqrt(p(1-p)/N) s / phi(z_p) at every reported level.

    No Monte Carlo noise: the slope is differenced in normal scores, where a normal quantile function is linear, so the
    only error is float32 rounding of the quantiles, eps * |q| / (q_{j+1} - q_{j-1}) <= 6e-8 * 3.3 / 0.0098 ≈ 2e-5
    relative; the test allows 1e-3. Horizons are reported apart (their scales differ), and levels with fewer than 10
    paths beyond them (p·N < 10) are left out.
    """
    from scipy.stats import norm

    width, num_paths = 512, 10_000
    levels = (np.arange(width) + 0.5) / width
    sigmas = {1: 0.1, 20: 0.45}
    rows = [(h, (s * norm.ppf(levels)).astype(np.float32)) for h, s in sigmas.items() for _ in range(3)]
    table = pa.table(
        {
            "horizon": pa.array([h for h, _ in rows], pa.int32()),
            "quantiles": pa.FixedSizeListArray.from_arrays(
                pa.array(np.concatenate([r for _, r in rows]), pa.float32()), width
            ),
            "num_paths": pa.array([num_paths] * len(rows), pa.int64()),
            "std": pa.array([sigmas[h] for h, _ in rows], pa.float64()),
        }
    )
    result = quantile_standard_errors(table)
    assert [h["horizon"] for h in result["horizons"]] == [1, 20]
    for per_horizon in result["horizons"]:
        sigma = sigmas[per_horizon["horizon"]]
        for item in per_horizon["levels"]:
            p = item["level"]
            if min(p, 1 - p) * num_paths < MIN_TAIL_PATHS:  # p = 0.5/512: 9.8 paths beyond it
                assert item["median_se"] is None and item["median_se_over_std"] is None
                continue
            exact = np.sqrt(p * (1 - p) / num_paths) * sigma / norm.pdf(norm.ppf(p))
            assert item["median_se"] == pytest.approx(exact, rel=1e-3), p
            assert item["median_se_over_std"] == pytest.approx(exact / sigma, rel=1e-3)
    omitted = [i["level"] for i in result["horizons"][0]["levels"] if i["median_se"] is None]
    assert omitted == [levels[0], levels[-1]]


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


def _drop_row(path: Path, param_id: int, horizon: int) -> None:
    table = pq.read_table(path)
    keep = [
        i
        for i, key in enumerate(zip(table["param_id"].to_pylist(), table["horizon"].to_pylist(), strict=True))
        if key != (param_id, horizon)
    ]
    pq.write_table(table.take(keep), path)


def test_partial_grids_are_refused(tmp_path: Path, make_chunks) -> None:
    """The audit's case: a chunk missing a (param_id, horizon) row plus a param_id gap passed the build, and the card
    said "8 parameter sets requested; 4 parameter sets"."""
    chunks = make_chunks(GARCH, [[0, 1, 2, 3], [4, 5, 6, 7]])
    _drop_row(chunks[1], 5, 20)
    with pytest.raises(DatasetInputError, match=rf"{chunks[1]}: .*parameter set 5 has no row for horizon\(s\) \[20\]"):
        build_dataset(chunks, tmp_path / "hf", config(garch=8))

    gap = make_chunks(GARCH, [[0, 1], [4, 5]])  # chunk 0–1 and 4–5: param_ids 2, 3, 6, 7 missing
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config(garch=8)))
    out = tmp_path / "hf"
    command = ["dataset", "build", "--out", str(out), "--config", str(config_path), *map(str, gap)]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert (
        f"model '{GARCH}': the data holds 4 parameter set(s), models.{GARCH}.n_samples asks for 8: missing "
        "param_id(s) 2–3, 6–7"
    ) in result.output
    assert not out.exists()  # checked before anything was written

    wrong_horizons = config(garch=8)
    wrong_horizons["models"][GARCH]["horizons"] = [1, 5, 20, 60]
    expected = rf"horizons \[1, 5, 20\], models\.{GARCH}\.horizons is \[1, 5, 20, 60\]"
    with pytest.raises(DatasetInputError, match=expected):
        build_dataset(make_chunks(GARCH, [list(range(8))]), tmp_path / "hf2", wrong_horizons)
    assert not (tmp_path / "hf2").exists()

    other_grid = config(heston=2)  # the data was simulated on the model's default grid (chunks.py)
    other_grid["models"][HESTON]["time_grid"] = {"steps": 128}
    with pytest.raises(DatasetInputError, match=rf"model '{HESTON}': the data was simulated on time grid\(s\) .*"):
        build_dataset(make_chunks(HESTON, [[0, 1]]), tmp_path / "hf3", other_grid)
    assert not (tmp_path / "hf3").exists()


def test_observed_parameters_outside_the_configured_ranges_are_refused(tmp_path: Path, make_chunks) -> None:
    chunks = make_chunks(GARCH, [[0, 1, 2, 3]])
    narrow = config(garch=4)
    narrow["models"][GARCH]["parameters"] = {"alpha": [0.03, 0.05]}
    with pytest.raises(DatasetInputError, match=rf"model '{GARCH}': parameter 'alpha' spans .* outside models\..*"):
        build_dataset(chunks, tmp_path / "hf", narrow)
    fixed = config(garch=4)
    fixed["models"][GARCH]["parameters"] = {"lam": -0.2}
    with pytest.raises(DatasetInputError, match=r"parameter 'lam' spans .* the fixed value -0\.2"):
        build_dataset(chunks, tmp_path / "hf", fixed)
    default = config(garch=4)
    default["models"][GARCH]["parameters"] = {}
    build_dataset(chunks, tmp_path / "hf", default)  # the data lies inside the model's default ranges
    narrow_default = {"parameters": {}, "sampler": "sobol", "n_samples": 4}
    manifest = describe_model(load_model_table(chunks))
    manifest.parameter_ranges["beta"] = [0.78, 0.9]  # the default range of beta is [0.78, 0.85]
    with pytest.raises(DatasetInputError, match=r"parameter 'beta' .* \(omitted from the config: the model's default"):
        check_parameter_ranges(manifest, narrow_default)


def test_a_bad_model_stops_a_multi_model_build_before_any_model_is_written(tmp_path: Path, make_chunks) -> None:
    out = tmp_path / "hf"
    good = make_chunks(GARCH, [[0, 1, 2, 3]])
    heston = make_chunks(HESTON, [[0, 1, 2]])
    build_dataset(good, out, config(garch=4), params_per_shard=PARAMS_PER_SHARD)
    before = digests(out)
    more_garch = make_chunks(GARCH, [[4, 5]], first_chunk=1)
    _drop_row(heston[0], 2, 5)  # the second model is bad; GARCH (first in order) must not be written either
    with pytest.raises(DatasetInputError, match="parameter set 2 has no row for horizon"):
        build_dataset([*good, *more_garch, *heston], out, config(garch=6, heston=3), params_per_shard=PARAMS_PER_SHARD)
    assert digests(out) == before


def test_quantile_levels_in_the_chunk_metadata_must_match_the_card(tmp_path: Path, make_chunks) -> None:
    (chunk,) = make_chunks(GARCH, [[0, 1]])
    table = pq.read_table(chunk)
    metadata = dict(table.schema.metadata)
    metadata[b"quantile_levels"] = json.dumps([j / 512 for j in range(512)]).encode()  # not (j + 0.5) / 512
    pq.write_table(table.replace_schema_metadata(metadata), chunk)
    with pytest.raises(DatasetInputError, match=f"{chunk}: file metadata 'quantile_levels' is not"):
        build_dataset([chunk], tmp_path / "hf")


def test_interrupted_shard_writes_leave_whole_files(tmp_path: Path, make_chunks, monkeypatch) -> None:
    """A write killed half-way leaves the old shard bytes (temp file + rename) and no temp file; stale shards are only
    removed after every new shard is in place."""
    out = tmp_path / "hf"
    chunks = make_chunks(GARCH, [[0, 1, 2, 3, 4, 5]])
    build_dataset(chunks, out, config(garch=6), params_per_shard=2)
    before = digests(out)
    original = Path.write_bytes

    def half_then_fail(self: Path, data: bytes) -> int:
        original(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        build_dataset(chunks, out, config(garch=6), params_per_shard=PARAMS_PER_SHARD)  # re-shard 2 → 4
    monkeypatch.undo()
    assert digests(out) == before  # old shards whole and still there, no new or temp file
    parquet = pq.read_table(out / "data" / GARCH)
    assert parquet.num_rows == 18


def test_the_card_refuses_shards_that_do_not_match_the_manifests(tmp_path: Path, make_chunks) -> None:
    """The workflow path (shards rule per model, then the card rule): a disabled model's shards are pruned together
    with its manifest, and a manifest whose shards are not (or no longer) in the folder stops the card."""
    out, manifests = tmp_path / "hf", tmp_path / "manifests"
    cfg = config(garch=4, heston=3)
    garch = build_model(GARCH, make_chunks(GARCH, [[0, 1, 2, 3]]), out, manifests / f"{GARCH}.json", 2)
    heston = build_model(HESTON, make_chunks(HESTON, [[0, 1, 2]]), out, manifests / f"{HESTON}.json", 2)
    build_card(out, [garch, heston], cfg, [manifests])

    # rough_heston disabled: the card drops it, its data folder AND its manifest (so re-enabling re-builds it).
    build_card(out, [garch], cfg, [manifests])
    assert not (out / "data" / HESTON).exists() and not (manifests / f"{HESTON}.json").exists()
    assert "rough_heston" not in (out / "README.md").read_text()

    # Re-enabled with the old manifest (what a stale manifest used to cause): refused, naming the missing shard.
    card = ["dataset", "card", "--out", str(out), str(manifests / f"{GARCH}.json"), str(tmp_path / "old.json")]
    (tmp_path / "old.json").write_text(heston.to_json())
    result = CliRunner().invoke(main, card)
    assert result.exit_code == 1
    assert f"{out / heston.shards[0].path}: shard listed in the manifest of '{HESTON}' is missing" in result.output
    assert "rough_heston" not in (out / "README.md").read_text()

    # A shard with other bytes (an interrupted or later build) or an extra parquet file: refused too.
    shard = out / garch.shards[0].path
    original = shard.read_bytes()
    shard.write_bytes(original[:-1] + b"\0")
    with pytest.raises(DatasetInputError, match=rf"{shard}: shard bytes differ from the manifest of '{GARCH}'"):
        build_card(out, [garch], cfg)
    shard.write_bytes(original)
    extra = out / "data" / GARCH / "params-000100-000101.parquet"
    extra.write_bytes(original)
    with pytest.raises(DatasetInputError, match=rf"{extra}: parquet file not listed in the manifest"):
        build_card(out, [garch], cfg)
    extra.unlink()
    build_card(out, [garch], cfg)


def test_quantile_standard_errors_use_the_rows_own_cdf_errors() -> None:
    """Coupled Richardson rows carry a CDF standard error above sqrt(p(1-p)/N) (rough Bergomi: 1.9-2.6x): the card's
    quantile standard errors scale with each row's ``mc_se_cdf_*`` (exactly at the columns' levels, linear in the
    normal score between them), not with the plain order-statistic formula."""
    from scipy.stats import norm

    width, num_paths, sigma = 512, 1_000_000, 0.2
    levels = (np.arange(width) + 0.5) / width
    anchors = {"p001": (0, 1.5), "p50": (width // 2, 2.5), "p999": (width - 1, 1.5)}
    plain = {name: np.sqrt(levels[j] * (1 - levels[j]) / num_paths) for name, (j, _) in anchors.items()}
    table = pa.table(
        {
            "horizon": pa.array([1, 1], pa.int32()),
            "quantiles": pa.FixedSizeListArray.from_arrays(
                pa.array(np.tile((sigma * norm.ppf(levels)).astype(np.float32), 2), pa.float32()), width
            ),
            "num_paths": pa.array([num_paths] * 2, pa.int64()),
            "std": pa.array([sigma] * 2, pa.float64()),
            **{
                f"mc_se_cdf_{name}": pa.array([plain[name] * ratio] * 2, pa.float64())
                for name, (_, ratio) in anchors.items()
            },
        }
    )
    by_level = {item["level"]: item["median_se"] for item in quantile_standard_errors(table)["horizons"][0]["levels"]}
    z_mid, z_last = norm.ppf(levels[width // 2]), norm.ppf(levels[-1])
    for p, se in by_level.items():
        z = norm.ppf(p)
        ratio = 2.5 + (1.5 - 2.5) * (abs(z) - z_mid) / (z_last - z_mid)
        exact = np.sqrt(p * (1 - p) / num_paths) * sigma / norm.pdf(z)
        assert se == pytest.approx(ratio * exact, rel=1e-3), p
    middle = levels[width // 2]  # the reported median is the published level nearest 0.5, the p50 column's level
    assert by_level[middle] == pytest.approx(2.5 * plain["p50"] * sigma / norm.pdf(z_mid), rel=1e-3)
