"""Cost per parameter set of time-grid policies, measured with the production model code on this CPU.

A policy is a list of (horizon in days, fine steps to that horizon). "today" is the production config: one uniform
grid of `substeps` fine steps per day to 252 days, all horizons recorded on it (rough Heston 4/day = 1008 steps,
rough Bergomi 2/day = 504 steps). "per-horizon N" simulates each of the 9 horizons on its own uniform N-step grid
(the production model with dt = horizon and substeps = N, one record step). Costs are process CPU seconds per path
(robust on a shared machine), policies interleaved in rounds; ratios are against "today" of the same round.

    python -m benchmarks.accuracy.cost_bench [--paths 65536] [--rounds 3] [--models rough_heston,rough_bergomi]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from density_engine.engine.paths import simulate_horizons
from density_engine.models import get_model_class

HORIZONS = (1, 2, 5, 10, 21, 42, 63, 126, 252)
YEAR_DAYS = 252.0
PARAMS = {
    "rough_heston": {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02},
    "rough_bergomi": {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2},
}
TODAY_SUBSTEPS = {"rough_heston": 4, "rough_bergomi": 2}
RESULTS = Path(__file__).resolve().parent / "measurements"


def policies(model: str) -> dict[str, list[tuple[int, int]]]:
    sub = TODAY_SUBSTEPS[model]
    out: dict[str, list[tuple[int, int]]] = {"today": [(h, sub * h) for h in HORIZONS]}
    for n in (16, 32, 64, 128, 256, 512):
        out[f"per-horizon {n}"] = [(h, n) for h in HORIZONS]
    for n in (64, 128, 256):
        out[f"per-horizon max({n}, {sub}/day)"] = [(h, max(n, sub * h)) for h in HORIZONS]
    return out


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def run_policy(model: str, policy: list[tuple[int, int]], paths: int, dtype: torch.dtype) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) to simulate the policy's horizons for ``paths`` paths."""
    cls = get_model_class(model)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    if len({steps // h for h, steps in policy if steps % h == 0}) == 1 and all(s % h == 0 for h, s in policy):
        # one grid: every horizon recorded on the same uniform grid (today)
        sub = policy[0][1] // policy[0][0]
        m = cls(device="cpu", seed=1, dtype=dtype, dt=1.0 / YEAR_DAYS, substeps=sub, **PARAMS[model])
        m.reset(paths)
        simulate_horizons(m, [h for h, _ in policy])
    else:
        for h, steps in policy:
            m = cls(device="cpu", seed=1, dtype=dtype, dt=h / YEAR_DAYS, substeps=steps, **PARAMS[model])
            m.reset(paths)
            simulate_horizons(m, [1])
    return cpu_seconds() - cpu0, time.perf_counter() - wall0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, default=65536)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="rough_heston,rough_bergomi")
    parser.add_argument("--only", default="", help="comma-separated policy names (default: all)")
    args = parser.parse_args()
    dtype = torch.float32
    report: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "paths": args.paths,
        "load_before": os.getloadavg(),
        "models": {},
    }
    for model in args.models.split(","):
        pols = policies(model)
        if args.only:
            pols = {k: v for k, v in pols.items() if k in args.only.split(",") or k == "today"}
        run_policy(model, [(1, 4)], 16384, dtype)  # warm-up
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in pols}
        for _ in range(args.rounds):
            for name, pol in pols.items():
                cpu, wall = run_policy(model, pol, args.paths, dtype)
                rows[name].append({"cpu_s": cpu, "wall_s": wall})
                print(f"{model} {name:>28}: cpu {cpu:7.2f} s wall {wall:7.2f} s", flush=True)
        summary = {}
        for name, runs in rows.items():
            ratios = [r["cpu_s"] / t["cpu_s"] for r, t in zip(runs, rows["today"], strict=True)]
            summary[name] = {
                "fine_steps_total": sum(s for _, s in pols[name]) if name != "today" else max(s for _, s in pols[name]),
                "cpu_s_per_path": min(r["cpu_s"] for r in runs) / args.paths,
                "ratio_to_today_median": sorted(ratios)[len(ratios) // 2],
                "ratios": ratios,
            }
        report["models"][model] = summary
    report["load_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("cost_bench.json" if not args.only else "cost_bench_extra.json")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
