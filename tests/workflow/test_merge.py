"""Per-model merge of real chunk files: validation of every chunk, errors naming the file, atomic output."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from density_engine.workflow.merge import MergeError, chunk_files, merge_chunks

GARCH = "gjrgarch_normalized"


@pytest.fixture
def garch_chunks(finished_workflow: Path, tmp_path: Path) -> list[Path]:
    """Copies of the two real GARCH chunks simulated by the tiny workflow run."""
    source = finished_workflow / "results/chunks" / GARCH
    folder = tmp_path / "chunks"
    shutil.copytree(source, folder)
    return chunk_files(folder, 2)


def test_merge_keeps_rows_schema_and_provenance(garch_chunks: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged" / "densities.parquet"
    summary = merge_chunks(GARCH, garch_chunks, out)
    merged = pq.read_table(out)
    parts = [pq.read_table(p) for p in garch_chunks]
    assert summary == {"chunks": 2, "rows": sum(p.num_rows for p in parts)}
    assert merged.schema.remove_metadata().equals(parts[0].schema.remove_metadata())
    assert merged.column("param_id").to_pylist() == [i for p in parts for i in p.column("param_id").to_pylist()]
    metadata = {k.decode(): v.decode() for k, v in merged.schema.metadata.items()}
    assert json.loads(metadata["density_engine.merge"]) == {"num_chunks": 2}
    walls = [float(json.loads(p.schema.metadata[b"wall_time_s"])) for p in parts]
    assert float(metadata["wall_time_s"]) == pytest.approx(sum(walls))
    assert metadata["spec_version"] == "1"
    assert sorted(p.name for p in out.parent.iterdir()) == ["densities.parquet"]  # no temporary file left


def _rewrite(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def test_corrupt_chunk_is_named(garch_chunks: list[Path], tmp_path: Path) -> None:
    bad = garch_chunks[1]
    table = pq.read_table(bad)
    quantiles = table.column("quantiles").combine_chunks()
    values = quantiles.flatten().to_numpy(zero_copy_only=False).copy()
    values[3] = np.nan
    broken = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), quantiles.type.list_size)
    _rewrite(bad, table.set_column(table.schema.get_field_index("quantiles"), "quantiles", broken))
    out = tmp_path / "densities.parquet"
    result = subprocess.run(
        [
            "density-engine",
            "merge",
            "--model",
            GARCH,
            "--chunks-dir",
            str(bad.parent),
            "--num-chunks",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert str(bad) in result.stderr
    assert not out.exists()


def test_missing_and_duplicate_chunks_are_named(garch_chunks: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "densities.parquet"
    with pytest.raises(MergeError, match=r"chunk_00005.parquet: chunk file is missing"):
        merge_chunks(GARCH, [*garch_chunks, garch_chunks[0].with_name("chunk_00005.parquet")], out)
    copy = garch_chunks[0].with_name("chunk_00002.parquet")
    shutil.copy2(garch_chunks[0], copy)
    with pytest.raises(MergeError, match=r"chunk_00002.parquet: param_id 0 is also in .*chunk_00000.parquet"):
        merge_chunks(GARCH, [*garch_chunks, copy], out)
    with pytest.raises(
        MergeError, match=r"holds rows of model\(s\) \['gjrgarch_normalized'\], expected 'rough_heston'"
    ):
        merge_chunks("rough_heston", garch_chunks, out)
    assert not out.exists()
