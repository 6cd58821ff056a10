"""The engine's CPU targets (issue 11), measured in one interleaved run and reported as ratios with the load average.

    python benchmarks/targets.py [--paths 1000000] [--steps 252] [--rounds 2] [--skip dryrun,startup,...]

1. models: CPU-seconds of the engine (float32, compiled step kernels, torch threads as given) vs the NumPy peer of the
   same scheme (benchmarks/numpy_peers.py), interleaved per round; target: peer / engine >= 3 for every model;
2. quantiles: the quantile stage (512 order statistics + 4 moments) of paths x 5 horizons vs ``np.sort`` of the same
   array; target <= 1.5;
3. kernels: torch ops and kernels per step and block at 1e5 and 1e6 paths (torch profiler); target: constant;
4. startup: CPU-seconds of ``density-engine simulate`` on a 1000-path, 1-step chunk minus ``python -c "import
   torch"``; target <= 1.5 s;
5. dryrun: CPU-seconds (children) of ``snakemake -n`` for 1,000,000 parameter sets (config/production.yaml with only
   gjrgarch_normalized, chunk_size 100) vs a bare Snakemake fan-out with the same number of jobs; target <= 1.5.

CPU-seconds (user + system, all threads and children) rather than wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy_peers  # noqa: E402


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    from density_engine.engine.runner import cpu_model_name

    return f"{cpu_model_name()}, {os.cpu_count()} CPUs, {platform.python_version()}"


def child_cpu(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> float:
    """CPU-seconds (user + system) of a child process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def models_target(paths: int, steps: int, rounds: int) -> None:
    import torch

    from density_engine.engine.bench import BENCH_PARAMS
    from density_engine.engine.paths import simulate_horizons
    from density_engine.models import get_model_class

    print(f"\n## 1. models: {paths} paths x {steps} steps, float32, torch threads {torch.get_num_threads()}")
    print(f"{'model':<22}{'round':>6}{'engine cpu-s':>14}{'peer cpu-s':>12}{'ratio':>8}  q01/q50/q99 engine | peer")
    for name, params in BENCH_PARAMS.items():
        model = get_model_class(name)(**params)
        start = cpu_now()
        simulate_horizons(model, [steps], 4096, 1, compiled=True)  # compile (or load the compiled kernel)
        warm = cpu_now() - start
        print(f"{name:<22} warm-up (compile) {warm:.1f} cpu-s (in-process; the C++ compiler runs as a child)")
        for r in range(rounds):
            start = cpu_now()
            ours = simulate_horizons(model, [steps], paths, 1, compiled=True)[0].numpy()
            engine = cpu_now() - start
            start = cpu_now()
            peer = numpy_peers.run_peer(name, params, paths, steps, seed=r)
            peer_s = cpu_now() - start
            qs = np.quantile(ours, [0.01, 0.5, 0.99]), np.quantile(peer, [0.01, 0.5, 0.99])
            print(
                f"{name:<22}{r:>6}{engine:>14.2f}{peer_s:>12.2f}{peer_s / engine:>8.2f}  "
                f"{'/'.join(f'{v:.4g}' for v in qs[0])} | {'/'.join(f'{v:.4g}' for v in qs[1])}   ({load()})"
            )
            del ours, peer


def quantile_target(paths: int, rounds: int) -> None:
    import torch

    from density_engine.engine.quantiles import summarize

    print(f"\n## 2. quantile stage: {paths} paths x 5 horizons (float32)")
    samples = torch.randn(5, paths, generator=torch.Generator().manual_seed(0))
    summarize(samples, 512), np.sort(samples.numpy(), axis=1)  # warm-up (allocations)
    for r in range(rounds):
        stage, plain = [], []
        for _ in range(5):  # interleaved; CPU clock ticks are 10 ms, so five of each
            start = cpu_now()
            summarize(samples, 512)
            stage.append(cpu_now() - start)
            start = cpu_now()
            np.sort(samples.numpy(), axis=1)
            plain.append(cpu_now() - start)
        ratio = sum(stage) / sum(plain)
        print(
            f"round {r}: stage {np.median(stage):.3f} cpu-s, np.sort {np.median(plain):.3f} cpu-s (medians of 5), "
            f"ratio of sums {ratio:.2f}   ({load()})"
        )


def kernels_target(steps: int) -> None:
    import torch

    from density_engine.engine.bench import ops_per_step

    print("\n## 3. torch ops and kernels per step and block (torch profiler, compiled step kernels)")
    for name in ("gjrgarch_normalized", "rough_bergomi", "rough_heston"):
        for n in (10**5, 10**6, 10**7):
            r = ops_per_step(name, n, min(steps, 64), torch.device("cpu"), torch.float32, compiled=True)
            print(f"{name:<22}{n:>9} paths: {r['ops_per_step']:.2f} ops/step, {r['kernels_per_step']:.2f} kernels/step,"
                  f" {r['blocks']} block(s)")  # fmt: skip


def startup_target(rounds: int) -> None:
    print("\n## 4. chunk start-up: CPU-s of `density-engine simulate` (1 set, 1000 paths, horizon 1) - import torch")
    exe = str(Path(sys.executable).parent / "density-engine")
    with tempfile.TemporaryDirectory() as tmp:
        for model, params, rough in (
            ("gjrgarch_normalized", {"alpha": 0.05, "gamma": 0.1, "beta": 0.85, "eta": 6.0, "lam": -0.2,
                                     "sigma0_sq": 1.5}, False),
            ("rough_heston", {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02}, True),
        ):  # fmt: skip
            spec = {"spec_version": 1, "model": model, "chunk_id": 0, "seed": 1, "num_paths": 1000,
                    "num_quantiles": 512, "horizons": [1], "dt": 1 / 252 if rough else None, "substeps": 1,
                    "parameter_sets": [{"param_id": 0, "params": params}]}  # fmt: skip
            path = Path(tmp) / f"{model}.json"
            path.write_text(json.dumps(spec))
            for r in range(rounds):
                torch_s = child_cpu([sys.executable, "-c", "import torch"])
                job = child_cpu([exe, "simulate", "--spec", str(path), "--out", str(Path(tmp) / "out.parquet")])
                print(f"{model:<22} round {r}: simulate {job:.2f} cpu-s, import torch {torch_s:.2f}, "
                      f"difference {job - torch_s:.2f}   ({load()})")  # fmt: skip


BARE_SNAKEFILE = """
N = {jobs}
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule make:
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
"""


def dryrun_target(rounds: int) -> None:
    import yaml

    print("\n## 5. dry run of 1,000,000 parameter sets vs a bare Snakemake fan-out with the same number of jobs")
    snakefile = next(p for p in (ROOT / "workflow" / "Snakefile", ROOT / "Snakefile") if p.is_file())
    config = yaml.safe_load((ROOT / "config" / "production.yaml").read_text())
    for name, model_cfg in config["models"].items():
        model_cfg["enabled"] = name == "gjrgarch_normalized"
    config["models"]["gjrgarch_normalized"].update(n_samples=1_000_000, chunk_size=100)
    snakemake = [sys.executable, "-m", "snakemake"]  # this interpreter: the checkout's density_engine
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "prod1m.yaml"
        config_path.write_text(yaml.safe_dump(config))
        ours = [*snakemake, "-n", "--quiet", "rules", "--snakefile", str(snakefile), "--configfile", str(config_path)]
        listing = subprocess.run(ours, cwd=ROOT, capture_output=True, text=True).stdout
        jobs = int(re.search(r"^total\s+(\d+)", listing, re.MULTILINE).group(1))
        bare_dir = Path(tmp) / "bare"
        bare_dir.mkdir()
        (bare_dir / "Snakefile").write_text(BARE_SNAKEFILE.format(jobs=jobs - 1))
        bare = [*snakemake, "-n", "--quiet", "rules", "-c", "1"]
        for r in range(rounds):
            t_ours = child_cpu(ours, cwd=ROOT)
            t_bare = child_cpu(bare, cwd=bare_dir)
            print(f"round {r}: {jobs} jobs: workflow {t_ours:.1f} cpu-s, bare fan-out {t_bare:.1f} cpu-s, "
                  f"ratio {t_ours / t_bare:.2f}   ({load()})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=int, default=10**6)
    parser.add_argument("--steps", type=int, default=252)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip", default="", help="comma-separated: models,quantiles,kernels,startup,dryrun")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}; torch {torch.__version__}; {load()}")
    steps = {
        "models": lambda: models_target(args.paths, args.steps, args.rounds),
        "quantiles": lambda: quantile_target(args.paths, args.rounds),
        "kernels": lambda: kernels_target(args.steps),
        "startup": lambda: startup_target(args.rounds),
        "dryrun": lambda: dryrun_target(args.rounds),
    }
    for name, run in steps.items():
        if name not in skip:
            run()


if __name__ == "__main__":
    main()
