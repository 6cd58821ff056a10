"""Scale benchmark of the vast executor: N concurrent instances against the fake Vast (real sshd hosts on loopback).

    python benchmarks/vast_scale.py --instances 100 [--throttle 0.1] [--out benchmarks/vast_scale.json]

Runs `snakemake --profile profiles/vast` on a tiny workflow of N one-GPU jobs (one trivial job per host) with
`--jobs N --vast-max-instances N`, against a fake whose rate limits are Vast's documented per-endpoint intervals
scaled by ``--throttle`` (the executor's --vast-api-throttle gets the same factor, so it must never see a 429 it did not
cause by retrying). Records: API calls per endpoint and per minute, 429 answers, instance-list calls per status cycle,
per-instance GETs, the controller's CPU seconds and peak thread count, and the time from the first rent to the last
job finished and to the last destroy. Needs root (private /workspace per host), sshd, and several GB of memory for N
remote snakemake processes at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snakemake_executor_plugin_vast.client import DEFAULT_MIN_INTERVALS as DOCUMENTED  # noqa: E402
from tests.fake_vast.server import running_fake  # noqa: E402
from tests.vast.conftest import start_controller, tiny_workflow, vast_command, vast_env  # noqa: E402


def threads_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--throttle", type=float, default=0.1, help="scale of Vast's documented intervals")
    parser.add_argument("--status-interval", type=int, default=5, help="--seconds-between-status-checks")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    n = args.instances
    root = Path(tempfile.mkdtemp(prefix="vast-scale-"))
    load_before = os.getloadavg()
    try:
        with running_fake(root / "fake", hide_paths=(root, REPO), t_null=0.2, t_loading=0.5) as fake:
            fake.offers.clear()
            for machine in range(n + 10):
                fake.add_offer(
                    gpu_name="RTX 4090", num_gpus=1, gpu_ram=24564.0, dph_base=0.30 + machine / 100000,
                    storage_cost=0.1, machine_id=1000 + machine, host_id=9000 + machine, verified=True,
                    rentable=True, rented=False, external=False, reliability=0.995, reliability2=0.995,
                    direct_port_count=10, cuda_max_good=12.4, inet_down=900.0, disk_space=200.0, cpu_ram=64000.0,
                    min_bid=0.12,
                )  # fmt: skip
            for (method, template), interval in DOCUMENTED.items():
                # 0.9: two requests the client spaced exactly by the interval may arrive a little closer
                fake.rate_limit(method, template, min_interval=0.9 * interval * args.throttle)
            work = tiny_workflow(root / "wf")
            cmd = vast_command(
                fake.base_url, "--config", f"count={n}", "--jobs", str(n), "--vast-api-throttle", str(args.throttle),
                "--seconds-between-status-checks", str(args.status_interval), "--vast-boot-timeout", "600",
                "--vast-budget", "50", max_instances=n,
            )  # fmt: skip
            log_path = root / "controller.log"
            started = time.monotonic()
            proc = start_controller(cmd, work, vast_env(fake.api_key), log_path)
            peak_threads = 0
            done = threading.Event()

            def sample() -> None:
                nonlocal peak_threads
                while not done.wait(0.5):
                    peak_threads = max(peak_threads, threads_of(proc.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            code = proc.wait(timeout=3600)
            done.set()
            wall = time.monotonic() - started
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            log = log_path.read_text(errors="replace")
            requests = list(fake.requests)
            live = len(fake.live_instances())
            rents = [
                r for r in requests if r.method == "PUT" and r.template == "/api/v0/asks/{id}/" and r.status == 200
            ]
            deletes = [r for r in requests if r.method == "DELETE" and r.status == 200]
            span = (max(r.time for r in requests) - min(r.time for r in requests)) / 60.0 if requests else 0.0
            per_endpoint: dict[str, int] = {}
            for r in requests:
                key = f"{r.method} {r.template}"
                per_endpoint[key] = per_endpoint.get(key, 0) + 1
            finished_jobs = log.count("(outputs downloaded)")
            figures = {
                "instances": n,
                "exit_code": code,
                "jobs_finished": finished_jobs,
                "instances_rented": len(fake.instances),
                "live_instances_after": live,
                "wall_s": round(wall, 1),
                "first_rent_to_last_destroy_s": round(deletes[-1].time - rents[0].time, 1)
                if rents and deletes
                else None,
                "api_calls": len(requests),
                "api_calls_per_min": round(len(requests) / span, 1) if span else None,
                "api_calls_by_endpoint": dict(sorted(per_endpoint.items())),
                "http_429": sum(1 for r in requests if r.status == 429),
                "http_429_by_endpoint": {
                    key: sum(1 for r in requests if r.status == 429 and f"{r.method} {r.template}" == key)
                    for key in per_endpoint
                    if any(r.status == 429 and f"{r.method} {r.template}" == key for r in requests)
                },
                "per_instance_gets": per_endpoint.get("GET /api/v0/instances/{id}/", 0),
                "instance_list_calls": per_endpoint.get("GET /api/v1/instances/", 0),
                "controller_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                "controller_peak_threads": peak_threads,
                "throttle": args.throttle,
                "status_interval_s": args.status_interval,
                "machine": f"{platform.node()} {os.cpu_count()} cores",
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
            }
            print(json.dumps(figures, indent=2))
            if code != 0:
                print(log[-6000:], file=sys.stderr)
            if args.out:
                args.out.write_text(json.dumps(figures, indent=2) + "\n")
            return 0 if code == 0 and live == 0 else 1
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
