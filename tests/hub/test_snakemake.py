"""workflow/rules/dataset.smk in a real Snakemake run: `all` builds the card, `publish` (not in `all`) publishes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from density_engine.dataset.inputs import load_model_table
from density_engine.workflow.chunks import densities_manifest_name, plan_model
from density_engine.workflow.config import apply_defaults
from density_engine.workflow.merge import merge_chunks, write_merge_manifest

from .conftest import WRITE_TOKEN
from .fakehub import FakeHub

REPO = "org/densities"
MODELS = ("gjrgarch_normalized", "rough_heston")

# The real stage interface (common.smk: config validation, ENABLED_MODELS, densities_path, FINAL_TARGETS, the dataset
# paths) and the real rule file; the merged densities are made by the test instead of the simulate/merge stages.
SNAKEFILE = """
configfile: "config.yaml"


include: {common!r}
include: {rules!r}


rule all:
    default_target: True
    input:
        FINAL_TARGETS,
"""


def snakemake(workdir: Path, *targets: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "-c1", "--snakefile", str(workdir / "Snakefile"), *targets]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=240)


def merge_densities(work: Path, make_chunks, config: dict) -> None:
    """The merge rule's outputs (densities + merge manifest) of every model, made by the merge's own functions."""
    for model in MODELS:
        densities = work / "results" / model / "densities.parquet"
        summary = merge_chunks(model, make_chunks(model, [[0, 1], [2, 3]]), densities)
        plan = plan_model(model, apply_defaults(config)["models"][model])
        manifest = densities.with_name(densities_manifest_name(plan.plan_key))
        write_merge_manifest(plan, densities, manifest, summary["rows"])


def write_config(work: Path, config: dict, **top: object) -> None:
    (work / "config.yaml").write_text(yaml.safe_dump({**config, **top}))


@pytest.mark.slow
def test_all_builds_the_dataset_and_publish_is_separate(
    tmp_path: Path, repo_root: Path, make_chunks, fake_hub: FakeHub
) -> None:
    work = tmp_path / "wf"
    work.mkdir()
    rules = repo_root / "workflow" / "rules" / "dataset.smk"
    (work / "Snakefile").write_text(SNAKEFILE.format(common=str(rules.with_name("common.smk")), rules=str(rules)))
    model_config = {
        "sampler": "lhs",
        "n_samples": 4,
        "horizons": [1, 5, 20],
        "num_paths": 2048,
        "chunk_size": 2,
        "seed": 1,
    }
    config = {"models": {m: dict(model_config) for m in MODELS}, "hf": {"repo_id": REPO, "tag": "v1"}}
    config["models"]["rough_bergomi"] = {**model_config, "enabled": False}
    write_config(work, config)
    merge_densities(work, make_chunks, config)  # the merge rule's outputs, made by the merge's functions
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env["DENSITY_ENGINE_GIT_COMMIT"] = "0123abc"  # what a checkout without git metadata passes
    # (the no-token error, idempotent re-publishing and tag conflicts are covered in-process by test_publish.py)

    built = snakemake(work, env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    readme = work / "results" / "hf" / "README.md"
    assert "config_name: rough_heston" in readme.read_text()
    # The card names the code that simulated the rows (chunk metadata), not the checkout building the card.
    assert "- Code: density-engine `0.1.0+g000000000000`, git commit `" + "0" * 40 + "`." in readme.read_text()
    assert "0123abc" not in readme.read_text()
    assert not (work / "results" / "publish").exists()  # publishing is not part of `all`
    # The card written from the JSON manifests loads (feature key order survives the round trip).
    local = datasets.load_dataset(str(work / "results" / "hf"), "rough_heston", split="train", cache_dir=str(tmp_path))
    assert local.features["quantiles"] == datasets.List(datasets.Value("float32"), length=512) and local.num_rows == 12
    shard = work / "results" / "hf" / "data" / "rough_heston" / "params-000000-032999.parquet"
    expected = load_model_table([work / "results" / "rough_heston" / "densities.parquet"]).table
    assert pq.read_table(shard).equals(expected)
    card_bytes = readme.read_bytes()

    # `device`, `resources` and a disabled model's entry are not data: nothing re-runs.
    write_config(work, config, device="cpu", resources={"mem_mb": 4000, "runtime": 90})
    config["models"]["rough_bergomi"]["n_samples"] = 8
    write_config(work, config, device="cpu", resources={"mem_mb": 4000, "runtime": 90})
    dry = snakemake(work, "-n", env=env)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]

    # Disable rough_heston: the card drops it with its shards and manifest. Enable it again: its shards are re-built
    # (the old manifest must not be trusted: the card would list a model whose data/ folder is empty).
    config["models"]["rough_heston"]["enabled"] = False
    write_config(work, config)
    assert snakemake(work, env=env).returncode == 0
    assert "config_name: rough_heston" not in readme.read_text()
    assert not (work / "results" / "hf" / "data" / "rough_heston").exists()
    assert not (work / "results" / "dataset" / "manifests" / "rough_heston.json").exists()
    config["models"]["rough_heston"]["enabled"] = True
    write_config(work, config)
    rebuilt = snakemake(work, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert "dataset_shards" in rebuilt.stderr and readme.read_bytes() == card_bytes
    assert pq.read_table(shard).equals(expected)

    # A deleted data/ folder is re-built too (every shard file is an output of its model's shards rule), and no
    # stray file (Snakemake's .snakemake_timestamp of a directory output) sits beside the shards.
    shutil.rmtree(work / "results" / "hf" / "data")
    assert snakemake(work, env=env).returncode == 0
    assert readme.read_bytes() == card_bytes and pq.read_table(shard).equals(expected)
    data = work / "results" / "hf" / "data"
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == [
        "gjrgarch_normalized",
        "gjrgarch_normalized/params-000000-032999.parquet",
        "rough_heston",
        "rough_heston/params-000000-032999.parquet",
    ]

    # A densities file edited after its merge (sha256 differs from the merge manifest) never reaches the dataset:
    # the shards step fails naming it, and the last good dataset folder stays byte for byte.
    before = {p: p.read_bytes() for p in (work / "results" / "hf").rglob("*") if p.is_file()}
    densities = work / "results" / "rough_heston" / "densities.parquet"
    table = pq.read_table(densities)
    pq.write_table(table.slice(0, table.num_rows - 3), densities)
    failed = snakemake(work, env=env)
    assert failed.returncode != 0
    log = (work / "results" / "logs" / "dataset_shards" / "rough_heston.log").read_text()
    assert f"{densities.relative_to(work)}: not the file its merge wrote" in log, log
    assert {p: p.read_bytes() for p in (work / "results" / "hf").rglob("*") if p.is_file()} == before

    # publish checks HF_TOKEN (and the Hub) when the DAG is built: one message, no job started.
    no_token = snakemake(work, "publish", env=env)
    assert no_token.returncode != 0
    assert "publish: no Hugging Face token: set HF_TOKEN" in no_token.stdout + no_token.stderr
    assert "Select jobs to execute" not in no_token.stdout + no_token.stderr
    offline = snakemake(work, "publish", env={**env, "HF_TOKEN": WRITE_TOKEN, "HF_HUB_OFFLINE": "1"})
    assert "publish: publishing needs the Hugging Face Hub, but HF_HUB_OFFLINE is set" in offline.stderr

    write_config(work, config)  # the test's last config; rebuild the good densities the dataset came from
    merge_densities(work, make_chunks, config)
    env["HF_TOKEN"] = WRITE_TOKEN
    published = snakemake(work, "publish", env=env)
    assert published.returncode == 0, published.stderr[-3000:]
    outcome = json.loads((work / "results" / "publish" / "hf.json").read_text())
    assert outcome["commit"] == fake_hub.head(REPO) and fake_hub.tags(REPO) == {"v1": outcome["commit"]}
    assert sorted(p for p in fake_hub.files(REPO) if p.startswith("data/")) == [
        "data/gjrgarch_normalized/params-000000-032999.parquet",
        "data/rough_heston/params-000000-032999.parquet",
    ]
    log = (work / "results" / "logs" / "publish" / "hf.log").read_text()
    assert WRITE_TOKEN not in log + published.stdout + published.stderr
