"""The `vast` executor plugin as Snakemake sees it: discovery, --vast-* options, profile, dry run, a real run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vast.conftest import REPO, run_controller, tiny_workflow, vast_command, vast_env

SETTINGS = [
    "api-url", "api-key", "offer-query", "max-price", "max-instances", "budget", "image", "disk-gb", "ssh-key",
    "ssh-user", "remote-root", "remote-python", "boot-timeout", "unreachable-timeout", "keep-instances", "label-prefix",
]  # fmt: skip


def test_plugin_is_discovered_with_exactly_the_issue_settings() -> None:
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    import snakemake_executor_plugin_vast as plugin

    assert "vast" in ExecutorPluginRegistry().get_registered_plugins()
    names = [f.name.replace("_", "-") for f in dataclasses.fields(plugin.ExecutorSettings)]
    assert names == SETTINGS
    for f in dataclasses.fields(plugin.ExecutorSettings):
        assert f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING, f.name
    assert plugin.common_settings.can_transfer_local_files and plugin.common_settings.implies_no_shared_fs
    assert not plugin.common_settings.job_deploy_sources and not plugin.common_settings.pass_envvar_declarations_to_cmd


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, snakemake_executor_plugin_vast; "
        "print(sorted(m for m in ('paramiko', 'requests', 'density_engine.vast.pool') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_snakemake_help_lists_every_vast_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    for name in SETTINGS:
        assert f"--vast-{name}" in out


def test_dry_run_with_the_profile_needs_no_api_key(tmp_path: Path) -> None:
    env = vast_env("unused")
    del env["VAST_API_KEY"]
    env["HOME"] = str(tmp_path)  # no ~/.config/vastai key file either
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/vast", "-n", "--quiet", "rules"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "simulate" in result.stdout


@pytest.mark.ssh
def test_tiny_workflow_runs_on_fake_vast_and_leaves_nothing_behind(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    code, log = run_controller(vast_command(base_url, "--config", "count=3"), work, vast_env(api_key))
    assert code == 0, log[-6000:]
    for i in range(3):
        assert (work / "results" / "out" / f"{i}.txt").read_text() == str(i * i)
        assert (work / "results" / "logs" / "work" / f"{i}.log").read_text() == f"squared {i}\n"
        assert (work / "results" / "bench" / "work" / f"{i}.tsv").is_file()
    assert fake.live_instances() == []
    ledger = json.loads((work / "results" / "vast" / "cost_ledger.json").read_text())
    assert ledger["instances"] and ledger["total_cost_usd"] > 0
    assert api_key not in log
    assert not any(api_key in p.read_text(errors="ignore") for p in work.rglob("*") if p.is_file())
    # nothing to do afterwards: metadata was written for the downloaded outputs
    code, log = run_controller(vast_command(base_url, "--config", "count=3", "-n"), work, vast_env(api_key))
    assert code == 0 and "Nothing to be done" in log, log[-3000:]
