"""The instance monitor: ONE instance-list call per cycle tells the status of every instance of the run.

Vast's per-instance ``GET /api/v0/instances/{id}/`` has a documented minimum interval of 2 s per identity, so polling
100 booting or running instances one by one would take minutes per round. The monitor instead lists the account's
instances (``GET /api/v1/instances/``, 25 per page, so one call per 25 instances) every ``interval`` seconds in its
own thread and keeps the latest row of each watched instance; the pool reads those snapshots. API errors keep the
last snapshot (its age shows in ``age``); they never raise into the pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sighting:
    """What the monitor knows about one watched instance."""

    instance: Any | None
    """The latest :class:`~snakemake_executor_plugin_vast.client.Instance` row, None when never listed."""
    listed_at: float | None
    """Clock time of the last list that contained it."""
    missing_since: float | None
    """Clock time since which successful lists do not contain it any more (None: listed at the last list)."""
    watched_since: float


class InstanceMonitor:
    """Lists the run's instances every ``interval`` seconds (see the module docstring). Thread-safe."""

    def __init__(
        self,
        client: Any,
        label_prefixes: Callable[[], tuple[str, ...]],
        *,
        interval: float = 5.0,
        clock: Callable[[], float],
        on_update: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.label_prefixes = label_prefixes
        self.interval = interval
        self.clock = clock
        self.on_update = on_update
        self._lock = threading.Lock()
        self._watched: dict[int, float] = {}
        self._rows: dict[int, Any] = {}
        self._listed_at: dict[int, float] = {}
        self._missing_since: dict[int, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._strays: dict[int, Any] = {}
        self._strays_until = 0.0
        self.lists = 0
        self.failures = 0
        self.last_list: float | None = None

    def start(self) -> None:
        """Start the monitor thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="vast-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (returns at once; the thread ends after its current call)."""
        self._stop.set()
        self._wake.set()

    def watch(self, instance_id: int) -> None:
        """Start tracking an instance (a fresh rent or an adopted one) and list soon."""
        with self._lock:
            self._watched.setdefault(int(instance_id), self.clock())

    def unwatch(self, instance_id: int) -> None:
        """Stop tracking an instance (destroyed)."""
        with self._lock:
            for table in (self._watched, self._rows, self._listed_at, self._missing_since):
                table.pop(int(instance_id), None)

    def sighting(self, instance_id: int) -> Sighting:
        """The latest knowledge about one instance."""
        with self._lock:
            return Sighting(
                self._rows.get(instance_id),
                self._listed_at.get(instance_id),
                self._missing_since.get(instance_id),
                self._watched.get(instance_id, self.clock()),
            )

    def expect_strays(self, seconds: float) -> None:
        """Keep listing for ``seconds`` even with nothing watched (an ambiguous rent may still show up)."""
        with self._lock:
            self._strays_until = max(self._strays_until, self.clock() + seconds)

    def strays(self) -> list[Any]:
        """Listed instances with the run's label prefixes that are not watched (e.g. the result of an ambiguous rent
        whose answer was lost): the pool destroys them."""
        with self._lock:
            return list(self._strays.values())

    def refresh(self) -> bool:
        """One listing now (also called by the thread); True on success."""
        with self._lock:
            watched = set(self._watched)
            idle = not watched and self.clock() > self._strays_until
        if idle:
            return True
        prefixes = self.label_prefixes()
        try:
            rows = self.client.list_instances()
        except Exception as exc:  # 429 after retries, 5xx, network: keep the last snapshot
            self.failures += 1
            log.debug("vast: instance list failed: %s", exc)
            return False
        now = self.clock()
        self.lists += 1
        self.last_list = now
        by_id = {inst.id: inst for inst in rows}
        with self._lock:
            self._strays = {
                inst.id: inst
                for inst in rows
                if inst.id not in self._watched and prefixes and (inst.label or "").startswith(prefixes)
            }
            for instance_id in watched:
                if instance_id not in self._watched:
                    continue  # unwatched meanwhile
                inst = by_id.get(instance_id)
                if inst is None:
                    self._missing_since.setdefault(instance_id, now)
                else:
                    self._rows[instance_id] = inst
                    self._listed_at[instance_id] = now
                    self._missing_since.pop(instance_id, None)
        if self.on_update is not None:
            self.on_update()
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._wake.wait(self.interval)
            self._wake.clear()
