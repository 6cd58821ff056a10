"""The `vast` executor plugin as Snakemake sees it: discovery, --vast-* options, cheap import, profile dry run.

Real runs are in test_e2e.py (the workflow) and test_faults.py (a tiny workflow under failures).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from tests.vast.conftest import REPO, vast_env, venv_with_wheel

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


def test_api_key_never_shows_in_the_settings_repr() -> None:
    import snakemake_executor_plugin_vast as plugin

    settings = plugin.ExecutorSettings(api_key="very-secret-vast-key")
    assert "very-secret-vast-key" not in repr(settings) and "max_instances=4" in repr(settings)


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


def test_plugin_is_discovered_from_a_regular_wheel_install(tmp_path: Path) -> None:
    """Not only the editable install: the wheel the hosts get (built from this checkout) registers the plugin too."""
    from density_engine.vast.wheel import build_wheel

    venv = tmp_path / "venv"
    python = venv_with_wheel(build_wheel(tmp_path / "wheels"), venv)
    code = (
        "import snakemake_executor_plugin_vast as p, density_engine.vast.runner; "
        "from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry as R; "
        "assert 'vast' in R().get_registered_plugins(); print(p.__file__)"
    )
    out = subprocess.run(
        [python, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip().startswith(str(venv))  # imported from the installed wheel, not from the checkout
    assert (venv / "bin" / "density-engine").is_file()
