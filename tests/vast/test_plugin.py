"""The `vast` executor plugin as Snakemake sees it: discovery, --vast-* options, cheap import, profile dry run.

Real runs are in test_e2e.py (the workflow) and test_faults.py (a tiny workflow under failures).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.vast.conftest import REPO, vast_env

PLUGIN_DIR = REPO / "snakemake-executor-plugin-vast"

SETTINGS = [
    "api-url", "api-key", "api-throttle", "offer-query", "max-price", "max-instances", "offer-wait", "idle-timeout",
    "budget", "allow-over-budget", "estimate-command", "interruptible", "bid-factor", "image", "disk-gb", "ssh-key",
    "ssh-user", "remote-root", "remote-python", "boot-timeout", "unreachable-timeout", "keep-instances", "no-adopt",
    "label-prefix", "host-wheels-command", "ledger-dir", "exclude-sources",
]  # fmt: skip


def test_plugin_is_discovered_with_exactly_the_issue_settings() -> None:
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    import snakemake_executor_plugin_vast as plugin

    assert "vast" in ExecutorPluginRegistry().get_registered_plugins()
    names = [f.name.replace("_", "-") for f in dataclasses.fields(plugin.ExecutorSettings)]
    assert names == SETTINGS
    for f in dataclasses.fields(plugin.ExecutorSettings):
        assert f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
    assert plugin.common_settings.can_transfer_local_files and plugin.common_settings.implies_no_shared_fs
    assert not plugin.common_settings.job_deploy_sources and not plugin.common_settings.pass_envvar_declarations_to_cmd


def test_api_key_never_shows_in_the_settings_repr() -> None:
    import snakemake_executor_plugin_vast as plugin

    settings = plugin.ExecutorSettings(api_key="very-secret-vast-key")
    assert "very-secret-vast-key" not in repr(settings) and "max_instances=4" in repr(settings)


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, snakemake_executor_plugin_vast; "
        "print(sorted(m for m in ('paramiko', 'requests', 'snakemake_executor_plugin_vast.pool', 'density_engine') "
        "if m in sys.modules))"
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
    del env["SNAKEMAKE_VAST_API_KEY"]
    env["HOME"] = str(tmp_path)  # no ~/.config/vastai key file either
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/vast", "-n", "--quiet", "rules"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "simulate" in result.stdout


BLOCKER = """
import os, sys

BLOCKED = {"torch", "density_engine"}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(os.environ["IMPORT_BLOCK_LOG"], "a") as handle:
                handle.write(name + "\\n")
            raise ImportError(f"{name} is blocked in this venv")
        return None


sys.meta_path.insert(0, Blocker())
"""


def test_plugin_installs_without_torch_and_snakemake_finds_it(tmp_path: Path) -> None:
    """`pip install ./snakemake-executor-plugin-vast` (a real build of the plugin's own pyproject) into a fresh venv
    where importing torch or density_engine is impossible: `snakemake --executor vast --help` works and never tries
    to import either, the plugin is the venv's copy, and its metadata requires neither.

    The venv sees the system site-packages (Snakemake, paramiko, ... come from there: CI has no time to install
    Snakemake from PyPI in every test run); a finder at the front of sys.meta_path, installed by a .pth file, makes
    the blocked imports fail and records every attempt."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "import_blocker.py").write_text(BLOCKER)
    (site / "00_import_blocker.pth").write_text("import import_blocker\n")
    log = tmp_path / "blocked.log"
    env = {**vast_env("unused"), "IMPORT_BLOCK_LOG": str(log)}
    del env["SNAKEMAKE_VAST_API_KEY"]
    probe = subprocess.run([python, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and log.read_text() == "torch\n"  # the blocker works
    log.unlink()

    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(PLUGIN_DIR)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    helped = subprocess.run(
        [python, "-m", "snakemake", "--executor", "vast", "--help"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert helped.returncode == 0, helped.stderr[-3000:]
    for name in SETTINGS:
        assert f"--vast-{name}" in helped.stdout
    assert "SNAKEMAKE_VAST_API_KEY" in helped.stdout  # the key's env var comes from the settings (env_var=True)
    code = (
        "import importlib.metadata as md, json, snakemake_executor_plugin_vast as p; "
        "from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry as R; "
        "assert 'vast' in R().get_registered_plugins(); "
        "print(json.dumps([p.__file__, md.requires('snakemake-executor-plugin-vast')]))"
    )
    found = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr[-3000:]
    where, requires = json.loads(found.stdout)
    assert where.startswith(str(venv))  # the installed copy, not the checkout's editable one
    names = {re.split(r"[ ;<>=!~\[]", req, maxsplit=1)[0].lower() for req in requires}
    assert names and not names & {"torch", "density-engine", "density_engine"}, requires
    assert not log.exists(), log.read_text()  # nothing ever tried to import torch or density_engine
