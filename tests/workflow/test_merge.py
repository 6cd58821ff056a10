"""Per-model merge of real chunk files: validation of every chunk and against its spec, errors naming the file, only
the current plan's chunks, atomic output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import density_engine.atomic
from density_engine.atomic import file_sha256
from density_engine.engine.chunkio import chunk_manifest_path
from density_engine.workflow.chunks import plan_model
from density_engine.workflow.config import apply_defaults
from density_engine.workflow.merge import MergeError, merge_chunks, planned_chunks

from .conftest import TINY_CONFIG, forge_chunk, with_column

GARCH = "gjrgarch_normalized"
GARCH_CONFIG = apply_defaults(TINY_CONFIG)["models"][GARCH]


@pytest.fixture
def garch_folder(finished_workflow: Path, tmp_path: Path) -> Path:
    """A folder with copies of the real GARCH chunks and specs simulated by the tiny workflow run."""
    for kind in ("chunks", "specs"):
        shutil.copytree(finished_workflow / "results" / kind / GARCH, tmp_path / kind)
    return tmp_path


@pytest.fixture
def garch_chunks(garch_folder: Path) -> list[tuple[Path, Path]]:
    """(chunk parquet, spec JSON) of the two GARCH chunks of the tiny config."""
    return planned_chunks(plan_model(GARCH, GARCH_CONFIG), garch_folder / "chunks", garch_folder / "specs")


def _merge(pairs: list[tuple[Path, Path]], out: Path, model: str = GARCH) -> dict[str, int]:
    return merge_chunks(model, [c for c, _ in pairs], out, specs=[s for _, s in pairs])


def _merge_cli(folder: Path, out: Path) -> subprocess.CompletedProcess:
    command = ["density-engine", "merge", "--model", GARCH, "--model-config", json.dumps(GARCH_CONFIG)]
    command += ["--chunks-dir", str(folder / "chunks"), "--specs-dir", str(folder / "specs"), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_merge_keeps_rows_schema_and_provenance(garch_chunks: list[tuple[Path, Path]], tmp_path: Path) -> None:
    out = tmp_path / "merged" / "densities.parquet"
    summary = _merge(garch_chunks, out)
    merged = pq.read_table(out)
    parts = [pq.read_table(c) for c, _ in garch_chunks]
    assert summary == {"chunks": 2, "rows": sum(p.num_rows for p in parts)}
    assert merged.schema.remove_metadata().equals(parts[0].schema.remove_metadata())
    assert merged.column("param_id").to_pylist() == [i for p in parts for i in p.column("param_id").to_pylist()]
    metadata = {k.decode(): v.decode() for k, v in merged.schema.metadata.items()}
    assert json.loads(metadata["density_engine.merge"]) == {"num_chunks": 2}
    walls = [float(json.loads(p.schema.metadata[b"wall_time_s"])) for p in parts]
    assert float(metadata["wall_time_s"]) == pytest.approx(sum(walls))
    assert metadata["spec_version"] == "2"
    assert json.loads(metadata["time_grid"]) is None and "disc_err" in json.loads(metadata["error_estimates"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["densities.parquet"]  # no temporary file left


def test_merge_output_is_written_by_the_atomic_helper(
    garch_chunks: list[tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """density_engine.atomic: the data is fsynced before the rename and the file gets the usual 0666 & ~umask mode
    (a bare mkstemp file would stay 0600)."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(density_engine.atomic.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    out = tmp_path / "densities.parquet"
    mask = os.umask(0o022)
    try:
        _merge(garch_chunks, out)
    finally:
        os.umask(mask)
    assert synced
    assert out.stat().st_mode & 0o777 == 0o644


def _rewrite(path: Path, table: pa.Table) -> None:
    """Replace a chunk by ``table`` with matching checksums (the spec and value checks must catch it)."""
    forge_chunk(path, table)


def _with_column(table: pa.Table, name: str, values: list) -> pa.Table:
    return with_column(table, name, values)


def test_corrupt_chunk_is_named(garch_folder: Path, garch_chunks: list[tuple[Path, Path]], tmp_path: Path) -> None:
    bad = garch_chunks[1][0]
    table = pq.read_table(bad)
    quantiles = table.column("quantiles").combine_chunks()
    values = quantiles.flatten().to_numpy(zero_copy_only=False).copy()
    values[3] = np.nan
    broken = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), quantiles.type.list_size)
    _rewrite(bad, table.set_column(table.schema.get_field_index("quantiles"), "quantiles", broken))
    out = tmp_path / "densities.parquet"
    result = _merge_cli(garch_folder, out)
    assert result.returncode == 1
    assert str(bad) in result.stderr
    assert not out.exists()


def test_chunk_with_dropped_rows_is_named(garch_folder: Path, garch_chunks: list[tuple[Path, Path]]) -> None:
    bad, spec = garch_chunks[1]
    table = pq.read_table(bad)
    _rewrite(bad, table.slice(0, table.num_rows - 2))  # still a valid chunk on its own: the last parameter set is gone
    out = garch_folder / "densities.parquet"
    result = _merge_cli(garch_folder, out)
    assert result.returncode == 1
    expected = (
        f"{bad}: spec check failed: does not match its spec {spec}: 2 rows, the spec asks for 2 parameter sets x 2 "
        "horizons = 4 rows"
    )
    assert expected in result.stderr
    assert "missing: (param_id, horizon) (3, 1), (3, 3)" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("num_paths", 3000, "num_paths is 3000 in the chunk, 4000 in the spec"),
        ("seed", 99, "seed is 99 in the chunk, 11 in the spec"),
        ("steps", 2, "column steps at horizon 1 is 2 in the chunk, 1 in the spec"),
        ("alpha", 0.5, "parameter alpha of param_id 2 is 0.5 in the chunk, "),
    ],
)
def test_chunk_of_other_settings_is_named(
    garch_chunks: list[tuple[Path, Path]], tmp_path: Path, column: str, value: float, message: str
) -> None:
    """A stale chunk (other settings) under the current name: each differing setting is named with both values."""
    bad, spec = garch_chunks[1]
    table = pq.read_table(bad)
    _rewrite(bad, _with_column(table, column, [value] * table.num_rows))
    with pytest.raises(MergeError) as error:
        _merge(garch_chunks, tmp_path / "out.parquet")
    assert f"{bad}: spec check failed: does not match its spec {spec}: " in str(error.value)
    assert message in str(error.value)
    assert not (tmp_path / "out.parquet").exists()


def test_chunk_of_other_dt_is_named(finished_workflow: Path, tmp_path: Path) -> None:
    heston = apply_defaults(TINY_CONFIG)["models"]["rough_heston"]
    for kind in ("chunks", "specs"):
        shutil.copytree(finished_workflow / "results" / kind / "rough_heston", tmp_path / kind)
    pairs = planned_chunks(plan_model("rough_heston", heston), tmp_path / "chunks", tmp_path / "specs")
    bad = pairs[0][0]
    table = pq.read_table(bad)
    _rewrite(bad, _with_column(table, "dt", [0.01] * table.num_rows))
    with pytest.raises(
        MergeError, match=rf"{re.escape(str(bad))}: .* dt is 0.01 in the chunk, {re.escape(repr(1 / 252))} in the spec"
    ):
        _merge(pairs, tmp_path / "out.parquet", model="rough_heston")


def test_rough_merge_carries_the_error_budget_and_checks_the_grid(finished_workflow: Path, tmp_path: Path) -> None:
    """The merged rough Heston densities keep steps and the error columns of the chunks (Richardson rows: steps 16 of
    the tiny config's grid, Monte Carlo and Fourier columns in (0, 1)); a chunk whose time_grid metadata is not its
    spec's is named."""
    from density_engine.engine.chunkio import ERROR_COLUMNS

    heston = apply_defaults(TINY_CONFIG)["models"]["rough_heston"]
    for kind in ("chunks", "specs"):
        shutil.copytree(finished_workflow / "results" / kind / "rough_heston", tmp_path / kind)
    pairs = planned_chunks(plan_model("rough_heston", heston), tmp_path / "chunks", tmp_path / "specs")
    merged = tmp_path / "densities.parquet"
    _merge(pairs, merged, model="rough_heston")
    table = pq.read_table(merged)
    assert set(table.column("steps").to_pylist()) == {16}
    for name in ERROR_COLUMNS:
        values = table.column(name).to_numpy()
        assert ((values > 0) & (values < 1)).all(), name
    assert json.loads(table.schema.metadata[b"time_grid"])["richardson"] == "independent"
    bad = pairs[0][0]
    chunk = pq.read_table(bad)
    metadata = {**chunk.schema.metadata, b"time_grid": json.dumps({"steps": 8}).encode()}
    _rewrite(bad, chunk.replace_schema_metadata(metadata))
    with pytest.raises(MergeError, match=rf"{re.escape(str(bad))}: .* file metadata time_grid is \{{'steps': 8\}}"):
        _merge(pairs, tmp_path / "out.parquet", model="rough_heston")


def test_other_num_quantiles_is_named(garch_chunks: list[tuple[Path, Path]], tmp_path: Path) -> None:
    spec = garch_chunks[0][1]
    data = json.loads(spec.read_text())
    spec.write_text(json.dumps({**data, "num_quantiles": 128}))
    with pytest.raises(MergeError, match=r"num_quantiles is 64 in the chunk, 128 in the spec"):
        _merge(garch_chunks, tmp_path / "out.parquet")


def test_only_the_current_plans_chunks_are_merged(garch_folder: Path, garch_chunks: list[tuple[Path, Path]]) -> None:
    """Chunk files of an older config (other content keys) in the same folder are not merged, even if broken."""
    (garch_folder / "chunks" / "chunk_00000.0123456789abcdef.parquet").write_bytes(b"not parquet")
    (garch_folder / "chunks" / "chunk_00002.fedcba9876543210.parquet").write_bytes(b"not parquet")
    out = garch_folder / "merged" / "densities.parquet"
    out.parent.mkdir()
    (out.parent / "densities.0123456789abcdef.json").write_text("{}")  # the manifest of an older plan
    result = _merge_cli(garch_folder, out)
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out).num_rows == sum(pq.read_table(c).num_rows for c, _ in garch_chunks)
    plan = plan_model(GARCH, GARCH_CONFIG)
    manifest = out.parent / f"densities.{plan.plan_key}.json"
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(["densities.parquet", manifest.name])
    assert json.loads(manifest.read_text()) == {
        "model": GARCH,
        "plan_key": plan.plan_key,
        "densities": "densities.parquet",
        "bytes": out.stat().st_size,
        "sha256": file_sha256(out),
        "num_sets": 4,
        "rows": 8,
        "chunks": plan.chunk_stems,
    }


def test_manifest_of_another_plan_is_refused(garch_folder: Path) -> None:
    """The Snakefile names the manifest after its plan; a CLI plan (from --model-config) that differs is an error."""
    out = garch_folder / "densities.parquet"
    other = garch_folder / "densities.0123456789abcdef.json"
    command = ["density-engine", "merge", "--model", GARCH, "--model-config", json.dumps(GARCH_CONFIG), "--out"]
    command += [str(out), "--chunks-dir", str(garch_folder / "chunks"), "--specs-dir", str(garch_folder / "specs")]
    result = subprocess.run([*command, "--manifest", str(other)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"{other}: the model config's plan of {GARCH} has manifest densities." in result.stderr
    assert not out.exists()


def test_missing_and_duplicate_chunks_are_named(garch_chunks: list[tuple[Path, Path]], tmp_path: Path) -> None:
    out = tmp_path / "densities.parquet"
    paths = [c for c, _ in garch_chunks]
    with pytest.raises(MergeError, match=r"chunk_00005.parquet: chunk file is missing"):
        merge_chunks(GARCH, [*paths, paths[0].with_name("chunk_00005.parquet")], out)
    copy = paths[0].with_name("chunk_00002.parquet")
    shutil.copy2(paths[0], copy)
    shutil.copy2(chunk_manifest_path(paths[0]), chunk_manifest_path(copy))
    with pytest.raises(MergeError, match=r"chunk_00002.parquet: param_id 0 is also in .*chunk_00000\.\w+\.parquet"):
        merge_chunks(GARCH, [*paths, copy], out)
    with pytest.raises(MergeError, match=r"chunk_00001\.\w+\.json: chunk spec is missing"):
        garch_chunks[1][1].unlink()
        _merge(garch_chunks, out)
    with pytest.raises(
        MergeError, match=r"holds rows of model\(s\) \['gjrgarch_normalized'\], expected 'rough_heston'"
    ):
        merge_chunks("rough_heston", paths, out)
    assert not out.exists()
