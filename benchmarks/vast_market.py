"""The issue-10 acceptance run: the demo config under profiles/vast against a scarce, misbehaving fake market.

    python benchmarks/vast_market.py [--out benchmarks/vast_market.json]

Copies the workflow (workflow/, config/, resources/; the code reaches the hosts as wheels) with the demo config
(config/config.yaml, unchanged) to a temporary folder and runs

    snakemake --profile profiles/vast -j 4 --retries 3

(plus the options that point the executor at the fake: API URL, SSH user, the test interpreter as remote python, short
boot timeout and offer wait, fast API throttle) against the fake Vast of tests/fake_vast with the market of
tests/vast/test_market.py: 12 offers, 2 of which match the profile's query; one of them vanishes on rent, the other
never boots; matching machines appear later, one with a fatal image-pull error, one with a full /workspace, one that
dies while it works; 429 storms on the instance list, renting, searching and destroying. Then runs
`snakemake --profile profiles/vast -n` and prints: exit codes, "Nothing to be done", instances rented and leaked, the
ledger, 429s, Snakemake retries used. Needs root (private /workspace per host) and sshd.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fake_vast.server import running_fake  # noqa: E402
from tests.vast.conftest import run_controller, vast_command, vast_env  # noqa: E402
from tests.vast.test_market import scarce_market  # noqa: E402


def workflow_copy(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for top in REPO.iterdir():
        if top.is_file() and not top.name.startswith("."):
            shutil.copy2(top, dest / top.name)
    for folder in ("workflow", "config", "resources"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vast-market-"))
    load_before = os.getloadavg()
    try:
        with running_fake(root / "fake", hide_paths=(root, REPO), t_null=0.1, t_loading=0.3) as fake:
            offers = scarce_market(fake)
            # the demo's chunk groups run longer than the test's jobs: this host dies while it works on one
            fake.set_offer_behaviour(offers["dies"], die_after=12.0, die_status="offline")
            fake.rate_limit("GET", "/api/v1/instances/", every_k=3)
            fake.rate_limit("PUT", "/api/v0/asks/{id}/", first_n=2, body="json")
            fake.rate_limit("POST", "/api/v0/bundles/", every_k=4, body="detail")
            fake.rate_limit("DELETE", "/api/v0/instances/{id}/", every_k=2)
            work = workflow_copy(root / "wf")
            env = vast_env(fake.api_key)
            cmd = vast_command(
                fake.base_url, "-j", "4", "--retries", "3", "--vast-boot-timeout", "6", "--vast-offer-wait", "60",
                "--vast-idle-timeout", "5", "--vast-max-instances", "4",
            )  # fmt: skip
            started = time.monotonic()
            code, log = run_controller(cmd, work, env, timeout=1800)
            wall = time.monotonic() - started
            dry_code, dry = run_controller(vast_command(fake.base_url, "-n"), work, env)
            runs = [json.loads(p.read_text()) for p in sorted((work / "results/vast/ledger").glob("*.json"))]
            summary = {
                "command": "snakemake --profile profiles/vast -j 4 --retries 3 (+ fake-pointing options)",
                "exit_code": code,
                "wall_s": round(wall, 1),
                "dry_run_exit_code": dry_code,
                "nothing_to_be_done": "Nothing to be done" in dry,
                "snakemake_retries_used": log.count("Trying to restart job"),
                "instances_rented": len(fake.instances),
                "leaked_instances": len(fake.live_instances()),
                "offers": {name: fake.offers[offer_id].row["machine_id"] for name, offer_id in offers.items()},
                "http_429": sum(1 for r in fake.requests if r.status == 429),
                "fake_bill_usd": round(fake.cost(), 6),
                "ledger": [
                    {
                        "run_id": run["run_id"],
                        "final": run["final"],
                        "end_reason": run["end_reason"],
                        "total_cost_usd": run["total_cost_usd"],
                        "instances": [
                            (row["machine_id"], row["end_reason"], round(row["idle_seconds"], 1))
                            for row in run["instances"]
                        ],
                    }
                    for run in runs
                ],
                "costs_csv": (work / "results/report/costs.csv").read_text() if code == 0 else None,
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
            }
            print(json.dumps(summary, indent=2))
            if code != 0 or dry_code != 0:
                print(log[-8000:], file=sys.stderr)
            if args.out:
                args.out.write_text(json.dumps(summary, indent=2) + "\n")
            ok = code == 0 and summary["nothing_to_be_done"] and summary["leaked_instances"] == 0
            return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
