"""`density-engine status` from the files of a run (no Snakemake): states per chunk, throughput, rate and ETA with an
injected clock, the Vast ledger's money."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from density_engine.workflow.config import apply_defaults
from density_engine.workflow.status import run_status

from .conftest import TINY_CONFIG, chunk_stems

GARCH = "gjrgarch_normalized"
HESTON = "rough_heston"


def _done(root: Path, model: str, stem: str, written_at: float, wall: float) -> None:
    folder = root / "results/chunks" / model
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.parquet").write_bytes(b"a chunk")  # status only looks for the files
    (folder / f"{stem}.manifest.json").write_text(json.dumps({"written_at": written_at, "wall_time_s": wall}))


def test_states_throughput_eta_and_costs(tmp_path: Path) -> None:
    config = apply_defaults(TINY_CONFIG)
    garch, heston = chunk_stems(TINY_CONFIG, GARCH), chunk_stems(TINY_CONFIG, HESTON)
    _done(tmp_path, GARCH, garch[0], written_at=1000.0, wall=4.0)
    logs = tmp_path / "results/logs/simulate" / GARCH
    logs.mkdir(parents=True)
    (logs / f"{garch[1]}.log").write_text("gjrgarch chunk 00001 ...\nError: results/specs/x.json: boom\n")
    status = run_status(config, root=tmp_path, now=lambda: 1600.0)
    assert status.models[0].counts == {"done": 1, "started": 0, "failed": 1, "quarantined": 0, "pending": 0}
    assert status.models[0].failed == [f"{logs / garch[1]}.log: Error: results/specs/x.json: boom"]
    assert status.models[1].counts["pending"] == 1
    # 2 parameter sets x 4000 paths x 3 fine steps in 4 s of the job's wall time
    assert status.models[0].path_steps_per_s == pytest.approx(2 * 4000 * 3 / 4.0)
    assert status.chunks_per_hour is None and status.eta_hours is None  # one finished chunk: no rate yet
    assert "last chunk finished 10 min ago; ETA unknown" in "\n".join(status.lines())

    (logs / f"{garch[1]}.log").write_text("gjrgarch chunk 00001 ...\n")  # re-run: started, no error yet
    _done(tmp_path, HESTON, heston[0], written_at=1900.0, wall=2.0)
    ledger = tmp_path / "results/vast/ledger/run-1.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(json.dumps({"total_cost_usd": 1.25, "final": False, "live_instances": 2, "budget_usd": 10}))
    status = run_status(config, root=tmp_path, now=lambda: 1960.0)
    assert status.models[0].counts["started"] == 1 and status.done == 2 and status.total == 3
    assert status.chunks_per_hour == pytest.approx(1 / 900 * 3600)  # two chunks 900 s apart
    assert status.eta_hours == pytest.approx(0.25)  # one chunk left at 4 chunks/h
    lines = status.lines()
    assert "all: 2 of 3 chunks done (66.7 %); last chunk finished 1 min ago; 4 chunks/h, ETA 15 min" in lines
    cost_line = "cost: $1.25 spent on Vast of a $10 budget over 1 run(s) (1 run(s) in progress, 2 live instance(s);"
    assert cost_line in "\n".join(lines)
    assert status.to_dict()["cost_usd"] == 1.25


def test_quarantined_chunk_until_it_is_simulated_again(tmp_path: Path) -> None:
    config = apply_defaults(TINY_CONFIG)
    stem = chunk_stems(TINY_CONFIG, HESTON)[0]
    quarantine = tmp_path / "results/quarantine" / HESTON
    quarantine.mkdir(parents=True)
    (quarantine / f"{stem}.parquet").write_bytes(b"bad")
    (quarantine / f"{stem}.reason.txt").write_text(f"2026-01-01T00:00:00Z results/chunks/{stem}: moments: x\n")
    status = run_status(config, root=tmp_path, now=lambda: 0.0)
    assert status.models[1].counts["quarantined"] == 1
    assert status.models[1].quarantined == [
        f"{quarantine / stem}.parquet: 2026-01-01T00:00:00Z results/chunks/{stem}: moments: x"
    ]
    _done(tmp_path, HESTON, stem, written_at=10.0, wall=1.0)
    assert run_status(config, root=tmp_path, now=lambda: 20.0).models[1].counts["done"] == 1
