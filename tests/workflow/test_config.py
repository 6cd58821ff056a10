"""Config validation: schema (unknown keys, allowed values) and model domains, one clear message naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from density_engine.workflow.config import ConfigError, load_yaml, validate_config

from .conftest import TINY_CONFIG


def _with(path: list, value, config: dict | None = None) -> dict:
    config = copy.deepcopy(config or TINY_CONFIG)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


def test_valid_config_gets_defaults() -> None:
    config = validate_config(TINY_CONFIG)
    garch = config["models"]["gjrgarch_normalized"]
    assert garch["enabled"] is True and config["resources"] == {"mem_mb": 2000, "runtime": 30}


@pytest.mark.parametrize("config_file", ["config/config.yaml", "config/production.yaml"])
def test_shipped_configs_are_valid(repo_root: Path, config_file: str) -> None:
    validate_config(load_yaml(repo_root / config_file), base_dir=repo_root)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ["modles"],
            {},
            r"unknown config key 'modles'; allowed keys at <top level>: container, device, hf, models, resources",
        ),
        (["device"], "gpu", r"config key device: 'gpu' is not allowed; allowed values: auto, cpu, cuda"),
        (
            ["models", "gjrgarch_normalized", "smapler"],
            "sobol",
            r"unknown config key 'models.gjrgarch_normalized.smapler'",
        ),
        (
            ["models", "gjrgarch_normalized", "sampler"],
            "halton",
            r"models.gjrgarch_normalized.sampler: 'halton' is not a sampler; allowed values: sobol, lhs, random, grid",
        ),
        (
            ["models", "rough_hestn"],
            {"horizons": [1], "num_paths": 10, "chunk_size": 1, "seed": 1},
            r"unknown model 'models.rough_hestn'; allowed models: gjrgarch_normalized, rough_heston, rough_bergomi",
        ),
        (
            ["models", "rough_heston", "num_paths"],
            "many",
            r"models.rough_heston.num_paths: 'many' must be of type integer",
        ),
        (
            ["models", "rough_heston", "parameters", "alpha"],
            [0.6, 1.2],
            r"models.rough_heston.parameters.alpha: range \[0.6, 1.2\] leaves the domain of alpha, \(0.5, 1\)",
        ),
        (
            ["models", "rough_heston", "parameters", "H"],
            [0.1, 0.2],
            r"unknown parameter models.rough_heston.parameters.H; parameters of rough_heston: kappa, theta, sigma",
        ),
        (
            ["models", "gjrgarch_normalized", "dt"],
            0.01,
            r"models.gjrgarch_normalized.dt: gjrgarch_normalized is a discrete-time model without 'dt'; its settings: "
            r"none",
        ),
        (
            ["models", "gjrgarch_normalized", "time_grid"],
            {"steps": 4},
            r"models.gjrgarch_normalized.time_grid: gjrgarch_normalized is a discrete-time model without 'time_grid'",
        ),
        (
            ["models", "rough_heston", "substeps"],
            4,
            r"models.rough_heston.substeps: replaced by models.rough_heston.time_grid",
        ),
        (
            ["models", "rough_heston", "time_grid"],
            {"steps": 8},
            r"models.rough_heston.time_grid.steps: 8 is too coarse \(at least 16",
        ),
        (
            ["models", "rough_heston", "time_grid"],
            {"steps": 64, "richardson": "coupled"},
            r"models.rough_heston.time_grid.richardson: 'coupled' is not allowed for this model; allowed: independent",
        ),
        (["models", "rough_heston", "horizons"], [5, 2], r"models.rough_heston.horizons: \[5, 2\] must be strictly"),
        (["models", "rough_heston", "parameters", "kappa"], [2.0, 1.0], r"must have low <= high"),
        # the model's own reason is kept (it was "none of the first 256 draws is valid" alone)
        (
            ["models", "gjrgarch_normalized", "parameters", "beta"],
            [0.99, 0.999],
            r"no valid parameter set: none of the first 256 draws is valid; the first draw \(alpha=.*, beta=0\.99.*\) "
            r"fails: gjrgarch_normalized: persistence alpha \+ beta \+ gamma\*E\[z\^2 1\{z<0\}\] .* must be < 1, "
            r"got 1\.",
        ),
    ],
)
def test_bad_config_names_the_key_and_allowed_values(path: list, value, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        validate_config(_with(path, value))


def test_missing_n_samples_and_file_checks(tmp_path: Path) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    del config["models"]["rough_heston"]["n_samples"]
    with pytest.raises(ConfigError, match=r"missing required config key 'models\.rough_heston\.n_samples'"):
        validate_config(config)
    config = _with(["models", "gjrgarch_normalized", "sampler"], {"file": "missing.csv"})
    with pytest.raises(ConfigError, match=r"models.gjrgarch_normalized: parameter file .*missing.csv does not exist"):
        validate_config(config, base_dir=tmp_path)


def test_no_enabled_model_is_an_error() -> None:
    config = copy.deepcopy(TINY_CONFIG)
    for model_cfg in config["models"].values():
        model_cfg["enabled"] = False
    with pytest.raises(ConfigError, match="no model is enabled"):
        validate_config(config)


def test_seed_beyond_a_philox_key_word_is_rejected(tmp_path) -> None:
    """Seeds (and parameter ids) key the counter-based random numbers: 32-bit words, checked before any job runs."""
    from density_engine.workflow.config import ConfigError, apply_defaults, check_model_config

    model_cfg = apply_defaults({"models": {"gjrgarch_normalized": {"n_samples": 4, "horizons": [1], "seed": 2**32,
                                                                   "num_paths": 10, "chunk_size": 2}}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"models.gjrgarch_normalized.seed: 4294967296 is too large"):
        check_model_config("gjrgarch_normalized", model_cfg["models"]["gjrgarch_normalized"], tmp_path)
