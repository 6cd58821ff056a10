"""Chunk integrity: everything the merge proves about a chunk before any of its rows reach the densities or the dataset.

The checks run in this order (:data:`CHECKS`; :func:`read_verified_table`, :func:`check_values`, then the merge's spec
check in :func:`density_engine.workflow.merge.verify_chunks`), each raising :class:`ChunkIntegrityError` naming the
chunk and the check that failed:

``readable``
    the parquet file opens and reads completely (a truncated or overwritten file fails here);
``checksum``
    the chunk manifest (``chunk_NNNNN.<key>.manifest.json``, written with the chunk) exists, the file has the size
    and sha256 the manifest recorded, and the content checksum of the values equals the one in the file metadata and
    in the manifest (a chunk edited after it was written fails here, even if its metadata was copied along);
``contract``
    the chunk schema and the contract checks of :func:`~density_engine.engine.chunkio.validate_chunk` (finite values,
    non-decreasing quantiles, rows sorted, no duplicates);
``values``
    value rules per column (:data:`VALUE_RULES`, schema-driven: a float column without a rule must be finite; a
    moment column may be NaN exactly where the model says that moment is infinite), and the joint moment rule
    kurt >= skew^2 - 2;
``moments``
    the quantiles and the recorded mean/std are consistent (:func:`moment_violations`; with a Monte Carlo tolerance
    for Richardson-extrapolated rows);
``spec``
    the rows, settings and parameter values are those of the chunk's spec
    (:func:`density_engine.workflow.merge.check_against_spec`).

Why the moment check of plain rows has no statistical tolerance: the quantiles are order statistics of the same N
simulated values whose mean and std are recorded, so nothing random separates them. Quantile j is the value with sorted
index k_j = floor(p_j N); the values between two recorded order statistics lie between them, those below the first
(above the last) are unbounded but have to fit in the recorded variance. :func:`moment_violations` checks the two
consequences exactly: the spread the order statistics force (sum of squared distances from the mean of every value that
is pinned or bracketed) cannot exceed N std^2, and the sum of (x - mean) over all values must be able to be 0 (bracketed
values give an interval, the unbounded tails at most sqrt(n_tails x remaining variance) by Cauchy-Schwarz). Both bounds
hold for every possible sample, so a correct chunk never fails; the only slack is float rounding (1e-6 relative). Its
power is close to a Monte Carlo test's: with 512 quantiles it catches a mean off by 0.02 std (normal rows; 0.05 std with
heavy tails) and quantiles rescaled by 2 % (normal rows; doubled quantiles always); with 64 quantiles about 0.1 std and
10 % (docs/architecture.md, "Integrity").

Richardson-extrapolated rows (the chunk metadata's ``time_grid.richardson`` is not ``none``: rough models,
docs/accuracy.md) publish a combination of two samples' order statistics and moments, not one sample's: for them the tie
rule is skipped and the mean and spread bounds are widened by :data:`MOMENT_Z` times the Monte Carlo standard error of
the recorded moments, taken from the row's own ``mc_se_cdf_p50`` (an effective path count n_eff = 1 / (4 mc_se^2); the
standard error of the mean is std / sqrt(n_eff), that of the std sqrt((kurt + 2) / 4) std / sqrt(n_eff)), counted twice
(the recorded moment and the quantiles each carry that noise).

A chunk that fails is moved aside by :func:`quarantine_chunk` (its parquet and manifest into the quarantine folder,
with a ``.reason.txt``), so the next ``snakemake`` run re-simulates exactly that chunk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from density_engine.atomic import file_sha256
from density_engine.engine.chunkio import (
    CHECKSUM_KEY,
    ERROR_COLUMNS,
    ChunkError,
    chunk_manifest_path,
    content_sha256,
    decode_metadata,
    infinite_moment_rows,
    quantile_matrix,
    read_chunk_manifest,
    validate_chunk,
)

if TYPE_CHECKING:
    import pyarrow as pa

#: The checks of :func:`verify_chunk`, in the order they run.
CHECKS = ("readable", "checksum", "contract", "values", "moments", "spec")
#: Relative float slack of the moment bounds (quantiles are float32 values, moments float64 sums).
MOMENT_RTOL = 1e-6
#: Standard errors of slack of the moment bounds of Richardson-extrapolated rows (module docstring).
MOMENT_Z = 6.0
#: Fraction of the levels at each end that the moment bounds of Richardson-extrapolated rows leave to the tails.
TRIM_LEVELS = 0.01


class ChunkIntegrityError(ValueError):
    """A chunk failed one of :data:`CHECKS`; the message names the chunk file and the check."""

    def __init__(self, path: str | Path, check: str, detail: str) -> None:
        super().__init__(f"{path}: {check} check failed: {detail}")
        self.path = Path(path)
        self.check = check
        self.detail = detail


# ---- value rules (schema-driven) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueRule:
    """A per-value rule of one numeric column: ``accepts(values) -> bool array``, described by ``text``."""

    text: str
    accepts: Callable[[np.ndarray], np.ndarray]


def _finite(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values)


FINITE = ValueRule("finite", _finite)
#: Rules per column name. A float column that is not listed (and not a parameter, checked against the spec) must be
#: finite.
NON_NEGATIVE = ValueRule("finite and >= 0", lambda v: np.isfinite(v) & (v >= 0))
#: The error-budget columns are CDF errors: finite and in [0, 1].
CDF_ERROR = ValueRule("finite and in [0, 1] (a CDF error)", lambda v: np.isfinite(v) & (v >= 0) & (v <= 1))
VALUE_RULES: dict[str, tuple[ValueRule, ...]] = {
    "mean": (FINITE,),
    "std": (NON_NEGATIVE,),
    "skew": (FINITE,),
    "kurt": (ValueRule("finite and >= -2 (excess kurtosis)", lambda v: np.isfinite(v) & (v >= -2.0)),),
    "num_paths": (ValueRule(">= 2", lambda v: v >= 2),),
    "horizon": (ValueRule(">= 1", lambda v: v >= 1),),
    "steps": (ValueRule(">= 1 (fine steps of the finest grid)", lambda v: v >= 1),),
    **{name: (CDF_ERROR,) for name in ERROR_COLUMNS},
}
#: Columns the rules skip: identifiers and the quantile vector (checked by the contract and the moment check); ``dt``
#: (null for discrete-time models) and ``steps`` are checked against the spec.
_UNRULED = {"model", "param_id", "quantiles", "seed", "dt"}


def _row_label(table: pa.Table, row: int) -> str:
    return (
        f"row {row} (param_id {table.column('param_id')[row].as_py()}, horizon {table.column('horizon')[row].as_py()})"
    )


def _infinite_moments(table: pa.Table) -> dict[str, np.ndarray]:
    """Rows whose moment columns are NaN by contract (the model says that moment is infinite: e.g. GJR-GARCH ``kurt``
    where eta <= 4); none for a table without a registered model or its parameter columns."""
    from density_engine.models import get_model_class

    try:
        model_cls = get_model_class(table.column("model")[0].as_py())
        return infinite_moment_rows(model_cls, table)
    except (KeyError, ImportError, IndexError):
        return {}


def value_violations(table: pa.Table, parameter_names: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Every broken value rule of ``table`` (first row per rule): :data:`VALUE_RULES`, finite for any other numeric
    column, and Pearson's inequality kurt >= skew^2 - 2 between the recorded moments."""
    import pyarrow as pa

    problems = []
    infinite = _infinite_moments(table)
    for fld in table.schema:
        if fld.name in _UNRULED or fld.name in parameter_names:
            continue
        if not (pa.types.is_floating(fld.type) or pa.types.is_integer(fld.type)):
            continue
        rules = VALUE_RULES.get(fld.name, (FINITE,))
        values = table.column(fld.name).to_numpy(zero_copy_only=False).astype(np.float64)
        exempt = infinite.get(fld.name, np.zeros(len(values), dtype=bool)) & np.isnan(values)
        for rule in rules:
            with np.errstate(invalid="ignore"):
                bad = np.flatnonzero(~rule.accepts(values) & ~exempt)
            if bad.size:
                row = int(bad[0])
                problems.append(
                    f"column {fld.name!r} must be {rule.text}, got {float(values[row])!r} in {_row_label(table, row)}"
                )
    if {"skew", "kurt"} <= set(table.column_names):
        skew = table.column("skew").to_numpy(zero_copy_only=False)
        kurt = table.column("kurt").to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(kurt < skew**2 - 2.0 - 1e-9 * (1.0 + skew**2))
        if bad.size:
            row = int(bad[0])
            problems.append(
                f"kurt {kurt[row]:.6g} < skew^2 - 2 = {skew[row] ** 2 - 2:.6g} (impossible for any distribution) in "
                f"{_row_label(table, row)}"
            )
    return problems


# ---- quantiles vs moments ----------------------------------------------------------------------------------------


def order_statistic_indices(num_paths: int, num_quantiles: int) -> np.ndarray:
    """Sorted-sample index floor(p_j N) of quantile j (p_j = (j + 0.5) / M), exactly in integers (the contract's
    estimator; docs/architecture.md)."""
    j = np.arange(num_quantiles, dtype=np.int64)
    return ((2 * j + 1) * int(num_paths)) // (2 * num_quantiles)


@dataclass(frozen=True)
class MomentBounds:
    """What the quantiles of each row allow for the recorded moments: the least std the order statistics force and the
    interval the sample mean must lie in, given the recorded std."""

    min_std: np.ndarray
    mean_low: np.ndarray
    mean_high: np.ndarray
    ties_ok: np.ndarray


def moment_bounds(
    quantiles: np.ndarray, mean: np.ndarray, std: np.ndarray, num_paths: int, trim: int = 0
) -> MomentBounds:
    """Exact bounds (see the module docstring) for rows of quantiles of the same ``num_paths`` and width; ``trim``
    levels at each end are treated as unknown tail values (Richardson rows: their extreme quantiles are noisy)."""
    q = np.asarray(quantiles, dtype=np.float64)
    n = int(num_paths)
    k = order_statistic_indices(n, q.shape[1])
    if trim:
        q, k = q[:, trim:-trim], k[trim:-trim]
    rows = q.shape[0]
    same = k[1:] == k[:-1]  # two levels on one order statistic: their quantiles must be equal
    ties_ok = (q[:, 1:][:, same] == q[:, :-1][:, same]).all(axis=1) if same.any() else np.ones(rows, dtype=bool)
    distinct = np.r_[True, ~same]
    gaps = np.maximum(k[1:] - k[:-1] - 1, 0).astype(np.float64)  # values strictly between two order statistics
    below, above = float(k[0]), float(n - 1 - k[-1])  # values below the first / above the last order statistic
    y = q - mean[:, None]
    lo, hi = y[:, :-1], y[:, 1:]
    known_sum = (y * distinct).sum(axis=1)
    known_sq = (y**2 * distinct).sum(axis=1)
    nearest = np.maximum(0.0, np.maximum(lo, -hi))  # distance of each bracket from the mean
    bracketed_sq = known_sq + (gaps * nearest**2).sum(axis=1)
    tail_sq = below * np.maximum(0.0, -y[:, 0]) ** 2 + above * np.maximum(0.0, y[:, -1]) ** 2
    scale = np.abs(mean) + std + np.abs(q).max(axis=1)
    variance = n * std**2
    slack = MOMENT_RTOL * (variance + n * scale**2)
    budget = np.maximum(variance + slack - bracketed_sq, 0.0)  # what the unbounded tails may still take
    tails = np.sqrt((below + above) * budget)
    sum_slack = MOMENT_RTOL * n * scale
    low = known_sum + (gaps * lo).sum(axis=1) - tails - sum_slack  # sum of (x - mean) over the sample, lowest
    high = known_sum + (gaps * hi).sum(axis=1) + tails + sum_slack
    # sum (x - recorded mean) = N (sample mean - recorded mean): the sample mean lies in mean + [low, high] / N
    min_std = np.sqrt(np.maximum(bracketed_sq + tail_sq - slack, 0.0) / n)
    return MomentBounds(min_std=min_std, mean_low=mean + low / n, mean_high=mean + high / n, ties_ok=ties_ok)


def extrapolated(table: pa.Table) -> bool:
    """Whether the rows are Richardson extrapolants (the file metadata's ``time_grid.richardson`` is not ``none``; a
    merged file whose chunks differ carries a list of grids: extrapolated if any is)."""
    grids = decode_metadata(table.schema).get("time_grid")
    grids = grids if isinstance(grids, list) else [grids]
    return any(isinstance(g, dict) and g.get("richardson", "none") != "none" for g in grids)


def moment_tolerance(
    table: pa.Table, quantiles: np.ndarray, mean: np.ndarray, std: np.ndarray, kurt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) slack per row: 0 for plain order statistics, :data:`MOMENT_Z` x twice the Monte Carlo standard
    error of the recorded moment for extrapolated rows (module docstring; from the row's ``mc_se_cdf_p50``). The
    kurtosis in the standard error of the std is the larger of the recorded one and the quantiles' own (an
    extrapolated kurtosis, 2 k_N - k_N/2, can come out small exactly when one run's std is inflated by an outlier)."""
    if not extrapolated(table) or "mc_se_cdf_p50" not in table.column_names:
        return np.zeros_like(std), np.zeros_like(std)
    se_cdf = table.column("mc_se_cdf_p50").to_numpy(zero_copy_only=False).astype(np.float64)
    per_sqrt_n = 2.0 * se_cdf  # 1 / sqrt(n_eff), n_eff = p(1 - p) / se^2 at p = 1/2
    mean_tol = MOMENT_Z * 2.0 * std * per_sqrt_n
    with np.errstate(divide="ignore", invalid="ignore"):
        kurt_q = np.nan_to_num(((quantiles - mean[:, None]) ** 4).mean(axis=1) / std**4 - 3.0, nan=0.0, posinf=0.0)
    kurt_eff = np.maximum(np.nan_to_num(kurt), kurt_q)
    std_tol = MOMENT_Z * 2.0 * std * np.sqrt(np.maximum(kurt_eff + 2.0, 0.0) / 4.0) * per_sqrt_n
    return mean_tol, std_tol


def moment_violations(table: pa.Table) -> list[str]:
    """Rows whose quantiles contradict the recorded mean/std (first offending row per kind)."""
    q = quantile_matrix(table).astype(np.float64)
    mean = table.column("mean").to_numpy(zero_copy_only=False).astype(np.float64)
    std = table.column("std").to_numpy(zero_copy_only=False).astype(np.float64)
    kurt = table.column("kurt").to_numpy(zero_copy_only=False).astype(np.float64)
    paths = table.column("num_paths").to_numpy(zero_copy_only=False)
    mean_tol, std_tol = moment_tolerance(table, q, mean, std, kurt)
    plain = not extrapolated(table)
    trim = 0 if plain else math.ceil(TRIM_LEVELS * q.shape[1])
    problems = []
    for n in np.unique(paths):
        rows = np.flatnonzero(paths == n)
        bounds = moment_bounds(q[rows], mean[rows], std[rows], int(n), trim)
        low, high = bounds.mean_low - mean_tol[rows], bounds.mean_high + mean_tol[rows]
        for kind, bad in (
            ("ties", ~bounds.ties_ok & plain),
            ("spread", bounds.min_std > std[rows] + std_tol[rows]),
            ("mean", (mean[rows] < low) | (mean[rows] > high)),
        ):
            hits = np.flatnonzero(bad)
            if not hits.size:
                continue
            i, row = int(hits[0]), int(rows[hits[0]])
            where = f"{_row_label(table, row)}, {hits.size} of {table.num_rows} row(s)"
            if kind == "ties":
                problems.append(f"two quantile levels share one order statistic of {n} paths but differ in {where}")
            elif kind == "spread":
                problems.append(
                    f"the quantiles need std >= {bounds.min_std[i]:.6g}, the recorded std is {std[row]:.6g} in {where}"
                )
            else:
                problems.append(
                    f"the quantiles (with the recorded std) put the mean in [{low[i]:.6g}, "
                    f"{high[i]:.6g}] but the recorded mean is {mean[row]:.6g} in {where}"
                )
    return problems


# ---- the whole verification --------------------------------------------------------------------------------------


def read_verified_table(path: Path, manifest_path: Path | None = None) -> pa.Table:
    """Read a chunk and prove it is the file its job wrote (``readable``, ``checksum``, ``contract``)."""
    import pyarrow.parquet as pq

    manifest_path = manifest_path or chunk_manifest_path(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several exception types for corrupt files
        raise ChunkIntegrityError(path, "readable", f"not a readable parquet file ({_short(exc)})") from None
    try:
        manifest = read_chunk_manifest(manifest_path)
    except ChunkError as exc:
        raise ChunkIntegrityError(path, "checksum", str(exc)) from None
    size, digest = path.stat().st_size, file_sha256(path)
    if size != manifest["bytes"] or digest != manifest["file_sha256"]:
        raise ChunkIntegrityError(
            path,
            "checksum",
            f"the file ({size} bytes, sha256 {digest[:12]}) is not the one its job wrote ({manifest['bytes']} bytes, "
            f"sha256 {manifest['file_sha256'][:12]} in {manifest_path.name}): it changed after it was written",
        )
    recorded = decode_metadata(table.schema).get(CHECKSUM_KEY)
    content = content_sha256(table.replace_schema_metadata(None))
    if recorded != content or manifest["content_sha256"] != content:
        raise ChunkIntegrityError(
            path,
            "checksum",
            f"the values (content sha256 {content[:12]}) differ from the checksum taken when the chunk was written "
            f"({str(recorded)[:12]} in its metadata, {manifest['content_sha256'][:12]} in {manifest_path.name})",
        )
    try:
        validate_chunk(table, path)
    except ChunkError as exc:
        raise ChunkIntegrityError(path, "contract", str(exc).removeprefix(f"{path}: ")) from None
    return table


def check_values(table: pa.Table, path: Path) -> None:
    """The ``values`` and ``moments`` checks of a chunk table (rules per column, quantiles vs moments)."""
    from density_engine.engine.chunkio import parameter_columns

    problems = value_violations(table, set(parameter_columns(table.schema)))
    if problems:
        raise ChunkIntegrityError(path, "values", "; ".join(problems))
    problems = moment_violations(table)
    if problems:
        raise ChunkIntegrityError(path, "moments", "; ".join(problems))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---- quarantine ---------------------------------------------------------------------------------------------------


def quarantine_chunk(
    path: str | Path, quarantine_dir: str | Path, reason: str, now: Callable[[], datetime] | None = None
) -> Path:
    """Move a chunk parquet and its manifest into ``quarantine_dir`` (same names; an earlier quarantined copy of the
    same chunk is replaced) and append ``reason`` to ``<stem>.reason.txt`` there; return the new parquet path.

    The chunk's name in ``results/chunks/`` is then free, so the next workflow run re-simulates exactly this chunk."""
    path = Path(path)
    target_dir = Path(quarantine_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or (lambda: datetime.now(UTC)))().strftime("%Y-%m-%dT%H:%M:%SZ")
    stem = path.name.removesuffix(".parquet")
    with open(target_dir / f"{stem}.reason.txt", "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} {path}: {reason}\n")
    target = target_dir / path.name
    for source, destination in ((path, target), (chunk_manifest_path(path), chunk_manifest_path(target))):
        if source.exists():
            os.replace(source, destination)
    return target


def quarantined(quarantine_dir: str | Path) -> dict[str, str]:
    """Chunk stems in a quarantine folder and the last reason recorded for each."""
    folder = Path(quarantine_dir)
    found: dict[str, str] = {}
    if folder.is_dir():
        for reason_file in sorted(folder.glob("*.reason.txt")):
            lines = reason_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            found[reason_file.name.removesuffix(".reason.txt")] = lines[-1] if lines else ""
    return found
