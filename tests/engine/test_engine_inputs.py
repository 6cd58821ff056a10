"""Input hardening at the engine's entry points (issue 9, item 4): numpy integer seeds, ids, paths, horizons and
substeps are integers, booleans and strings are not; chunk specs name the key; moments that do not exist are NaN in
the chunk rows, exactly there."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from density_engine.engine.chunkio import ChunkError, SpecError, parse_spec, validate_chunk
from density_engine.engine.counters import philox_key
from density_engine.engine.paths import normalize_horizons, simulate_horizons
from density_engine.engine.runner import run_chunk
from density_engine.engine.simulation import Simulation
from density_engine.models.gjrgarch import GJRGarchNormalized
from density_engine.models.rough_bergomi import RoughBergomi
from tests.engine.conftest import G1, RB, make_spec


def test_philox_key_accepts_numpy_integers_and_returns_python_ints() -> None:
    key = philox_key(np.int64(7), np.uint32(3))
    assert key == (7, 3) and all(type(k) is int for k in key)
    for bad in (True, np.bool_(True), 1.0, "7"):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1\]"):
            philox_key(bad, 0)


def test_numpy_integer_seed_paths_and_horizons_give_the_same_bits() -> None:
    reference = Simulation("gjrgarch_normalized", seed=5, param_id=2, device="cpu", **G1)
    numpy_sim = Simulation("gjrgarch_normalized", seed=np.int64(5), param_id=np.int32(2), device="cpu", **G1)
    assert type(numpy_sim.seed) is int and type(numpy_sim.param_id) is int
    expected = reference.simulate_horizons([1, 4], 256)
    got = numpy_sim.simulate_horizons([np.int64(1), np.int64(4)], np.int64(256))
    assert torch.equal(expected, got)
    assert normalize_horizons([np.int64(3), 5]) == [3, 5] and type(normalize_horizons([np.int64(3)])[0]) is int
    model = RoughBergomi(**RB, substeps=np.int64(2))
    values = simulate_horizons(model, [1], 128, np.uint64(9), stream=np.int16(1), device="cpu")
    assert torch.equal(values, simulate_horizons(RoughBergomi(**RB, substeps=2), [1], 128, 9, stream=1, device="cpu"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Simulation("gjrgarch_normalized", seed=True, device="cpu", **G1), "seed must be an integer"),
        (lambda: normalize_horizons([True]), "horizons must be positive integers"),
        (
            lambda: simulate_horizons(GJRGarchNormalized(**G1), [1], True, 1, device="cpu"),
            "num_paths must be a positive integer",
        ),
        (
            lambda: simulate_horizons(GJRGarchNormalized(**G1), [1], 16, 1, stream=False, device="cpu"),
            "stream must be an integer",
        ),
    ],
)
def test_booleans_stay_refused_as_integers(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**G1, "alpha": "0.05"}, r"parameter_sets\[0\]\.params \(param_id 1\): parameter 'alpha': expected a number"),
        ({**G1, "lam": True}, r"parameter_sets\[0\]\.params \(param_id 1\): parameter 'lam': expected a number"),
    ],
)
def test_spec_refuses_string_and_boolean_parameters(params: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(make_spec(parameter_sets=[{"param_id": 1, "params": params}]), "chunk.json")


def test_spec_refuses_underflowing_rough_bergomi_set() -> None:
    params = {"eta": 50.0, "rho": -0.7, "hurst": 1e-6, "xi0": 0.04}
    spec = make_spec("rough_bergomi", parameter_sets=[{"param_id": 0, "params": params}])
    with pytest.raises(SpecError, match=r"chunk\.json: parameter_sets\[0\]\.params .*variance underflows"):
        parse_spec(spec, "chunk.json")


def test_spec_accepts_numpy_integers() -> None:
    spec = parse_spec(make_spec(seed=np.int64(3), num_paths=np.int32(100), horizons=[np.int64(1), 2]))
    assert (spec.seed, spec.num_paths, spec.horizons) == (3, 100, (1, 2))
    assert type(spec.seed) is int and all(type(h) is int for h in spec.horizons)


def _heavy_tailed_chunk() -> pa.Table:
    """GJR chunk with eta 2.8 (no 3rd moment), 3.5 (no 4th) and 6 (all four), 2000 paths, horizons 1 and 5."""
    sets = [
        {"param_id": 0, "params": {**G1, "eta": 2.8}},
        {"param_id": 1, "params": {**G1, "eta": 3.5}},
        {"param_id": 2, "params": G1},
    ]
    spec = parse_spec(make_spec(parameter_sets=sets, num_paths=2000, horizons=[1, 5]))
    return run_chunk(spec, device="cpu").table


def test_runner_writes_nan_exactly_where_the_moment_is_infinite() -> None:
    table = _heavy_tailed_chunk()
    skew = np.asarray(table.column("skew"))
    kurt = np.asarray(table.column("kurt"))
    eta = np.asarray(table.column("eta"))
    assert np.isnan(kurt[eta <= 4]).all() and np.isfinite(kurt[eta > 4]).all()
    assert np.isnan(skew[eta <= 3]).all() and np.isfinite(skew[eta > 3]).all()
    assert np.isfinite(np.asarray(table.column("std"))).all()
    validate_chunk(table)  # the contract accepts NaN there

    def with_column(name: str, values: np.ndarray) -> pa.Table:
        index = table.schema.get_field_index(name)
        return table.set_column(index, name, pa.array(values, pa.float64()))

    noisy = kurt.copy()
    noisy[0] = 12.0  # a sample kurtosis where the 4th moment is infinite: noise, refused
    with pytest.raises(ChunkError, match=r"column 'kurt' must be NaN in row 0 \(gjrgarch_normalized: no finite moment"):
        validate_chunk(with_column("kurt", noisy))
    missing = kurt.copy()
    missing[-1] = math.nan  # NaN where eta = 6: still an error
    with pytest.raises(ChunkError, match=r"column 'kurt' has NaN/inf \(row 5\)"):
        validate_chunk(with_column("kurt", missing))
    infinite = skew.copy()
    infinite[0] = math.inf
    with pytest.raises(ChunkError, match=r"column 'skew' must be NaN in row 0"):
        validate_chunk(with_column("skew", infinite))


@pytest.mark.parametrize(("eta", "blank"), [(3.0, {"skew", "kurt"}), (3.5, {"kurt"}), (6.0, set())])
def test_path_summary_blanks_the_moments_the_model_says_are_infinite(eta: float, blank: set[str]) -> None:
    """The user API gives the same NaN as the chunk rows: a sample kurtosis where eta <= 4 is noise, not an estimate."""
    summary = Simulation("gjrgarch_normalized", seed=3, device="cpu", **{**G1, "eta": eta}).path_summary([1, 5], 4096)
    for name in ("mean", "std", "skew", "kurt"):
        values = getattr(summary, name)
        assert np.isnan(values).all() if name in blank else np.isfinite(values).all(), name
