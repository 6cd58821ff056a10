"""`snakedeploy deploy-workflow` (the Snakemake workflow catalog's way of using a workflow) on a local copy of this
repository: the deployed folder gets config/, profiles/ and LICENSE, and a Snakefile that uses every rule of
workflow/Snakefile as a module; that folder builds the whole DAG and runs jobs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO_ROOT, TINY_CONFIG, run_snakemake

#: What a deployment takes from the repository (snakedeploy copies config/, profiles/ and the license; Snakemake reads
#: workflow/ through the module directive).
REPOSITORY_FILES = ("workflow", "config", "profiles", "LICENSE", "README.md")


def test_snakedeploy_deploys_the_workflow_as_a_module(tmp_path: Path) -> None:
    source = tmp_path / "density-engine"
    source.mkdir()
    for name in REPOSITORY_FILES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    dest = tmp_path / "my-analysis"
    snakedeploy = Path(sys.executable).with_name("snakedeploy")
    subprocess.run(
        [str(snakedeploy), "deploy-workflow", str(source), str(dest), "--branch", "main"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (dest / "LICENSE").is_file() and (dest / "config" / "README.md").is_file()
    assert {p.name for p in (dest / "profiles").iterdir()} >= {"local", "slurm", "vast"}
    snakefile = dest / "workflow" / "Snakefile"
    text = snakefile.read_text()
    assert 'configfile: "config/config.yaml"' in text and "use rule * from density_engine" in text
    # snakedeploy 0.17.1 writes a local source's module path relative to the source ("workflow/Snakefile"), which
    # does not resolve from the deployed Snakefile; point it at the source, as github(...) does for a GitHub one.
    text, count = re.subn(r'"workflow/Snakefile"', f'"{source / "workflow" / "Snakefile"}"', text)
    assert count == 1, text
    snakefile.write_text(text)
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))  # the user edits the copied config

    dry = run_snakemake(dest, "-n").stdout  # `all` of the module is the default target; every job is planned
    assert re.search(r"^simulate\s+3$", dry, re.MULTILINE) and re.search(r"^all\s+1$", dry, re.MULTILINE), dry
    grid = re.search(r"output: (results/grid/gjrgarch_normalized/parameters\.\w+\.parquet)", dry).group(1)
    run_snakemake(dest, "-c", "1", grid)  # a job of the module runs in the deployed folder
    assert (dest / grid).is_file() and not (source / "results").exists()
