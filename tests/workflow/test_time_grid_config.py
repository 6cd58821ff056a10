"""The `time_grid` config section of the rough models (issue 9): checked at config load with one line naming the key,
part of every chunk's content key, and in the simulate rule's settings line."""

from __future__ import annotations

import copy

import pytest

from density_engine.workflow.chunks import chunk_settings, plan_model
from density_engine.workflow.config import ConfigError, validate_config

from .conftest import TINY_CONFIG


def _rough(**time_grid) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"]["rough_heston"]["time_grid"] = time_grid
    return config


@pytest.mark.parametrize(
    ("time_grid", "message"),
    [
        ({"steps": 8}, "config key models.rough_heston.time_grid.steps: 8 is too coarse (at least 16"),
        ({"richardson": "coupled"}, "config key models.rough_heston.time_grid.richardson: 'coupled' is not allowed"),
        ({"path_split": [1, 1]}, "config key models.rough_heston.time_grid.path_split: [1, 1] gives"),
        ({"steps": "64"}, "config key models.rough_heston.time_grid.steps: '64' must be of type integer"),
        ({"grid": "shared"}, "unknown config key 'models.rough_heston.time_grid.grid'"),
    ],
)
def test_bad_time_grid_names_the_key(time_grid: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(_rough(**time_grid))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_substeps_is_refused_with_the_replacement() -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"]["rough_heston"]["substeps"] = 4
    with pytest.raises(ConfigError, match=r"rough_heston\.substeps: replaced by models\.rough_heston\.time_grid"):
        validate_config(config)


def test_time_grid_for_garch_is_refused() -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"]["gjrgarch_normalized"]["time_grid"] = {"steps": 64}
    with pytest.raises(ConfigError, match=r"gjrgarch_normalized\.time_grid: gjrgarch_normalized is a discrete-time"):
        validate_config(config)


def test_grid_settings_are_in_the_content_key_and_the_settings_line() -> None:
    base = validate_config(_rough(steps=16))
    finer = validate_config(_rough(steps=32))
    keys = plan_model("rough_heston", base["models"]["rough_heston"]).chunk_keys
    assert keys != plan_model("rough_heston", finer["models"]["rough_heston"]).chunk_keys
    garch = plan_model("gjrgarch_normalized", base["models"]["gjrgarch_normalized"]).chunk_keys
    assert garch == plan_model("gjrgarch_normalized", finer["models"]["gjrgarch_normalized"]).chunk_keys
    line = chunk_settings("rough_heston", base["models"]["rough_heston"])
    assert "time_grid=16+0/day,independent,5.414:3.828" in line and " " not in line.split("time_grid=")[1].split()[0]
