"""Import layers (docs/architecture.md): every module imports only its own layer or the ones below it, the model
declarations and the torch-free contracts never import torch, and the workflow's config check runs without torch.

The check reads every ``import`` statement of the package with ``ast`` (module level and inside functions alike), so a
lazy upward import fails as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "density_engine"

LAYERS: dict[str, float] = {
    # shared utilities without dependencies on other layers
    "density_engine": 0,
    "density_engine.atomic": 0,
    "density_engine.layout": 0,
    "density_engine.codeversion": 0,
    # pure math: declarations (numpy) and step kernels (torch)
    "density_engine.models": 1,
    "density_engine.models.kernels": 1.1,
    # what a model config says about its parameter sets (workflow and dataset use it)
    "density_engine.parameter_grid": 1.5,
    "density_engine.engine": 2,
    "density_engine.vast": 3,
    "density_engine.dataset": 4,
    "density_engine.workflow": 5,
    "density_engine.cli": 6,
}
"""Rank of each layer (the longest matching prefix decides); imports may only go to an equal or lower rank."""

TORCH_FREE = (
    "density_engine.models",
    "density_engine.engine.chunkio",
    "density_engine.engine.counters",
    "density_engine.parameter_grid",
    "density_engine.workflow",
    "density_engine.dataset",
)
"""Modules (prefixes) that must not import torch anywhere; ``density_engine.models.kernels`` is the exception."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> float | None:
    matches = [prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def imports(path: Path, name: str | None = None) -> list[tuple[int, str]]:
    """(line, imported module) of every import statement in a file (module ``name``), relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.append((node.lineno, base))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))

BLOCK_TORCH = (
    "import sys, importlib.abc\n"
    "class _NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ImportError(f'{name} is blocked: this code path must not import torch')\n"
    "sys.meta_path.insert(0, _NoTorch())\n"
)
"""Python code that makes any later ``import torch`` fail (for subprocess checks)."""


def test_every_module_has_a_layer() -> None:
    assert MODULES
    assert [module_name(p) for p in MODULES if layer(module_name(p)) is None] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_go_down_only(path: Path) -> None:
    own = layer(module_name(path))
    upward = [
        f"line {line}: {target} (layer {layer(target)} > {own})"
        for line, target in imports(path)
        if target.startswith("density_engine") and (layer(target) or 0) > own
    ]
    assert upward == [], f"{module_name(path)} imports upward: {upward}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_torch_free_modules_do_not_import_torch(path: Path) -> None:
    name = module_name(path)
    if not name.startswith(TORCH_FREE) or name.startswith("density_engine.models.kernels"):
        return
    torch_imports = [line for line, target in imports(path) if target == "torch" or target.startswith("torch.")]
    assert torch_imports == [], f"{name} imports torch at line(s) {torch_imports}"
    model_kernels = [line for line, target in imports(path) if target.startswith("density_engine.models.kernels")]
    assert model_kernels == [], f"{name} imports the step kernels at line(s) {model_kernels}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The layer check is not vacuous: a lazy import of the CLI from a model module is reported."""
    fake = PACKAGE / "models" / "gjrgarch.py"
    source = fake.read_text() + "\n\ndef _f():\n    from density_engine.cli import main\n"
    probe = tmp_path / "gjrgarch.py"
    probe.write_text(source)
    found = [t for _line, t in imports(probe, "density_engine.models.gjrgarch") if t.startswith("density_engine")]
    assert "density_engine.cli" in found and layer("density_engine.cli") > layer("density_engine.models")


def test_config_check_and_chunk_contract_run_without_torch() -> None:
    """The Snakefile's config check (validate_config, plan_model) and the chunk contract never import torch."""
    code = (
        BLOCK_TORCH + "from density_engine.workflow.config import load_yaml, validate_config\n"
        "from density_engine.workflow.chunks import plan_model\n"
        "from density_engine.engine import chunkio\n"
        "cfg = validate_config(load_yaml('config/config.yaml'), base_dir='.')\n"
        "plans = [plan_model(name, m, '.') for name, m in cfg['models'].items()]\n"
        "assert all(p.num_chunks > 0 for p in plans)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
