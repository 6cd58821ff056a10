"""Chunk integrity (density_engine.workflow.integrity) on real chunks of the tiny workflow: every kind of bad chunk is
named with the check it fails, moved to the quarantine folder, and never reaches the merged densities; the exact
quantile/moment bounds never reject a correct sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from density_engine.engine.chunkio import chunk_manifest_path, quantile_matrix
from density_engine.workflow.chunks import plan_model
from density_engine.workflow.config import apply_defaults
from density_engine.workflow.integrity import moment_bounds, order_statistic_indices, quarantined, value_violations
from density_engine.workflow.merge import MergeError, merge_chunks, planned_chunks

from .conftest import TINY_CONFIG, forge_chunk, with_column

GARCH = "gjrgarch_normalized"


@pytest.fixture
def chunks(finished_workflow: Path, tmp_path: Path) -> list[tuple[Path, Path]]:
    """Copies of the two real GARCH chunks (with their chunk manifests) and specs of the tiny workflow run."""
    for kind in ("chunks", "specs"):
        shutil.copytree(finished_workflow / "results" / kind / GARCH, tmp_path / kind)
    plan = plan_model(GARCH, apply_defaults(TINY_CONFIG)["models"][GARCH])
    return planned_chunks(plan, tmp_path / "chunks", tmp_path / "specs")


def _quantiles_times(table, factor: float):
    return with_column(table, "quantiles", quantile_matrix(table).astype(np.float64) * factor)


def _shift_mean(table, stds: float):
    mean = table.column("mean").to_numpy() + stds * table.column("std").to_numpy()
    return with_column(table, "mean", mean)


def _swap_two_quantiles(table):
    q = quantile_matrix(table).copy()
    q[1, [20, 40]] = q[1, [40, 20]]
    return with_column(table, "quantiles", q)


def _impossible_kurtosis(table):
    kurt = table.column("kurt").to_numpy().copy()
    kurt[2] = table.column("skew").to_numpy()[2] ** 2 - 2.5
    return with_column(table, "kurt", kurt)


def _set_value(table, column: str, value: float):
    values = table.column(column).to_numpy().copy()
    values[2] = value
    return with_column(table, column, values)


# (how the chunk is damaged, the check that must name it, a phrase of the message). "forged" chunks carry checksums
# that match their (wrong) values, as a buggy engine would write them: the value checks have to catch them.
CASES = {
    "doubled quantiles": ("forged", _quantiles_times, 2.0, "moments", "the quantiles need std >="),
    # the tiny config has 64 quantile levels: the bounds are ~0.11 std wide for the mean and ~0.92 std for the spread
    "quantiles x 1.2": ("forged", _quantiles_times, 1.2, "moments", "the quantiles need std >="),
    "mean shifted by 0.25 std": ("forged", _shift_mean, 0.25, "moments", "put the mean in ["),
    "mean shifted by -0.25 std": ("forged", _shift_mean, -0.25, "moments", "put the mean in ["),
    "non-monotone quantiles": ("forged", lambda t, _: _swap_two_quantiles(t), None, "contract", "quantiles decrease"),
    "kurt < skew^2 - 2": ("forged", lambda t, _: _impossible_kurtosis(t), None, "values", "impossible"),
    "negative std": ("forged", lambda t, _: with_column(t, "std", -t.column("std").to_numpy()), None, "values", "std"),
    "CDF error above 1": (
        "forged",
        lambda t, _: _set_value(t, "mc_se_cdf_max", 1.5),
        None,
        "contract",
        "'mc_se_cdf_max'",
    ),
    "negative CDF error": (
        "forged",
        lambda t, _: _set_value(t, "disc_err_cdf_p50", -1e-3),
        None,
        "contract",
        "disc_err",
    ),
    "steps differ from the spec": ("forged", lambda t, _: _set_value(t, "steps", 7), None, "spec", "column steps at"),
    "edited after its checksum": ("edited", _quantiles_times, 2.0, "checksum", "changed after it was written"),
    "truncated file": ("truncated", None, None, "readable", "not a readable parquet file"),
    "manifest missing": ("no manifest", None, None, "checksum", "chunk manifest not found"),
}


def _damage(path: Path, how: str, change, argument) -> None:
    table = pq.read_table(path)
    if how == "forged":
        forge_chunk(path, change(table, argument))
    elif how == "edited":  # rewritten by hand, the file metadata (with the checksum) copied along
        pq.write_table(change(table, argument), path)
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        chunk_manifest_path(path).unlink()


@pytest.mark.parametrize("case", list(CASES))
def test_bad_chunk_is_named_quarantined_and_never_merged(
    chunks: list[tuple[Path, Path]], tmp_path: Path, case: str
) -> None:
    how, change, argument, check, phrase = CASES[case]
    out = tmp_path / "results" / "densities.parquet"
    merge_chunks(GARCH, [c for c, _ in chunks], out, specs=[s for _, s in chunks])
    good = out.read_bytes()
    bad = chunks[1][0]
    _damage(bad, how, change, argument)
    quarantine = tmp_path / "quarantine"
    with pytest.raises(MergeError) as error:
        merge_chunks(GARCH, [c for c, _ in chunks], out, specs=[s for _, s in chunks], quarantine_dir=quarantine)
    message = str(error.value)
    assert message.splitlines()[0] == (
        f"{GARCH}: 1 of 2 chunk(s) failed the integrity checks and were moved to {quarantine}/ ({out} was not "
        "changed); run snakemake again: it re-simulates exactly these chunks"
    )
    assert f"  {bad}: {check} check failed: " in message and phrase in message, message
    assert out.read_bytes() == good  # the last good densities stay
    assert not bad.exists() and (quarantine / bad.name).is_file()  # moved aside: the next run re-simulates it
    assert chunks[0][0].exists()  # the good chunk stays
    stem = bad.name.removesuffix(".parquet")
    assert f"{check}: " in quarantined(quarantine)[stem]


def test_every_bad_chunk_is_reported_and_the_spec_is_checked(chunks: list[tuple[Path, Path]], tmp_path: Path) -> None:
    """All chunks are checked before the merge gives up (one run quarantines them all), and a chunk with valid
    checksums but another seed than its spec fails the spec check."""
    first, second = chunks[0][0], chunks[1][0]
    table = pq.read_table(first)
    forge_chunk(first, with_column(table, "seed", [99] * table.num_rows))
    second.write_bytes(b"not parquet")
    with pytest.raises(MergeError) as error:
        merge_chunks(GARCH, [first, second], tmp_path / "out.parquet", specs=[s for _, s in chunks])
    lines = str(error.value).splitlines()
    assert lines[0].startswith(f"{GARCH}: 2 of 2 chunk(s) failed the integrity checks (")
    assert f"{first}: spec check failed: does not match its spec {chunks[0][1]}: seed is 99 in the chunk" in lines[1]
    assert lines[2].startswith(f"  {second}: readable check failed")
    assert not (tmp_path / "out.parquet").exists() and first.exists()  # no quarantine folder given: nothing moved


def test_value_rules_are_schema_driven(chunks: list[tuple[Path, Path]]) -> None:
    """A new float column (e.g. an error-budget column) is checked without code changes: it must be finite."""
    table = pq.read_table(chunks[0][0])
    assert value_violations(table, {"alpha", "gamma", "beta", "eta", "lam", "sigma0_sq"}) == []
    values = np.zeros(table.num_rows)
    values[1] = np.inf
    problems = value_violations(table.append_column("mc_se", pa.array(values)), set())
    assert problems == ["column 'mc_se' must be finite, got inf in row 1 (param_id 0, horizon 3)"]
    errors = table.column("disc_err_cdf_max").to_numpy().copy()
    errors[3] = 1.25
    problems = value_violations(with_column(table, "disc_err_cdf_max", errors), set())
    assert problems == [
        "column 'disc_err_cdf_max' must be finite and in [0, 1] (a CDF error), got 1.25 in row 3 "
        "(param_id 1, horizon 3)"
    ]


def _richardson_table(rows: list[tuple[np.ndarray, float, float, float, float]], num_paths: int) -> pa.Table:
    """A table of extrapolated rows (quantiles, mean, std, kurt, mc_se at the median) whose metadata says so."""
    grid = {"policy": "per_horizon", "steps": 16, "steps_per_day": 0, "richardson": "independent"}
    width = len(rows[0][0])
    return pa.table(
        {
            "param_id": pa.array(range(len(rows)), pa.int64()),
            "horizon": pa.array([1] * len(rows), pa.int32()),
            "quantiles": pa.FixedSizeListArray.from_arrays(
                pa.array(np.concatenate([r[0] for r in rows]).astype(np.float32)), width
            ),
            **{name: pa.array([r[i] for r in rows]) for i, name in enumerate(("mean", "std", "kurt"), start=1)},
            "mc_se_cdf_p50": pa.array([r[4] for r in rows]),
            "num_paths": pa.array([num_paths] * len(rows), pa.int64()),
        }
    ).replace_schema_metadata({"time_grid": json.dumps(grid)})


@pytest.mark.parametrize(
    "sample",
    [
        lambda rng, n: rng.standard_normal(n),
        lambda rng, n: rng.standard_t(4, n),
        lambda rng, n: rng.lognormal(0.0, 1.0, n),
    ],
)
@pytest.mark.parametrize(("num_paths", "num_quantiles"), [(20_000, 512), (4_000, 64), (1_000, 512)])
def test_moment_check_of_richardson_rows(sample, num_paths: int, num_quantiles: int) -> None:
    """Richardson rows (2 q_N - q_N/2 of two independent runs of 5.41 and 3.83 x num_paths paths, moments
    extrapolated alike, as the engine publishes them): the Monte Carlo tolerance taken from the row's mc_se column
    never rejects a correct row (whatever the distribution), and a mean off by 10 such tolerances is caught."""
    from density_engine.workflow.integrity import MOMENT_Z, moment_violations

    rng = np.random.default_rng([num_paths, num_quantiles, 9])
    paths = (int(np.ceil(5.4142 * num_paths)), int(np.ceil(3.8284 * num_paths)))
    rows = []
    for _ in range(10):
        parts = []
        for n in paths:
            x = np.sort(sample(rng, n).astype(np.float32)).astype(np.float64)
            c = x - x.mean()
            parts.append(
                (x[order_statistic_indices(n, num_quantiles)], x.mean(), x.std(), (c**4).mean() / x.var() ** 2 - 3)
            )
        (qa, ma, sa, ka), (qb, mb, sb, kb) = parts
        se = np.sqrt(0.25 * (4 / paths[0] + 1 / paths[1]))
        rows.append((np.sort(2 * qa - qb), 2 * ma - mb, 2 * sa - sb, 2 * ka - kb, se))
    assert moment_violations(_richardson_table(rows, num_paths)) == []
    shifted = [(q, m + 10 * MOMENT_Z * 4 * s * se, s, k, se) for q, m, s, k, se in rows]
    assert moment_violations(_richardson_table(shifted, num_paths))
    # the same rows without the Richardson metadata get no tolerance (plain rows: the exact bounds)
    plain = _richardson_table(shifted, num_paths).replace_schema_metadata(None)
    assert moment_violations(plain)


@pytest.mark.parametrize(
    "sample",
    [
        lambda rng, n: rng.standard_normal(n),
        lambda rng, n: rng.standard_t(2.5, n),  # heavy tails: infinite fourth moment
        lambda rng, n: rng.lognormal(0.0, 1.5, n),  # strong skew
        lambda rng, n: np.round(rng.standard_normal(n), 1),  # many ties
    ],
)
@pytest.mark.parametrize(("num_paths", "num_quantiles"), [(20_000, 512), (4_000, 64), (300, 512), (7, 64)])
def test_moment_bounds_hold_for_every_correct_sample(sample, num_paths: int, num_quantiles: int) -> None:
    """The bounds are exact: the order statistics and the mean/std of the same sample always satisfy them (no false
    alarm, whatever the distribution, N < M included), in float32 as the engine stores them."""
    rng = np.random.default_rng([num_paths, num_quantiles])
    for _ in range(5):
        x = np.sort(sample(rng, num_paths).astype(np.float32))
        q = x[order_statistic_indices(num_paths, num_quantiles)][None, :]
        xd = x.astype(np.float64)
        mean, std = np.array([xd.mean()]), np.array([xd.std()])
        bounds = moment_bounds(q, mean, std, num_paths)
        assert bounds.ties_ok[0] and bounds.min_std[0] <= std[0]
        assert bounds.mean_low[0] <= mean[0] <= bounds.mean_high[0]


def test_moment_bounds_power() -> None:
    """What the check catches on a normal sample of 20,000 paths with 512 levels: a mean off by 0.02 std, quantiles
    scaled by 1.02 (docs/architecture.md quotes these figures)."""
    rng = np.random.default_rng(1)
    x = np.sort(rng.standard_normal(20_000).astype(np.float32))
    q = x[order_statistic_indices(20_000, 512)][None, :].astype(np.float64)
    mean, std = np.array([x.astype(np.float64).mean()]), np.array([x.astype(np.float64).std()])

    def rejected(quantiles: np.ndarray, m: np.ndarray) -> bool:
        b = moment_bounds(quantiles, m, std, 20_000)
        return bool(b.min_std[0] > std[0] or not b.mean_low[0] <= m[0] <= b.mean_high[0])

    assert not rejected(q, mean)
    assert rejected(q, mean + 0.02 * std) and rejected(q, mean - 0.02 * std)
    assert rejected(q * 1.02, mean) and rejected(q * 2.0, mean)


def test_quarantine_reason_file(chunks: list[tuple[Path, Path]], tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from density_engine.workflow.integrity import quarantine_chunk

    path = chunks[0][0]
    moved = quarantine_chunk(path, tmp_path / "q", "moments: x", now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert moved == tmp_path / "q" / path.name and chunk_manifest_path(moved).is_file()
    reason = (tmp_path / "q" / f"{path.name.removesuffix('.parquet')}.reason.txt").read_text()
    assert reason == f"2026-01-02T03:04:05Z {path}: moments: x\n"
    assert json.loads(chunk_manifest_path(moved).read_text())["file"] == path.name
