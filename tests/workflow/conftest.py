"""Fixtures of the workflow tests: a temporary copy of the workflow with a tiny config, and a helper that runs the
real Snakemake CLI (``python -m snakemake``) in it, so the checkout's results/ and .snakemake/ stay untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from density_engine.atomic import file_sha256
from density_engine.engine import chunkio
from density_engine.workflow.chunks import ModelPlan, plan_model

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_FILES = ("workflow", "config", "resources", "environment.yml")

# The workflow's test config (.test/config/config.yaml, the catalog layout's test case): small enough to run on a
# loaded 2-core CPU in seconds: 2 GARCH chunks, 1 rough Heston chunk, 2 short horizons. Tests deep-copy it to change it.
TEST_CONFIG_PATH = REPO_ROOT / ".test" / "config" / "config.yaml"
TINY_CONFIG: dict = yaml.safe_load(TEST_CONFIG_PATH.read_text())


def copy_workflow(destination: Path, config: dict | None) -> Path:
    """Copy the workflow files into ``destination`` and write ``config`` as its config/config.yaml (``None``: keep the
    shipped demo config)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, destination / name)
    if config is not None:
        (destination / "config").mkdir(exist_ok=True)
        (destination / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return destination


def _plan(config: dict, model: str) -> ModelPlan:
    """The chunk plan of ``model`` under ``config``, validated and with defaults as the Snakefile has it."""
    from density_engine.workflow.config import validate_config

    validated = validate_config(config, REPO_ROOT / "workflow/schemas/config.schema.yaml", base_dir=REPO_ROOT)
    return plan_model(model, validated["models"][model], REPO_ROOT)


def chunk_stems(config: dict, model: str) -> list[str]:
    """``chunk_NNNNN.<content key>`` of every chunk of ``model`` under ``config`` (the plan the Snakefile builds):
    ``results/chunks/<model>/<stem>.parquet`` and the spec, log and benchmark of the same stem are the current files."""
    return _plan(config, model).chunk_stems


def plan_key(config: dict, model: str) -> str:
    """The plan key of ``model`` under ``config``: its merge manifest is ``results/<model>/densities.<key>.json``."""
    return _plan(config, model).plan_key


def chunk_file(config: dict, model: str, chunk: int) -> str:
    """The chunk parquet of chunk number ``chunk`` of ``model`` under ``config``, relative to the workflow folder."""
    return f"results/chunks/{model}/{chunk_stems(config, model)[chunk]}.parquet"


def forge_chunk(path: Path, table: pa.Table) -> None:
    """Write ``table`` as the chunk ``path`` with a content checksum and a chunk manifest that match it, WITHOUT the
    writer's validation: what a buggy engine (or a hand-made file) would leave, so that the merge's value checks, not
    its checksum check, have to catch what is wrong with it."""
    digest = chunkio.content_sha256(table.replace_schema_metadata(None))
    metadata = {**(table.schema.metadata or {}), chunkio.CHECKSUM_KEY.encode(): f'"{digest}"'.encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")
    manifest = {"file": path.name, "bytes": path.stat().st_size, "content_sha256": digest}
    manifest["file_sha256"] = file_sha256(path)
    chunkio.chunk_manifest_path(path).write_text(json.dumps(manifest))


def with_column(table: pa.Table, name: str, values) -> pa.Table:
    """``table`` with column ``name`` replaced (same type)."""
    field = table.schema.field(name)
    if pa.types.is_fixed_size_list(field.type):
        flat = pa.array(values.astype("float32").ravel(), pa.float32())
        array = pa.FixedSizeListArray.from_arrays(flat, field.type.list_size)
    else:
        array = pa.array(values, field.type)
    return table.set_column(table.schema.get_field_index(name), field, array)


def snakemake_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SNAKEMAKE_PROFILE", None)
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake ARGS`` in ``workdir``; fail the test with the output if ``check`` and rc != 0."""
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "none", *args]
    result = subprocess.run(
        command, cwd=workdir, env=snakemake_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def tiny_config() -> dict:
    """A deep copy of the tiny test config (tests may modify it)."""
    return yaml.safe_load(yaml.safe_dump(TINY_CONFIG))


@pytest.fixture
def make_workflow(tmp_path: Path) -> Callable[[dict], Path]:
    """Factory: a fresh workflow copy with the given config."""

    def make(config: dict, name: str = "wf") -> Path:
        return copy_workflow(tmp_path / name, config)

    return make


@pytest.fixture(scope="session")
def finished_workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny workflow run once end to end (`snakemake -c2`), shared by the read-only tests of the session (tests
    that change it work on a copy). It starts in the background when the session starts (tests/workflow/finished.py);
    under pytest-xdist it runs once for all workers and each worker gets its own copy."""
    from .finished import own_copy

    return own_copy(tmp_path_factory)
