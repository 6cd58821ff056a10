"""Files of older configs: chunks, chunk manifests, specs, logs, benchmarks and quarantined chunks whose content key is
not in the current plan, parameter grids and merge manifests of other plans.

Every per-chunk file is named ``chunk_NNNNN.<key>.<ext>`` (:mod:`density_engine.workflow.chunks`), so a file belongs
to the current config exactly when its ``chunk_NNNNN.<key>`` stem is one of the plan's :attr:`ModelPlan.chunk_stems`.
Models in the config (enabled or not) are cleaned against their plan; folders of models that are not in the config are
left alone (reported), since their config is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from density_engine.layout import (
    CHUNKS_DIR,
    GRID_DIR,
    QUARANTINE_DIR,
    SIMULATE_BENCHMARKS_DIR,
    SIMULATE_LOGS_DIR,
    SPECS_DIR,
)
from density_engine.workflow.chunks import KEY_PATTERN

#: Folders (one sub-folder per model) that hold per-chunk files.
PER_CHUNK_DIRS = (CHUNKS_DIR, SPECS_DIR, SIMULATE_LOGS_DIR, SIMULATE_BENCHMARKS_DIR, QUARANTINE_DIR)
_CHUNK_FILE = re.compile(rf"(chunk_\d{{5}}\.{KEY_PATTERN})\..+")
_GRID_FILE = re.compile(rf"parameters\.({KEY_PATTERN})\.parquet")
_MERGE_MANIFEST = re.compile(rf"densities\.({KEY_PATTERN})\.json")


@dataclass
class StaleFiles:
    """What ``clean --stale`` found."""

    files: list[Path] = field(default_factory=list)
    unknown_models: list[Path] = field(default_factory=list)  # model folders not in the config (kept)

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files if path.exists())


def stale_files(config: Mapping[str, Any], base_dir: str | Path = ".", root: str | Path = ".") -> StaleFiles:
    """The files under the workflow folder ``root`` that belong to no current plan of ``config``'s models."""
    from density_engine.workflow.chunks import plan_model

    root = Path(root)
    found = StaleFiles()
    plans = {name: plan_model(name, model_cfg, base_dir) for name, model_cfg in config["models"].items()}
    for folder in PER_CHUNK_DIRS:
        base = root / folder
        for model_dir in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            plan = plans.get(model_dir.name)
            if plan is None:
                found.unknown_models.append(model_dir)
                continue
            current = set(plan.chunk_stems)
            for path in sorted(model_dir.iterdir()):
                match = _CHUNK_FILE.fullmatch(path.name.lstrip("."))
                if path.is_file() and match and match.group(1) not in current:
                    found.files.append(path)
    for name, plan in plans.items():
        grid_dir = root / GRID_DIR / name
        for path in sorted(grid_dir.glob("parameters.*.parquet")) if grid_dir.is_dir() else []:
            match = _GRID_FILE.fullmatch(path.name)
            if match and match.group(1) != plan.grid_key:
                found.files.append(path)
        model_dir = root / "results" / name
        for path in sorted(model_dir.glob("densities.*.json")) if model_dir.is_dir() else []:
            match = _MERGE_MANIFEST.fullmatch(path.name)
            if match and match.group(1) != plan.plan_key:
                found.files.append(path)
    return found


def remove(files: list[Path]) -> int:
    """Delete ``files``; return the bytes freed."""
    freed = 0
    for path in files:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed
