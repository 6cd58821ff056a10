"""Where a run stands, from the files alone (no Snakemake, no lock: works during and after a run).

Per enabled model, every chunk of the *current* plan is ``done`` (its parquet and chunk manifest are in
``results/chunks/``), ``quarantined`` (the merge moved it to ``results/quarantine/`` and it was not re-simulated yet),
``failed`` (its simulate log ends in an error), ``started`` (a log without a result or an error: running, or killed)
or ``pending``. Throughput comes from the chunk manifests (path-steps over the jobs' wall time), the ETA from the rate
at which the last chunks finished, the money from the Vast cost ledger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from density_engine.layout import (
    CHUNK_MANIFEST_SUFFIX,
    CHUNKS_DIR,
    QUARANTINE_DIR,
    SIMULATE_LOGS_DIR,
    VAST_LEDGER_DIR,
)

#: Chunks whose finishing times give the current rate (the most recent ones).
RATE_WINDOW = 50
STATES = ("done", "started", "failed", "quarantined", "pending")


@dataclass
class ModelStatus:
    """Chunk counts of one model and the problems to look at."""

    model: str
    total: int
    counts: dict[str, int]
    path_steps_done: int = 0
    job_seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # "<log>: <last error line>"
    quarantined: list[str] = field(default_factory=list)  # "<chunk>: <reason>"

    @property
    def path_steps_per_s(self) -> float | None:
        """Path-steps per second of one simulate job (over the finished chunks)."""
        return self.path_steps_done / self.job_seconds if self.job_seconds > 0 else None


@dataclass
class RunStatus:
    """The whole run: per model, the completion rate and ETA, and the Vast costs."""

    models: list[ModelStatus]
    finished_at: list[float]
    now: float
    cost_usd: float | None
    cost_note: str

    @property
    def total(self) -> int:
        return sum(m.total for m in self.models)

    @property
    def done(self) -> int:
        return sum(m.counts["done"] for m in self.models)

    @property
    def chunks_per_hour(self) -> float | None:
        """Completion rate over the last :data:`RATE_WINDOW` finished chunks (``None`` with fewer than two)."""
        recent = sorted(self.finished_at)[-RATE_WINDOW:]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0]) * 3600.0

    @property
    def eta_hours(self) -> float | None:
        """Hours to finish the remaining chunks at :attr:`chunks_per_hour` (0 when all are done)."""
        remaining = self.total - self.done
        if remaining == 0:
            return 0.0
        rate = self.chunks_per_hour
        return remaining / rate if rate else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``density-engine status --json``)."""
        return {
            "models": [{**asdict(m), "path_steps_per_s": m.path_steps_per_s} for m in self.models],
            "total": self.total,
            "done": self.done,
            "chunks_per_hour": self.chunks_per_hour,
            "eta_hours": self.eta_hours,
            "last_finished_s_ago": self.now - max(self.finished_at) if self.finished_at else None,
            "cost_usd": self.cost_usd,
            "cost_note": self.cost_note,
        }

    def lines(self) -> list[str]:
        """The human-readable report."""
        out = [
            f"{'model':<22}{'done':>7}{'total':>7}{'started':>9}{'failed':>8}{'quarant.':>10}{'pending':>9}"
            f"{'path-steps/s':>14}"
        ]
        for m in self.models:
            rate = m.path_steps_per_s
            out.append(
                f"{m.model:<22}{m.counts['done']:>7}{m.total:>7}{m.counts['started']:>9}{m.counts['failed']:>8}"
                f"{m.counts['quarantined']:>10}{m.counts['pending']:>9}{(f'{rate:.3g}' if rate else '-'):>14}"
            )
        share = 100.0 * self.done / self.total if self.total else 100.0
        summary = f"all: {self.done} of {self.total} chunks done ({share:.1f} %)"
        if self.finished_at:
            summary += f"; last chunk finished {_ago(self.now - max(self.finished_at))} ago"
        rate, eta = self.chunks_per_hour, self.eta_hours
        if self.done < self.total:
            summary += f"; {rate:.3g} chunks/h, ETA {_duration(eta)}" if rate and eta is not None else "; ETA unknown"
        out.append(summary)
        out.append(f"cost: {self.cost_note}")
        for m in self.models:
            out += [f"failed: {line}" for line in m.failed]
            out += [f"quarantined: {line}" for line in m.quarantined]
        return out


def _ago(seconds: float) -> str:
    return _duration(max(seconds, 0.0) / 3600.0)


def _duration(hours: float | None) -> str:
    if hours is None:
        return "unknown"
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 2:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _last_error(log: Path) -> str | None:
    """The error line a failed simulate job left at the end of its log (click's ``Error:`` or a traceback's last line),
    ``None`` for a log without one."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return None
    for line in reversed(lines[-30:]):
        if line.startswith("Error:") or line.startswith("Traceback"):
            return line
    if any(line.startswith("Traceback") for line in lines):
        return lines[-1]
    return None


def _ledger_cost(folder: Path) -> tuple[float | None, str]:
    """Total spend over every run's Vast ledger in ``folder`` (one ``<run id>.json`` per run), and a one-line note."""
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        return None, "no Vast cost ledger (a local run, or no host rented yet)"
    total, live, budget, in_progress = 0.0, 0, None, 0
    for path in paths:
        try:
            ledger = json.loads(path.read_text(encoding="utf-8"))
            total += float(ledger["total_cost_usd"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"{path}: unreadable cost ledger ({exc})"
        if not ledger.get("final"):
            in_progress += 1
            live += int(ledger.get("live_instances") or 0)
        budget = ledger.get("budget_usd", budget)  # the newest run's budget
    runs = f"{len(paths)} run(s)"
    state = f"{in_progress} run(s) in progress, {live} live instance(s)" if in_progress else "final"
    of_budget = f" of a ${budget:g} budget" if budget is not None and len(paths) == 1 else ""
    return total, f"${total:.2f} spent on Vast{of_budget} over {runs} ({state}; {folder})"


def model_status(
    model: str, model_cfg: Mapping[str, Any], base_dir: str | Path, root: Path
) -> tuple[ModelStatus, list[float]]:
    """Status of one model's chunks under ``root`` (the workflow folder), and the finishing times of its done chunks."""
    from density_engine.workflow.chunks import plan_model
    from density_engine.workflow.config import model_settings
    from density_engine.workflow.estimate import set_work
    from density_engine.workflow.integrity import quarantined

    plan = plan_model(model, model_cfg, base_dir)
    chunks, logs = root / CHUNKS_DIR / model, root / SIMULATE_LOGS_DIR / model
    quarantine = root / QUARANTINE_DIR / model
    in_quarantine = quarantined(quarantine)
    _dt, time_grid = model_settings(model, model_cfg)
    horizons = [int(h) for h in model_cfg["horizons"]]
    steps_per_set = set_work(model, int(model_cfg["num_paths"]), horizons, time_grid).path_steps
    status = ModelStatus(model, plan.num_chunks, dict.fromkeys(STATES, 0))
    finished: list[float] = []
    for index, stem in enumerate(plan.chunk_stems):
        manifest = chunks / f"{stem}{CHUNK_MANIFEST_SUFFIX}"
        if (chunks / f"{stem}.parquet").is_file() and manifest.is_file():
            status.counts["done"] += 1
            try:
                record = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            sets = min(plan.chunk_size, plan.num_sets - index * plan.chunk_size)
            if isinstance(record.get("wall_time_s"), int | float):
                status.path_steps_done += sets * steps_per_set
                status.job_seconds += float(record["wall_time_s"])
            if isinstance(record.get("written_at"), int | float):
                finished.append(float(record["written_at"]))
        elif stem in in_quarantine and (quarantine / f"{stem}.parquet").is_file():
            status.counts["quarantined"] += 1
            status.quarantined.append(f"{quarantine / stem}.parquet: {in_quarantine[stem]}")
        elif (logs / f"{stem}.log").is_file():
            error = _last_error(logs / f"{stem}.log")
            status.counts["failed" if error else "started"] += 1
            if error:
                status.failed.append(f"{logs / stem}.log: {error}")
        else:
            status.counts["pending"] += 1
    return status, finished


def run_status(
    config: Mapping[str, Any], base_dir: str | Path = ".", root: str | Path = ".", now: Callable[[], float] = time.time
) -> RunStatus:
    """Status of every enabled model of a validated config, for the workflow folder ``root``."""
    root = Path(root)
    models, finished = [], []
    for name, model_cfg in config["models"].items():
        if model_cfg.get("enabled", True):
            status, times = model_status(name, model_cfg, base_dir, root)
            models.append(status)
            finished += times
    cost, note = _ledger_cost(root / VAST_LEDGER_DIR)
    return RunStatus(models=models, finished_at=finished, now=now(), cost_usd=cost, cost_note=note)
