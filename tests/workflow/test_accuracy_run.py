"""Issue 9 done-when, through `snakemake`: corner parameter sets of both rough models, config/production.yaml's grid
settings (copied below), CPU-feasible paths, merged into densities.parquet; every published level within 1e-3 + the
reference's accuracy + 4.5 x the row's own Monte Carlo column of the independent reference, and the rows carry the
error budget. (The engine-level tests with more corners are in tests/models/test_pipeline_accuracy.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from density_engine.engine.chunkio import DISC_ERROR_COLUMNS, MC_ERROR_COLUMNS, quantile_levels, quantile_matrix
from density_engine.models.rough_heston_fourier import ReferenceCDF, table_levels

from .conftest import REPO_ROOT, run_snakemake

DATA = REPO_ROOT / "tests" / "models" / "data"
GOAL = 1e-3
# config/production.yaml's time_grid sections (tests read nothing outside tests/; test_production_grid_is_copied
# keeps the copy true)
PRODUCTION_GRIDS = {
    "rough_heston": {"steps": 44, "steps_per_day": 0, "richardson": "independent", "path_split": [5.4142, 3.8284]},
    "rough_bergomi": {"steps": 128, "steps_per_day": 2, "scheme": "cell"},
}
CORNERS = {"rough_heston": ["A", "feller_rough"], "rough_bergomi": ["MP", "eta05_H003"]}
PATHS = {"rough_heston": 20_000, "rough_bergomi": 100_000}
DAYS = [1, 21]


def _cases(model: str) -> tuple[np.ndarray, list[dict]]:
    payload = json.loads((DATA / f"{model}_quantiles.json").read_text())
    levels = np.asarray(payload.get("table_levels", table_levels()), dtype=float)
    return levels, [c for c in payload["cases"] if c["name"] in CORNERS[model] and c["days"] in DAYS]


def _config(tmp_path: Path) -> dict:
    models: dict = {}
    for model, names in CORNERS.items():
        _, cases = _cases(model)
        params = {c["name"]: c["params"] for c in cases}
        header = list(params[names[0]])
        rows = [",".join(str(params[name][key]) for key in header) for name in names]
        (tmp_path / f"{model}.csv").write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
        models[model] = {
            "sampler": {"file": f"resources/{model}.csv"},
            "horizons": DAYS,
            "dt": 1 / 252,
            "time_grid": PRODUCTION_GRIDS[model],
            "num_paths": PATHS[model],
            "num_quantiles": 512,
            "chunk_size": 2,
            "seed": 20261203,
        }
    return {"device": "cpu", "resources": {"mem_mb": 4000, "runtime": 30}, "models": models}


def test_production_grid_is_copied() -> None:
    production = yaml.safe_load((REPO_ROOT / "config" / "production.yaml").read_text())
    for model, grid in PRODUCTION_GRIDS.items():
        assert production["models"][model]["time_grid"] == grid


def test_corner_sets_through_snakemake_meet_the_goal_within_monte_carlo_noise(make_workflow, tmp_path: Path) -> None:
    config = _config(tmp_path)
    workdir = make_workflow(config)
    (workdir / "resources").mkdir(exist_ok=True)
    for model in CORNERS:
        (workdir / "resources" / f"{model}.csv").write_text((tmp_path / f"{model}.csv").read_text())
    targets = [f"results/{model}/densities.parquet" for model in CORNERS]
    run_snakemake(workdir, "-c", "2", *targets, timeout=600)
    published = quantile_levels(512)
    for model in CORNERS:
        table = pq.read_table(workdir / "results" / model / "densities.parquet")
        levels, cases = _cases(model)
        q = quantile_matrix(table).astype(np.float64)
        rows = table.to_pylist()
        for case in cases:
            (index,) = [
                i
                for i, row in enumerate(rows)
                if row["horizon"] == case["days"] and all(abs(row[k] - v) < 1e-12 for k, v in case["params"].items())
            ]
            row = rows[index]
            error = np.abs(ReferenceCDF(levels, case["quantiles"])(q[index]) - published)
            accuracy = case.get("accuracy", case.get("interpolation_max_abs_cdf", 0.0))
            # the row's own Monte Carlo column, interpolated between its three levels and its maximum (a bound
            # per level: sqrt(p(1-p)) shape scaled to the row's p50 value, never below the tails' values)
            shape = np.sqrt(published * (1 - published)) / 0.5
            mc = np.maximum(row["mc_se_cdf_p50"] * shape, min(row["mc_se_cdf_p001"], row["mc_se_cdf_p999"]))
            assert np.all(error <= GOAL + accuracy + 4.5 * mc), (model, case["name"], case["days"], error.max())
            assert row["steps"] == (44 if model == "rough_heston" else 128)
            assert all(0 <= row[c] <= 1 for c in MC_ERROR_COLUMNS + DISC_ERROR_COLUMNS)
            if model == "rough_heston":  # its column is exact (Fourier): these corners are inside the goal, it says so
                assert row["disc_err_cdf_max"] < GOAL
