"""Run size from the config (density_engine.workflow.estimate): the estimate's numbers and JSON structure, the memory
table against the engine, and the run-size checks that stop impossible or absurd configs at load with one line."""

from __future__ import annotations

import copy
import json
import math
import subprocess

import pytest
import yaml

from density_engine.workflow.config import ConfigError, apply_defaults, validate_config
from density_engine.workflow.estimate import (
    MAX_CHUNKS,
    SetWork,
    _block_bytes_per_path,
    estimate_run,
    job_memory,
    set_work,
    throughput_table,
)

from .conftest import REPO_ROOT, TINY_CONFIG

SCHEMA = REPO_ROOT / "workflow/schemas/config.schema.yaml"
GARCH = "gjrgarch_normalized"


def _validate(config: dict) -> dict:
    return validate_config(config, SCHEMA, base_dir=REPO_ROOT)


def test_estimate_counts_and_hours() -> None:
    run = estimate_run(apply_defaults(TINY_CONFIG), REPO_ROOT)
    garch, heston = run.models
    # GARCH: 4 sets in chunks of 2, 4000 paths, horizons 1 and 3 (fine steps 3); rough Heston: 2 sets, horizons 2 and
    # 5 each on its own grids of 16 and 8 steps (time_grid steps 16, Richardson of independent runs of 5.41 and 3.83 x
    # 4000 paths, rounded up)
    assert (garch.parameter_sets, garch.chunks, garch.fine_steps) == (4, 2, 3)
    assert garch.path_steps == 4 * 4000 * 3 and garch.path_steps_per_chunk == 2 * 4000 * 3
    per_horizon = math.ceil((4 + math.sqrt(2)) * 4000) * 16 + math.ceil((1 + 2 * math.sqrt(2)) * 4000) * 8
    assert (heston.chunks, heston.fine_steps, heston.path_steps) == (1, 16, 2 * 2 * per_horizon)
    assert heston.time_grid == "16+0/day,independent,5.414:3.828" and garch.time_grid == "exact"
    table = throughput_table()
    rate = table["cpu"]["path_steps_per_s"][GARCH]
    summary = table["cpu"]["summary_s_per_path_horizon"] * 4000 * 2  # per parameter set: 2 horizons
    assert garch.cpu.hours == pytest.approx(4 * (4000 * 3 / rate + summary) / 3600)
    assert garch.cpu.minutes_per_chunk == pytest.approx(2 * (4000 * 3 / rate + summary) / 60)
    assert run.chunks == 3 and run.path_steps == garch.path_steps + heston.path_steps
    assert run.gpu_hours()["H100"] < run.gpu_hours()["RTX_4090"] < run.cpu_hours


def test_estimate_json_structure() -> None:
    """The documented --json structure (docs/estimate.md): cost tools build on these keys."""
    result = subprocess.run(
        ["density-engine", "estimate", "--configfile", "config/production.yaml", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(result.stdout)
    assert set(data) == {"estimate_version", "device", "resources", "models", "total", "throughput"}
    assert data["estimate_version"] == 1 and data["resources"] == {"mem_mb": 16000, "runtime_min": 60, "threads": 1}
    gpus = {"RTX_4090", "A100", "H100"}
    model_keys = {
        "parameter_sets", "chunk_size", "chunks", "num_paths", "num_horizons", "max_horizon", "time_grid",
        "fine_steps", "path_steps", "path_steps_per_chunk", "memory_mb_per_chunk", "cpu", "gpus",
    }  # fmt: skip
    production = yaml.safe_load((REPO_ROOT / "config/production.yaml").read_text())
    for name, model in data["models"].items():
        assert set(model) == model_keys
        assert model["parameter_sets"] == production["models"][name]["n_samples"]
        assert set(model["memory_mb_per_chunk"]) == {"cpu_job", "gpu_job_host", "gpu"}
        assert set(model["cpu"]) == set(model["gpus"]["H100"]) == {"path_steps_per_s", "minutes_per_chunk", "hours"}
        assert set(model["gpus"]) == gpus
    assert data["total"]["chunks"] == sum(m["chunks"] for m in data["models"].values()) == 1024
    assert data["total"]["gpu_hours"]["A100"] == pytest.approx(
        sum(m["gpus"]["A100"]["hours"] for m in data["models"].values())
    )
    assert data["throughput"]["cpu"]["measured"] is True
    assert all(g["measured"] is False and "ESTIMATED" in g["source"] for g in data["throughput"]["gpus"].values())


def test_memory_table_matches_the_engine() -> None:
    """throughput.json's memory model (read without torch at config time) must agree with the engine's own block
    budget, path alignment, per-path bytes (each model's step kernel) and block plan."""
    import torch

    from density_engine.engine import paths
    from density_engine.models import get_model_class

    memory = throughput_table()["memory"]
    assert memory["block_budget_bytes"] == paths.DEFAULT_MEMORY_BUDGET_BYTES
    assert memory["path_align"] == paths.PATH_ALIGN
    params = {
        GARCH: {"alpha": 0.05, "gamma": 0.1, "beta": 0.85, "eta": 6.0, "lam": -0.2, "sigma0_sq": 1.0},
        "rough_heston": {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02},
        "rough_bergomi": {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.05},
    }
    for name, values in params.items():
        kernel = paths.load_kernel(get_model_class(name)(**values))
        for steps in (1, 16, 33, 252, 1008):
            per_path = paths.bytes_per_path(kernel, steps, 1, torch.float32)
            assert _block_bytes_per_path(name, steps) == per_path, (name, steps)
            for num_paths in (100, 10**6, 10**8):
                for device in ("cpu", "cuda"):
                    [(start, stop), *_] = paths.plan_blocks(num_paths, per_path, memory["block_budget_bytes"][device])
                    block = -(-(stop - start) // paths.PATH_ALIGN) * paths.PATH_ALIGN  # the engine pads the block
                    work = SetWork(num_paths * steps, num_paths, steps, num_paths, num_paths, 0)
                    job = job_memory(name, work)
                    kept = num_paths * (memory["kept_bytes_per_path_horizon"] + memory["summary_bytes_per_path"])
                    expected = (kept + block * per_path) / 1e6
                    got = job.gpu if device == "cuda" else job.cpu_job - memory["process_mb"]["cpu"]
                    assert got == pytest.approx(expected), (name, steps, num_paths, device)


def test_job_memory_grows_with_paths_and_horizons() -> None:
    """Process + the values kept at every horizon of a discrete-time model (4 B each) + their float64 copies in the
    quantile/moment step (16 B per value) + one compute block of 328 B per GARCH path (CPU: 4,910,400 paths fill the
    1.5 GiB budget; CUDA: up to 6 GiB). A rough model keeps one horizon's runs at a time."""
    horizons = [1, 2, 5, 10, 21, 42, 63, 126, 252]
    memory = job_memory(GARCH, set_work(GARCH, 10_000_000, horizons, None))
    assert memory.cpu_job == pytest.approx(400 + (10_000_000 * 9 * (4 + 16) + 328 * 4_910_400) / 1e6)
    assert memory.gpu == pytest.approx((10_000_000 * 9 * (4 + 16) + 328 * 10_000_000) / 1e6)  # under the budget
    big = job_memory(GARCH, set_work(GARCH, 10**8, horizons, None))
    assert big.gpu == pytest.approx((10**8 * 9 * 20 + 328 * 19_641_600) / 1e6)  # block at the budget
    # rough Heston at its default policy: each horizon's two runs (5.41 and 3.83 x the paths) are kept, one horizon
    # at a time, so more horizons do not add kept values
    from density_engine.models import get_model_class

    grid = get_model_class("rough_heston").time_grid_policy().to_dict()
    one, nine = (set_work("rough_heston", 10**6, hs, grid) for hs in ([252], horizons))
    assert (
        one.kept_values
        == nine.kept_values
        == math.ceil((4 + math.sqrt(2)) * 10**6) + math.ceil((1 + 2 * math.sqrt(2)) * 10**6)
    )
    assert job_memory("rough_heston", nine).cpu_job == job_memory("rough_heston", one).cpu_job
    # rough Bergomi: 126 and 252 days on the per-day grid, whose run returns both horizons' three nested grids at once
    grid = get_model_class("rough_bergomi").time_grid_policy().to_dict()
    short, all_nine = (set_work("rough_bergomi", 10**6, hs, grid) for hs in ([1, 5], horizons))
    assert (short.kept_values, all_nine.kept_values) == (3 * 10**6, 2 * 3 * 10**6)
    assert all_nine.path_steps == 10**6 * (7 * 128 + 504) and all_nine.max_steps == 504


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_paths": 1e12}, "config key models.gjrgarch_normalized.num_paths: a simulate job needs ~40.0 TB"),
        ({"num_paths": 10**10}, "config key models.gjrgarch_normalized.num_paths: a simulate job needs ~402.0 GB"),
        ({"n_samples": 10**9}, "config key models.gjrgarch_normalized.n_samples: 1,000,000,000 parameter sets"),
        (
            {"n_samples": 10**6, "chunk_size": 4},
            f"config key models.gjrgarch_normalized.chunk_size: the run has 250,001 chunk jobs (250,000 of "
            f"gjrgarch_normalized), above the limit of {MAX_CHUNKS:,}",
        ),
        (
            {"num_paths": 10**7, "chunk_size": 2, "horizons": [1, 5040]},  # ~7 min at the CPU table's GJR rate
            "config key models.gjrgarch_normalized.chunk_size: one chunk is 1.01e+11 path-steps (2 sets x 10,000,000 "
            "paths, grids exact), ~",
        ),
    ],
)
def test_absurd_configs_stop_at_load(change: dict, message: str) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"][GARCH].update(change)
    config["resources"] = {"mem_mb": 8000, "runtime": 5}
    if "horizons" not in change:
        config["resources"]["mem_mb"] = 2000
    with pytest.raises(ConfigError) as error:
        _validate(config)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


def test_cuda_memory_is_checked_against_the_largest_gpu() -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config.update(device="cuda", resources={"mem_mb": 4000, "runtime": 600})
    config["models"][GARCH].update(num_paths=4 * 10**9, chunk_size=1, n_samples=1)
    with pytest.raises(ConfigError, match=r"needs ~166\.4 GB of GPU memory .*, above the largest GPU memory of the "):
        _validate(config)
    config["models"][GARCH]["num_paths"] = 10**9  # 46 GB: fits an 80 GiB card
    assert _validate(config)


def test_validate_config_prints_the_run_size(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    result = subprocess.run(
        ["density-engine", "validate-config", str(path), "--base-dir", str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "gjrgarch_normalized: 4 parameter sets in 2 chunks of 2, 4.8e+04 path-steps"
    assert lines[2].startswith("run size: 2 model(s), 3 chunks, 1.92e+06 path-steps; ~")
    assert lines[-1] == "configuration is valid"


def test_bench_figures_are_recorded_in_the_throughput_table(tmp_path) -> None:
    """`density-engine bench --record` writes the CPU entry (per CPU-second) or the GPU type's entry (wall rate) of a
    copy of the table, marked as measured; the estimate then reads those rates."""
    from density_engine.workflow.estimate import THROUGHPUT_FILE, gpu_type, record_throughput

    assert gpu_type("NVIDIA H100 80GB HBM3") == "H100"
    assert gpu_type("NVIDIA GeForce RTX 4090") == "RTX_4090"
    assert gpu_type("NVIDIA H200") == "H200"
    table = tmp_path / "throughput.json"
    table.write_text(THROUGHPUT_FILE.read_text())
    figures = {GARCH: {1000: {"path_steps_per_s": 9e6, "path_steps_per_cpu_s": 8e6}}}
    bench = {"device_type": "cpu", "device": "cpu (test)", "load": 1.0, "models": figures}
    bench["quantile"] = {"quantile_s": 0.5, "paths": 10**7}
    assert record_throughput(bench, "2026-12-02", table) == "cpu"
    cpu = json.loads(table.read_text())["cpu"]
    assert cpu["measured"] and cpu["path_steps_per_s"][GARCH] == 8e6 and cpu["summary_s_per_path_horizon"] == 5e-8
    assert cpu["path_steps_per_s"]["rough_heston"] > 0  # models not benched keep their figures
    gpu = {**bench, "device_type": "cuda", "device": "cuda (NVIDIA H200)"}
    assert record_throughput(gpu, "2026-12-02", table, memory_gib=139.8) == "H200"
    entry = json.loads(table.read_text())["gpus"]["H200"]
    assert entry["path_steps_per_s"] == {GARCH: 9e6} and entry["memory_gib"] == 140 and entry["measured"]
    assert "cuda (NVIDIA H200)" in entry["source"]
