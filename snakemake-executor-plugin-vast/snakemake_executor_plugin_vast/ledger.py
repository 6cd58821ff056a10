"""The cost ledger: one JSON file per run in ``--vast-ledger-dir``, an append-only history of every run.

Each run writes ``<ledger dir>/<run id>.json`` (atomically: temp file + rename) when something changed: a rent, a
host becoming ready, an adoption, a destruction, a preemption, the end; and during the run at most every
``interval`` seconds while instances live (so a killed controller leaves an almost current file). Files of earlier
runs are never deleted; a later run only touches a dead run's file to record what it did with that run's leftover
instances (adopted or destroyed). Nothing is written before the run's first rent, so a run that rents nothing leaves
no file.

A run's file is complete (``"final": true``) once all its instances are gone and the executor expects no more remote
work: the executor finalizes it before it reports the last remote job of the workflow, so rules that read the ledger
afterwards (a cost report) see the final numbers and are not made out of date by a later write. Format: see
``docs/further.md`` ("The cost ledger"). Costs are conservative: ``dph_total × (end − rent)``; Vast bills storage
from the rent and the GPU only while ``running``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from snakemake_executor_plugin_vast.atomic import write_text_atomic

log = logging.getLogger(__name__)

FORMAT = "snakemake-executor-plugin-vast/ledger/1"


@dataclass
class InstanceRecord:
    """Billing record of one instance within one run."""

    instance_id: int
    label: str
    machine_id: int | None
    gpu_name: str
    num_gpus: int
    dph_total: float
    rented_at: float
    interruptible: bool = False
    ready_at: float | None = None
    destroyed_at: float | None = None
    end_reason: str = ""
    busy_seconds: float = 0.0
    idle_seconds: float = 0.0
    jobs: int = 0
    preempted: bool = False
    adopted_from: str | None = None
    """Run id whose leftover this instance was (it is billed to this run from ``rented_at``, the adoption time)."""
    handed_to: str | None = None
    """Run id that adopted this instance after this run died (this run's cost ends at ``destroyed_at``)."""

    def cost(self, now: float) -> float:
        """Dollars spent on this instance in this run up to ``now`` (or its end)."""
        end = self.destroyed_at if self.destroyed_at is not None else now
        return self.dph_total * max(0.0, end - self.rented_at) / 3600.0

    @property
    def live(self) -> bool:
        """True while the instance is billed to this run."""
        return self.destroyed_at is None

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> InstanceRecord:
        """Read a record written by :meth:`RunLedger.summary` (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in row.items() if key in names})


@dataclass
class RunLedger:
    """The ledger of one run (thread-safe); see the module docstring."""

    directory: Path
    run_id: str
    label_prefix: str
    budget: float | None = None
    clock: Callable[[], float] = time.time
    interval: float = 30.0
    started_at: float | None = None
    records: dict[int, InstanceRecord] = field(default_factory=dict)
    final: bool = False
    end_reason: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self._lock = threading.RLock()
        self._dirty = False
        self._written_at: float | None = None
        if self.started_at is None:
            self.started_at = self.clock()

    @property
    def path(self) -> Path:
        """This run's ledger file."""
        return self.directory / f"{self.run_id}.json"

    # ---- changes -----------------------------------------------------------------------------------------------------

    def add(self, record: InstanceRecord) -> None:
        """A new instance billed to this run (rented or adopted)."""
        with self._lock:
            self.records[record.instance_id] = record
            self.final = False
            self._dirty = True

    def update(self, instance_id: int, **changes: Any) -> None:
        """Change fields of an instance's record (unknown ids are ignored)."""
        with self._lock:
            record = self.records.get(instance_id)
            if record is None:
                return
            for name, value in changes.items():
                setattr(record, name, value)
            self._dirty = True

    def add_time(self, instance_id: int, *, busy: float = 0.0, idle: float = 0.0, jobs: int = 0) -> None:
        """Account busy/idle seconds and finished jobs of an instance (not a reason to write the file by itself)."""
        with self._lock:
            record = self.records.get(instance_id)
            if record is not None:
                record.busy_seconds += max(0.0, busy)
                record.idle_seconds += max(0.0, idle)
                record.jobs += jobs

    def ended(self, instance_id: int, reason: str, *, when: float | None = None, **changes: Any) -> None:
        """The instance stopped billing this run (destroyed, or handed over)."""
        with self._lock:
            record = self.records.get(instance_id)
            if record is None or record.destroyed_at is not None:
                return
            record.destroyed_at = self.clock() if when is None else when
            record.end_reason = reason
            for name, value in changes.items():
                setattr(record, name, value)
            self._dirty = True

    def finalize(self, reason: str) -> None:
        """Mark the run complete (no live instance, no more expected) and write it now."""
        with self._lock:
            if self.final and self.end_reason == reason and not self._dirty:
                return
            self.final = True
            self.end_reason = reason
            self._dirty = True
        self.write()

    def reopen(self) -> None:
        """More remote work after :meth:`finalize` (e.g. a retry): the run is not final any more."""
        with self._lock:
            if self.final:
                self.final = False
                self._dirty = True

    # ---- money -------------------------------------------------------------------------------------------------------

    def spent(self, now: float | None = None) -> float:
        """Dollars spent by this run so far."""
        now = self.clock() if now is None else now
        with self._lock:
            return sum(r.cost(now) for r in self.records.values())

    def live_dph(self) -> float:
        """$/h of the instances billed to this run now."""
        with self._lock:
            return sum(r.dph_total for r in self.records.values() if r.live)

    def live_count(self) -> int:
        """Instances billed to this run now."""
        with self._lock:
            return sum(1 for r in self.records.values() if r.live)

    # ---- files -------------------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run's ledger as a JSON-able dict."""
        now = self.clock()
        with self._lock:
            rows = [dict(asdict(r), cost_usd=round(r.cost(now), 9)) for r in self.records.values()]
            return {
                "format": FORMAT,
                "run_id": self.run_id,
                "label_prefix": self.label_prefix,
                "started_at": self.started_at,
                "written_at": now,
                "final": self.final,
                "end_reason": self.end_reason,
                "budget_usd": self.budget,
                "total_cost_usd": round(sum(r["cost_usd"] for r in rows), 9),
                "live_instances": sum(1 for r in rows if r["destroyed_at"] is None),
                "preemptions": sum(1 for r in rows if r["preempted"]),
                "notes": list(self.notes),
                "instances": rows,
            }

    def write(self, *, force: bool = False) -> Path | None:
        """Write the file atomically when something changed (or ``force``); never before the first instance.
        A failure is logged, not raised."""
        with self._lock:
            if not self.records or not (self._dirty or force):
                return None
            text = json.dumps(self.summary(), indent=2) + "\n"
            try:
                write_text_atomic(self.path, text)
            except OSError as exc:
                log.warning("vast: could not write the cost ledger %s: %s", self.path, exc)
                return None
            self._dirty = False
            self._written_at = self.clock()
            return self.path

    def maybe_write(self) -> None:
        """The periodic write while instances live (at most every ``interval`` seconds)."""
        with self._lock:
            due = self._written_at is None or self.clock() - self._written_at >= self.interval
            if due and self.live_count():
                self._dirty = True  # live costs moved on
        self.write()

    def format_table(self) -> str:
        """Human-readable table of this run."""
        summary = self.summary()
        lines = [f"Vast cost ledger of run {summary['run_id']} ({self.path}):"]
        for row in summary["instances"]:
            end = row["destroyed_at"] or summary["written_at"]
            extra = " preempted" if row["preempted"] else ""
            extra += f" adopted from {row['adopted_from']}" if row["adopted_from"] else ""
            lines.append(
                f"  instance {row['instance_id']:>10}  {row['gpu_name']} x{row['num_gpus']}  "
                f"${row['dph_total']:.4f}/h  "
                f"{(end - row['rented_at']) / 60:7.2f} min (busy {row['busy_seconds'] / 60:.2f}, idle "
                f"{row['idle_seconds'] / 60:.2f})  ${row['cost_usd']:.4f}  ({row['end_reason'] or 'live'}{extra})"
            )
        budget = f" of budget ${summary['budget_usd']:g}" if summary["budget_usd"] is not None else ""
        lines.append(f"  total: ${summary['total_cost_usd']:.4f}{budget} over {len(summary['instances'])} instance(s)")
        return "\n".join(lines)

    @classmethod
    def load(cls, path: Path, clock: Callable[[], float] | None = None) -> RunLedger:
        """Read a run's ledger file back (e.g. a dead run's, to record what happened to its instances)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        ledger = cls(
            directory=Path(path).parent,
            run_id=str(data["run_id"]),
            label_prefix=str(data.get("label_prefix") or ""),
            budget=data.get("budget_usd"),
            started_at=data.get("started_at"),
            final=bool(data.get("final")),
            end_reason=str(data.get("end_reason") or ""),
            notes=list(data.get("notes") or []),
            **({"clock": clock} if clock is not None else {}),
        )
        for row in data.get("instances", []):
            record = InstanceRecord.from_json(row)
            ledger.records[record.instance_id] = record
        return ledger


def read_runs(directory: str | Path) -> list[dict[str, Any]]:
    """Every run's ledger in ``directory`` (oldest first by start time); unreadable files raise ValueError naming
    the file."""
    runs = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable Vast cost ledger ({exc})") from exc
        if not isinstance(data, dict) or "instances" not in data:
            raise ValueError(f"{path}: not a Vast cost ledger (no 'instances')")
        runs.append(data)
    return sorted(runs, key=lambda run: (run.get("started_at") or 0.0, str(run.get("run_id"))))


def unfinished_runs(directory: str | Path, exclude: Iterable[str] = ()) -> list[Path]:
    """Ledger files of runs that never finalized (their controller died, or is still running)."""
    skip = set(exclude)
    found = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and not data.get("final") and str(data.get("run_id")) not in skip:
            found.append(path)
    return found
