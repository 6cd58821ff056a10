"""Shard names of the dataset folder, computable from the config alone (no pyarrow): the workflow declares every
shard file as an output when it builds the DAG, so a missing shard is re-built and no stray file lands in data/."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# About 2 KiB per row in memory (512 float32 + scalars), about 1.5 KiB on disk: 100k rows ≈ 200 MB in memory,
# ≈ 150 MB on disk, inside the 100–500 MB shard range of the Hub's recommendations (hf-hub.md §1.3).
TARGET_ROWS_PER_SHARD = 100_000


def default_params_per_shard(num_horizons: int) -> int:
    """The shard width in parameter sets: :data:`TARGET_ROWS_PER_SHARD` / horizons, rounded down to two significant
    digits (so a full shard holds 90–100 % of the target rows).

    It depends only on the number of horizons (fixed per model by the config), never on the number of rows, so adding
    parameter sets does not move shard boundaries.
    """
    target = max(1, TARGET_ROWS_PER_SHARD // max(1, num_horizons))
    if target < 100:
        return target
    step = 10 ** (len(str(target)) - 2)
    return target // step * step


def shard_name(model: str, first: int, last: int) -> str:
    """Relative path of the shard holding param_ids ``first..last``."""
    return f"data/{model}/params-{first:06d}-{last:06d}.parquet"


def planned_shard_names(
    model: str, param_id_runs: Iterable[Sequence[int]], num_horizons: int, params_per_shard: int | None = None
) -> list[str]:
    """The shard paths (relative to the dataset folder) that the param_ids ``[first, last]`` runs fill, in order."""
    width = params_per_shard or default_params_per_shard(num_horizons)
    indices: set[int] = set()
    for first, last in param_id_runs:
        indices.update(range(int(first) // width, int(last) // width + 1))
    return [shard_name(model, k * width, k * width + width - 1) for k in sorted(indices)]


def id_runs(ids: Iterable[int]) -> list[list[int]]:
    """Contiguous ``[first, last]`` runs of sorted unique integers (``[0, 1, 2, 5]`` → ``[[0, 2], [5, 5]]``)."""
    runs: list[list[int]] = []
    for value in sorted(set(ids)):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return runs
