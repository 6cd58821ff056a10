"""Test inputs: chunk parquet files written by the engine's chunk writer (``density_engine.engine.chunkio``).

The rows are a small real Monte Carlo (numpy): for parameter set ``param_id`` and horizon h, N cumulative log-returns
X_h = sum of h scaled Student-t(5) returns; quantiles are the order statistics floor(p_j N), p_j = (j + 0.5) / Q. The
error budget: Monte Carlo columns sqrt(p(1 - p) / N) at the levels the engine reports; discretisation columns 0 for GJR
(exact) and a made-up 1e-4 x (1 + param_id % 3) x sqrt(h) for rough Heston (the values the card and report tests read).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from density_engine.engine import chunkio
from density_engine.models import get_model_class

GARCH_PARAMETERS = ("alpha", "gamma", "beta", "eta", "lam", "sigma0_sq")
ROUGH_HESTON_PARAMETERS = ("kappa", "theta", "sigma", "rho", "alpha", "v0")
NUM_QUANTILES = 512


def parameter_values(model: str, param_id: int) -> dict[str, float]:
    """Deterministic parameter values for a param_id (inside the models' default ranges)."""
    u = np.random.default_rng([17, param_id]).random(6)
    if model == "gjrgarch_normalized":
        return dict(
            zip(
                GARCH_PARAMETERS,
                [
                    0.02 + 0.06 * u[0],
                    0.1 * u[1],
                    0.78 + 0.07 * u[2],
                    4 + 26 * u[3],
                    -0.3 + 0.4 * u[4],
                    0.5 + 1.5 * u[5],
                ],
                strict=True,
            )
        )
    return dict(
        zip(
            ROUGH_HESTON_PARAMETERS,
            [
                0.1 + 2.9 * u[0],
                0.01 + 0.09 * u[1],
                0.1 + 0.9 * u[2],
                -0.9 + 0.9 * u[3],
                0.55 + 0.35 * u[4],
                0.01 + 0.09 * u[5],
            ],
            strict=True,
        )
    )


def chunk_table(
    model: str,
    param_ids: Sequence[int],
    horizons: Sequence[int] = (1, 5, 20),
    num_paths: int = 2048,
    seed: int = 1,
    num_quantiles: int = NUM_QUANTILES,
    metadata: dict[str, object] | None = None,
) -> pa.Table:
    """A chunk table with the exact contract columns and types, rows sorted by (param_id, horizon); ``metadata``
    overrides file metadata values (e.g. the code version)."""
    levels = (np.arange(num_quantiles) + 0.5) / num_quantiles
    index = np.floor(levels * num_paths).astype(np.int64)
    rough = model != "gjrgarch_normalized"
    policy = get_model_class(model).time_grid_policy() if rough else None
    mc_se = np.sqrt(levels * (1 - levels) / num_paths)
    errors: dict[str, list[float]] = {name: [] for name in chunkio.ERROR_COLUMNS}
    names = GARCH_PARAMETERS if model == "gjrgarch_normalized" else ROUGH_HESTON_PARAMETERS
    rows: dict[str, list] = {k: [] for k in ("param_id", "horizon", "mean", "std", "skew", "kurt", *names)}
    quantiles = []
    for param_id in param_ids:
        params = parameter_values(model, param_id)
        rng = np.random.default_rng([seed, param_id])
        scale = np.sqrt(params.get("sigma0_sq", params.get("v0", 0.02)) * 0.6)
        steps = rng.standard_t(5, size=(num_paths, max(horizons))) * scale
        cumulative = np.cumsum(steps, axis=1)
        for h in horizons:
            x = np.sort(cumulative[:, h - 1])
            centred = x - x.mean()
            std = centred.std()
            rows["param_id"].append(param_id)
            rows["horizon"].append(h)
            rows["mean"].append(float(x.mean()))
            rows["std"].append(float(std))
            rows["skew"].append(float((centred**3).mean() / std**3))
            rows["kurt"].append(float((centred**4).mean() / std**4 - 3))
            for name in names:
                rows[name].append(params[name])
            quantiles.append(x[index].astype(np.float32))
            disc = 1e-4 * (1 + param_id % 3) * np.sqrt(h) if rough else 0.0
            picked = (mc_se[0], mc_se[len(mc_se) // 2], mc_se[-1], mc_se.max())
            for level, value in zip(chunkio.ERROR_LEVELS, picked, strict=True):
                errors[f"mc_se_cdf_{level}"].append(float(value))
                errors[f"disc_err_cdf_{level}"].append(disc)
    n = len(rows["param_id"])
    columns = {
        "model": pa.array([model] * n, pa.string()),
        "param_id": pa.array(rows["param_id"], pa.int64()),
        **{name: pa.array(rows[name], pa.float64()) for name in names},
        "horizon": pa.array(rows["horizon"], pa.int32()),
        "quantiles": pa.FixedSizeListArray.from_arrays(
            pa.array(np.concatenate(quantiles), pa.float32()), num_quantiles
        ),
        **{name: pa.array(rows[name], pa.float64()) for name in ("mean", "std", "skew", "kurt")},
        "num_paths": pa.array([num_paths] * n, pa.int64()),
        "seed": pa.array([seed] * n, pa.int64()),
        "dt": pa.array([1 / 252 if rough else None] * n, pa.float64()),
        "steps": pa.array([h if policy is None else policy.fine_steps(h) for h in rows["horizon"]], pa.int32()),
        **{name: pa.array(values, pa.float64()) for name, values in errors.items()},
    }
    file_metadata = {
        "density_engine.version": "0.1.0",
        "density_engine.code_version": "0.1.0+g000000000000",
        "density_engine.git_commit": "0" * 40,
        "torch.version": "2.13.0+cpu",
        "device": "cpu",
        "quantile_levels": levels.tolist(),
        "wall_time_s": float(np.random.default_rng().random()),  # differs per run, must not reach the dataset
        "path_steps_per_s": 1.0e6,
        "spec_version": chunkio.SPEC_VERSION,
        "rng": "test-numpy",
        "time_grid": None if policy is None else policy.to_dict(),
        "error_estimates": {
            "mc_se": "sqrt(p(1-p)/n) at the published level (order statistics of n independent paths)",
            "disc_err": "made-up test values" if rough else get_model_class(model).discretisation_error_method,
        },
        **(metadata or {}),
    }
    schema = chunkio.chunk_schema(names, num_quantiles)
    return pa.Table.from_pydict(columns, schema=schema.with_metadata(chunkio.encode_metadata(file_metadata)))


def write_chunk(path: Path, table: pa.Table) -> Path:
    """Write a chunk parquet with the engine's own writer (validates it; zstd; temp file + os.replace)."""
    chunkio.write_chunk(table, path)
    return path
