"""The dataset card's loading snippets run (against the built folder), are pinned to the release tag, and the card
and the shards' field metadata say what the numbers mean (units per model)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from density_engine.dataset.build import build_dataset

from .conftest import PARAMS_PER_SHARD
from .test_build import GARCH, HESTON, config

REPO = "org/densities"
TAG = "v0.1.0"


def _loading_snippets(readme: str) -> list[str]:
    section = readme.split("## Loading", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_card_snippets_run_against_the_built_folder(
    tmp_path: Path, make_chunks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Python snippet of "## Loading" runs as printed, with only the Hub address replaced by the local folder
    (hf://datasets/<repo>@<tag>/ and the repo id of load_dataset), and gives the documented shapes."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1, 2], [3, 4, 5]]), folder, config(garch=6), PARAMS_PER_SHARD)
    readme = (folder / "README.md").read_text()
    snippets = _loading_snippets(readme)
    assert len(snippets) == 3
    # pinned to the release tag
    assert f'revision="{TAG}"' in snippets[0] and snippets[0].count(f'revision="{TAG}"') == 2
    assert f"hf://datasets/{REPO}@{TAG}/data/{GARCH}/" in snippets[1]
    assert f"hf://datasets/{REPO}@{TAG}/data/{GARCH}/*.parquet" in snippets[2]
    rows = 6 * 3  # 6 parameter sets x 3 horizons
    results = []
    for snippet in snippets:
        local = snippet.replace(f"hf://datasets/{REPO}@{TAG}/", f"{folder}/").replace(f'"{REPO}"', f'"{folder}"')
        namespace: dict = {}
        exec(compile(local, "<card snippet>", "exec"), namespace)  # the card's own code
        results.append(namespace)
    q = results[0]["q"]
    assert isinstance(q, np.ndarray) and q.shape == (rows, 512) and q.dtype == np.float32
    assert len(list(results[0]["stream"])) == rows
    assert results[1]["df"].shape[0] == rows and len(results[1]["df"]["quantiles"].iloc[0]) == 512
    assert (
        results[2]["df"].shape[0] == rows
        and str(results[2]["df"].schema["quantiles"]) == "Array(Float32, shape=(512,))"
    )


def test_card_units_and_field_metadata(tmp_path: Path, make_chunks) -> None:
    """GARCH rows are sums of unit-variance returns (not log-returns): the card says how to scale them, and the shards'
    schema carries the quantile levels and the units; no file other than the shards sits in data/<model>/."""
    folder = tmp_path / "hf"
    chunks = make_chunks(GARCH, [[0, 1]]) + make_chunks(HESTON, [[0, 1]], first_chunk=1)
    build_dataset(chunks, folder, config(garch=2, heston=2), PARAMS_PER_SHARD)
    (folder / "data" / GARCH / ".snakemake_timestamp").write_text("")  # left by an older workflow version
    build_dataset(chunks, folder, config(garch=2, heston=2), PARAMS_PER_SHARD)
    readme = (folder / "README.md").read_text()
    garch = readme.split(f"### `{GARCH}`", 1)[1].split("### ", 1)[0]
    assert "**Units.**" in garch and "unconditional standard deviation" in garch and "multiply `quantiles`" in garch
    heston = readme.split(f"### `{HESTON}`", 1)[1].split("## ", 1)[0]
    assert "**Units.**" in heston and "log-returns X_h = log(S_h / S_0)" in heston
    for model in (GARCH, HESTON):
        files = sorted(p.name for p in (folder / "data" / model).iterdir())
        assert files and all(name.startswith("params-") and name.endswith(".parquet") for name in files), files
        schema = pq.read_schema(next((folder / "data" / model).iterdir()))
        quantiles = schema.field("quantiles").metadata
        assert quantiles[b"quantile_levels"] == b"p_j = (j + 0.5) / 512, j = 0..511"
        assert b"order statistic" in quantiles[b"estimator"]
        assert schema.field("dt").metadata[b"unit"].startswith(b"years")
    garch_schema = pq.read_schema(next((folder / "data" / GARCH).iterdir()))
    assert b"unconditional standard deviation" in garch_schema.field("mean").metadata[b"unit"]
    assert garch_schema.field("horizon").metadata[b"unit"].startswith(b"number of returns")


def test_card_states_the_error_budget(tmp_path: Path, make_chunks) -> None:
    """Per model and horizon the card gives the max over rows of mc_se_cdf_max and disc_err_cdf_max (the values of
    the chunks), how each was estimated (the chunks' error_estimates metadata), the time-grid policy and the rows above
    the 1e-3 goal; the shards carry steps and the eight error columns with their units in the field metadata."""
    from density_engine.engine.chunkio import ERROR_COLUMNS
    from density_engine.models import get_model_class

    folder = tmp_path / "hf"
    chunks = make_chunks(GARCH, [[0, 1]]) + make_chunks(HESTON, [[0, 1, 2]], first_chunk=1)
    build_dataset(chunks, folder, config(garch=2, heston=3), PARAMS_PER_SHARD)
    readme = (folder / "README.md").read_text()
    heston = readme.split(f"### `{HESTON}`", 1)[1].split("## ", 1)[0]
    rows = pq.read_table(chunks[1])
    header = "| horizon | fine steps N | max `mc_se_cdf_max` | max `disc_err_cdf_max` | median `disc_err_cdf_max` |"
    assert header in heston
    horizons = rows.column("horizon").to_numpy()
    for horizon in sorted(set(horizons.tolist())):
        at = horizons == horizon
        mc = rows.column("mc_se_cdf_max").to_numpy()[at].max()
        disc = rows.column("disc_err_cdf_max").to_numpy()[at]
        steps = get_model_class(HESTON).time_grid_policy().fine_steps(horizon)
        above = int((disc > 1e-3).sum())
        line = f"| {horizon} | {steps} | {mc:.2e} | {disc.max():.2e} | {np.median(disc):.2e} | {above} of 3 |"
        assert line in heston, (line, heston)
    assert "- Discretisation error: made-up test values." in heston
    assert "- Monte Carlo error: sqrt(p(1-p)/n) at the published level" in heston
    described = get_model_class(HESTON).time_grid_policy().describe()  # the model's default policy, as the chunks ran
    assert f"- Time grid (`time_grid`): {described}" in heston and "Richardson 2 q_N - q_N/2" in described
    total = int((rows.column("disc_err_cdf_max").to_numpy() > 1e-3).sum())
    assert f"- Rows whose discretisation error exceeds the 0.001 goal: {total} of {rows.num_rows} (" in heston
    garch = readme.split(f"### `{GARCH}`", 1)[1].split("### ", 1)[0]
    assert "- Time grid: none (an exact discrete-time model" in garch and "| 1 | 1 | " in garch
    assert "0: exact simulation of the discrete-time model" in garch
    assert "fine substeps per model step" not in readme and "| `substeps` |" not in readme
    for model in (GARCH, HESTON):
        shard = pq.read_table(next((folder / "data" / model).iterdir()))
        assert {"steps", *ERROR_COLUMNS} <= set(shard.column_names)
        for name in ERROR_COLUMNS:
            assert shard.schema.field(name).metadata[b"unit"].startswith(b"CDF units")
        assert shard.column("disc_err_cdf_max").to_pylist() == (
            [0.0] * shard.num_rows if model == GARCH else shard.column("disc_err_cdf_p50").to_pylist()
        )
