"""Input hardening in the workflow (issue 9, item 4): config values of the wrong type and rough Bergomi ranges whose
variance underflows are refused before any job runs, with one line naming the key; GJR chunks with eta <= 4 (NaN
kurtosis by contract) merge, chunks with NaN anywhere else do not."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from density_engine.engine.chunkio import parse_spec, write_chunk, write_spec
from density_engine.engine.runner import run_chunk
from density_engine.workflow.config import ConfigError, apply_defaults, check_model_config, validate_config
from density_engine.workflow.integrity import value_violations
from density_engine.workflow.merge import MergeError, merge_chunks
from density_engine.workflow.references import reference
from density_engine.workflow.samplers import sample_parameter_sets

from .conftest import TINY_CONFIG, forge_chunk, with_column

GARCH = "gjrgarch_normalized"
# config/production.yaml's rough Bergomi entry (copied: tests read nothing outside the repository's tests)
ROUGH_BERGOMI = {
    "sampler": "sobol",
    "n_samples": 64,
    "parameters": {"eta": [0.5, 3.0], "rho": [-0.95, -0.3], "hurst": [0.03, 0.3], "xi0": [0.01, 0.10]},
    "horizons": [1, 2, 5, 10, 21, 42, 63, 126, 252],
    "dt": 1 / 252,
    "time_grid": {"steps": 128, "steps_per_day": 2, "scheme": "cell"},
    "num_paths": 1000,
    "num_quantiles": 64,
    "chunk_size": 16,
    "seed": 20260103,
}


def _config_with(model: str, parameter: str, value) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"].setdefault(model, copy.deepcopy(ROUGH_BERGOMI))["parameters"][parameter] = value
    return config


@pytest.mark.parametrize("value", ["0.05", True, [0.02, "0.08"], [False, 0.08]])
def test_config_refuses_string_and_boolean_parameters_naming_the_key(value) -> None:
    """YAML gives a string for a quoted "0.05" and a bool for yes/true: both are refused, never read as numbers."""
    expected = r"config key models\.gjrgarch_normalized\.parameters\.alpha: .* must be a number \(fixed\) or a"
    with pytest.raises(ConfigError, match=expected):
        validate_config(_config_with(GARCH, "alpha", value))  # the schema's message
    model_cfg = apply_defaults(_config_with(GARCH, "alpha", value))["models"][GARCH]
    with pytest.raises(ConfigError, match=expected + r" \[low, high\] range of numbers \(no strings or booleans\)"):
        check_model_config(GARCH, model_cfg)  # the model-domain check alone (no schema) says the same


def test_production_rough_bergomi_ranges_are_valid_and_sampled_sets_pass() -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"]["rough_bergomi"] = copy.deepcopy(ROUGH_BERGOMI)
    validated = validate_config(config)
    frame = sample_parameter_sets("rough_bergomi", validated["models"]["rough_bergomi"])
    assert len(frame) == 64  # no draw dropped: every corner of the production box is valid


@pytest.mark.parametrize(
    ("parameter", "value", "shown"),
    [
        ("eta", [0.5, 50.0], "eta=50"),  # compensator 1250 at 1 year
        ("xi0", [1e-30, 0.1], "xi0=1e-30"),
    ],
)
def test_config_refuses_rough_bergomi_ranges_whose_variance_underflows(parameter: str, value, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(_config_with("rough_bergomi", parameter, value))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("models.rough_bergomi: the corner (")
    assert shown in message and "parameters.eta, parameters.rho, parameters.hurst, parameters.xi0" in message
    assert "parameters 'eta', 'hurst', 'xi0': variance underflows" in message


def test_fixed_underflowing_rough_bergomi_set_is_refused() -> None:
    config = _config_with("rough_bergomi", "eta", 50.0)
    config["models"]["rough_bergomi"]["parameters"]["hurst"] = 1e-6
    with pytest.raises(ConfigError, match=r"models\.rough_bergomi: .*eta=50, .*hurst=1e-06.*variance underflows"):
        validate_config(config)


def _garch_chunk(tmp_path: Path, etas: list[float]) -> tuple[Path, Path]:
    """A real (tiny) GJR chunk and its spec; the parameter sets differ only in eta."""
    base = {"alpha": 0.05, "gamma": 0.10, "beta": 0.85, "lam": -0.2, "sigma0_sq": 1.0}
    data = {
        "spec_version": 2,
        "model": GARCH,
        "chunk_id": 0,
        "seed": 5,
        "num_paths": 1500,
        "num_quantiles": 32,
        "horizons": [1, 4],
        "dt": None,
        "time_grid": None,
        "parameter_sets": [{"param_id": i, "params": {**base, "eta": eta}} for i, eta in enumerate(etas)],
    }
    spec_path, chunk_path = tmp_path / "chunk_00000.json", tmp_path / "chunk_00000.parquet"
    write_spec(spec_path, data)
    write_chunk(run_chunk(parse_spec(data), device="cpu").table, chunk_path)
    return chunk_path, spec_path


def test_nan_kurtosis_merges_only_where_the_fourth_moment_is_infinite(tmp_path: Path) -> None:
    chunk, spec = _garch_chunk(tmp_path, [3.5, 8.0])
    table = pq.read_table(chunk)
    assert np.isnan(table.column("kurt").to_numpy()[:2]).all()
    assert value_violations(table, {"alpha", "gamma", "beta", "eta", "lam", "sigma0_sq"}) == []
    assert merge_chunks(GARCH, [chunk], tmp_path / "densities.parquet", specs=[spec]) == {"chunks": 1, "rows": 4}
    merged = pq.read_table(tmp_path / "densities.parquet")
    assert np.isnan(merged.column("kurt").to_numpy()[:2]).all() and np.isfinite(merged.column("kurt")[2].as_py())

    kurt = table.column("kurt").to_numpy().copy()
    kurt[3] = math.nan  # eta = 8: the 4th moment exists, a NaN there is a broken chunk
    forged = tmp_path / "forged" / chunk.name
    forged.parent.mkdir()
    forge_chunk(forged, with_column(table, "kurt", kurt))
    with pytest.raises(MergeError, match=r"contract check failed: .*column 'kurt' has NaN/inf \(row 3\)"):
        merge_chunks(GARCH, [forged], tmp_path / "densities.parquet", specs=[spec])
    bad = value_violations(with_column(table, "kurt", kurt), set())
    assert bad == ["column 'kurt' must be finite and >= -2 (excess kurtosis), got nan in row 3 (param_id 1, horizon 4)"]


def test_garch_reference_skips_rows_without_a_fourth_moment() -> None:
    params = {"alpha": 0.05, "gamma": 0.10, "beta": 0.85, "eta": 3.5, "lam": -0.2, "sigma0_sq": 1.0}
    moments = {"mean": 0.0, "std": 1.0, "kurt": math.nan}
    assert reference(GARCH, params, 4, None, moments, 1000) is None
    assert reference(GARCH, {**params, "eta": 8.0}, 4, None, {**moments, "kurt": 1.0}, 1000) is not None
