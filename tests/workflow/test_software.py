"""Software deployment of the workflow, checked without conda channels or a container engine: the per-rule conda
environments (workflow/envs/) parse, pin what pyproject.toml pins and list what each rule's command really imports
(traced by running the commands of a finished run); their post-deploy scripts install density-engine at the workflow's
version; the Dockerfile copies what the wheel is built from; the `container` setting reaches the rules; the simulate
rule asks for a GPU exactly when it runs on CUDA, which profiles/local caps at one."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import density_engine

from .conftest import REPO_ROOT, run_snakemake

ENVS = REPO_ROOT / "workflow" / "envs"
RULES = REPO_ROOT / "workflow" / "rules"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
#: conda-forge names whose PyPI distribution is named differently.
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
#: The environment of every rule (by name, or name prefix for the per-model rules).
RULE_ENVS = {
    "grid": "workflow",
    "specs_": "workflow",
    "merge_": "workflow",
    "simulate": "simulate",
    "report_figures": "report",
    "report_costs": "report",
    "dataset_shards": "dataset",
    "dataset_card": "dataset",
    "publish": "dataset",
}
#: Listed although a traced run does not load them: tqdm draws the simulate progress bar on a terminal only.
TERMINAL_ONLY = {"simulate": {"tqdm"}}
#: Loaded by a listed package when present, without being one of its requirements (so conda need not install it):
#: torch's datapipes try dill, pyarrow tries cloudpickle, numpy.f2py tries charset_normalizer, torch.hub tries tqdm,
#: the Hub's HTTP client probes trio (with trio's own requirements).
OPTIONAL_IMPORTS = {"dill", "cloudpickle", "charset-normalizer", "tqdm", "trio", "outcome", "sortedcontainers", "attrs"}
OPTIONAL_IMPORTS |= {"sniffio", "typing-extensions"}  # typing_extensions: tried by several packages


def _env(name: str) -> dict:
    return yaml.safe_load((ENVS / f"{name}.yaml").read_text())


def _env_names() -> list[str]:
    return sorted(path.stem for path in ENVS.glob("*.yaml"))


def _conda_dependency(text: str) -> tuple[str, SpecifierSet]:
    """Name and version specifier of a conda dependency: ``numpy >=1.26``, ``pytorch[version='>=2.3']``."""
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:\[(.*)\])?\s*(.*)", text.strip())
    assert match, text
    name, brackets, version = match.groups()
    if brackets:
        version = dict(re.findall(r"(\w+)='([^']*)'", brackets)).get("version", "")
    version = version.strip()
    if version.startswith("="):  # conda's "=3.11" means 3.11.*
        version = f"=={version.lstrip('=')}.*"
    return name, SpecifierSet(version.replace(" ", ""))


def _listed(env: str) -> dict[str, SpecifierSet]:
    """PyPI name -> version specifier of every package an environment lists (python and pip excluded)."""
    listed = {}
    for item in _env(env)["dependencies"]:
        name, spec = _conda_dependency(item)
        if name not in ("python", "pip"):
            listed[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = spec
    return listed


def _closure(names: set[str]) -> set[str]:
    """The names and everything they require (no extras), as installed in this environment."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def test_environment_files_parse_and_pin_what_pyproject_pins() -> None:
    pinned = {
        canonicalize_name(Requirement(r).name): Requirement(r).specifier for r in PYPROJECT["project"]["dependencies"]
    }
    assert _env_names() == ["dataset", "report", "simulate", "workflow"]
    for env in _env_names():
        content = _env(env)
        assert content["channels"] == ["conda-forge", "nodefaults"], env
        assert "python =3.11" in content["dependencies"] and "pip" in content["dependencies"], env
        for name, spec in _listed(env).items():
            assert name in pinned, f"{env}.yaml: {name} is not a dependency of density-engine"
            assert spec == pinned[name], f"{env}.yaml: {name} {spec}, pyproject.toml: {pinned[name]}"
    for env in (
        "workflow",
        "dataset",
    ):  # torch-free rules (the model declarations need no torch): no torch build at all
        assert not any(d.startswith("pytorch") for d in _env(env)["dependencies"]), env
    torch_entry = next(d for d in _env("simulate")["dependencies"] if d.startswith("pytorch"))
    assert "cpu" not in torch_entry  # the simulate env takes a CUDA torch where there is one


def test_every_rule_with_a_command_has_its_environment() -> None:
    """Every rule that runs a shell command names the environment RULE_ENVS gives it (rule files parsed as
    snakefmt lays them out: a `rule` line, then its directives)."""
    seen = set()
    for path in RULES.glob("*.smk"):
        blocks = re.split(r"^\s*rule\b", path.read_text(), flags=re.MULTILINE)[1:]
        for block in blocks:
            if "shell:" not in block:
                continue
            name = re.match(r"\s*(\w+)?:", block).group(1) or re.search(r'name:\s+f?"(\w+?)[{"]', block).group(1)
            env = re.search(r'conda:\s+"\.\./envs/(\w+)\.yaml"', block)
            assert env, f"{path.name}: rule {name} has no conda environment"
            expected = next(
                e for prefix, e in RULE_ENVS.items() if name == prefix or name.startswith(prefix.rstrip("_") + "_")
            )
            assert env.group(1) == expected, f"{path.name}: rule {name} uses {env.group(1)}.yaml, expected {expected}"
            seen.add(expected)
    assert seen == set(_env_names())


def test_post_deploy_scripts_pin_the_workflow_version(tmp_path: Path) -> None:
    """One identical post-deploy script per environment installs density-engine at the package's version, without
    dependencies; run for real in a fresh venv with DENSITY_ENGINE_SOURCE pointing at this checkout."""
    scripts = {env: ENVS / f"{env}.post-deploy.sh" for env in _env_names()}
    texts = {env: path.read_text() for env, path in scripts.items()}
    assert len(set(texts.values())) == 1, "the post-deploy scripts differ"
    text = texts["simulate"]
    assert f"version={density_engine.__version__}\n" in text
    assert 'pip install --no-deps --no-input "${DENSITY_ENGINE_SOURCE:-density-engine==$version}"' in text
    for path in scripts.values():
        assert os.access(path, os.X_OK), f"{path.name} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "DENSITY_ENGINE_SOURCE": str(REPO_ROOT)}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        ["bash", str(scripts["simulate"])], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listing.stdout)}
    assert installed.pop("density-engine") == density_engine.__version__
    assert set(installed) <= {"pip", "setuptools", "wheel"}  # nothing but density-engine itself: no dependencies


def _rule_env(rule: str) -> str:
    return next(env for prefix, env in RULE_ENVS.items() if rule == prefix or rule.startswith(prefix))


def _rule_commands(workdir: Path) -> dict[str, list[str]]:
    """The density-engine arguments of one job per rule, from a forced dry run (`all` and `publish`)."""
    dry = run_snakemake(workdir, "-n", "-p", "--forceall", "all", "publish").stdout
    commands: dict[str, list[str]] = {}
    rule = None
    for line in dry.splitlines():
        if match := re.match(r"\s*(?:local)?rule (\w+):", line):
            rule = match.group(1)
        elif line.startswith("Shell command: ") and rule and rule not in commands:
            for part in line.removeprefix("Shell command: ").split(";"):
                part = re.sub(r"\s*>>?\s*\S+\s*2>&1\s*$", "", part.strip())
                if part.startswith("density-engine "):
                    commands[rule] = shlex.split(part)[1:]
    return commands


@pytest.mark.slow
def test_environments_list_what_each_rule_imports(finished_workflow: Path, tmp_path: Path) -> None:
    """Run one job's command per rule (in a copy of a finished run) and trace its imports: every distribution the
    rule's density-engine code imports is listed in the rule's environment, everything else loaded comes with a
    listed package, and every listed package is loaded by some rule of the environment."""
    workdir = tmp_path / "wf"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    commands = _rule_commands(workdir)
    assert {"grid", "simulate", "merge_gjrgarch_normalized", "report_figures", "publish"} <= set(commands)
    # publish: a token and an unreachable, offline Hub, so it imports the Hub client and then fails harmlessly.
    env = {**os.environ, "HF_TOKEN": "hf_not_a_token", "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    tracer = Path(__file__).with_name("import_trace.py")
    runs = {
        rule: subprocess.Popen(
            [sys.executable, str(tracer), str(tmp_path / f"{rule}.json"), *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rule, args in commands.items()
    }
    direct: dict[str, set[str]] = {env: set() for env in _env_names()}
    loaded: dict[str, set[str]] = {env: set() for env in _env_names()}
    for rule, process in runs.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0 or rule == "publish", f"{rule}: {output[-2000:]}"
        trace = json.loads((tmp_path / f"{rule}.json").read_text())
        direct[_rule_env(rule)].update(canonicalize_name(d) for d in trace["direct"])
        loaded[_rule_env(rule)].update(canonicalize_name(d) for d in trace["loaded"])
    assert "huggingface-hub" in direct["dataset"]  # publish really got as far as the Hub client
    for env in _env_names():
        listed = set(_listed(env))
        assert direct[env] <= listed, f"{env}.yaml lacks {sorted(direct[env] - listed)}"
        unexplained = loaded[env] - _closure(listed) - OPTIONAL_IMPORTS
        assert not unexplained, f"{env}.yaml: the rules load {sorted(unexplained)}, which no listed package requires"
        unused = listed - direct[env] - loaded[env] - TERMINAL_ONLY.get(env, set())
        assert not unused, f"{env}.yaml lists {sorted(unused)}, which none of its rules loads"


def test_dockerfile_builds_the_package_from_what_pyproject_names() -> None:
    """Not built here (no container engine): the files it copies exist and are exactly what the wheel is built from,
    its Python and torch satisfy pyproject.toml, and it is labelled with the package version."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM python:(\d+\.\d+)-", text, re.MULTILINE).group(1)
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{base}.0")
    copied = []
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        *sources, _ = line.split()
        copied += sources
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    plugin = "snakemake-executor-plugin-vast"  # density-engine's dependency, built from its folder in this repository
    assert sorted(copied) == sorted([plugin, "pyproject.toml", PYPROJECT["project"]["readme"], "LICENSE", *wheel])
    assert f"pip install --no-cache-dir ./{plugin} ." in text
    torch_version = re.search(r"^ARG TORCH_VERSION=(\S+)$", text, re.MULTILINE).group(1)
    torch_pin = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("torch"))
    assert torch_pin.specifier.contains(torch_version)
    assert '"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in text  # CUDA torch first, from PyTorch
    assert text.index("TORCH_INDEX_URL}") < text.index("pip install --no-cache-dir ./")
    assert f'org.opencontainers.image.version="{density_engine.__version__}"' in text


def test_container_setting_reaches_the_rules(finished_workflow: Path) -> None:
    """With --sdm apptainer the rules run in the configured image (default: none): without apptainer installed,
    Snakemake refuses to start a run whose rules have an image."""
    image = f"docker://example.org/density-engine:{density_engine.__version__}"
    dry = run_snakemake(
        finished_workflow, "-n", "--forceall", "--sdm", "apptainer", "--config", f"container={image}", check=False
    )
    if shutil.which("apptainer") or shutil.which("singularity"):
        assert dry.returncode == 0, dry.stderr[-2000:]
    else:
        assert dry.returncode != 0
        assert "apptainer or singularity command has to be available" in dry.stdout + dry.stderr


def test_simulate_asks_for_a_gpu_on_cuda_and_the_local_profile_caps_it(finished_workflow: Path) -> None:
    """device cuda: gpu=1 per chunk (device cpu gives gpu=0: test_workflow_run.py), one at a time in profiles/local."""
    profile = yaml.safe_load((REPO_ROOT / "profiles/local/config.yaml").read_text())
    assert profile["resources"] == {"gpu": 1}  # one chunk per GPU at a time; CPU chunks (gpu=0) are not held back
    dry = run_snakemake(finished_workflow, "-n", "--forcerun", "simulate", "--config", "device=cuda").stdout
    simulate = [line for line in re.findall(r"^\s+resources: .*", dry, re.MULTILINE) if "device=cuda" in line]
    assert len(simulate) == 3 and all("gpu=1," in line for line in simulate), simulate


def test_device_auto_counts_the_gpus_the_nvidia_driver_lists(tmp_path: Path) -> None:
    """device auto asks the driver's GPU list (one folder per GPU), never torch: no list means no GPU."""
    from density_engine.workflow.hardware import nvidia_gpu_count

    assert nvidia_gpu_count(tmp_path / "absent") == 0
    (tmp_path / "gpus").mkdir()
    assert nvidia_gpu_count(tmp_path / "gpus") == 0
    for bus in ("0000:17:00.0", "0000:65:00.0"):
        (tmp_path / "gpus" / bus).mkdir()
    assert nvidia_gpu_count(tmp_path / "gpus") == 2
