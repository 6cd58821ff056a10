"""The `density-engine simulate | models | bench` commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from density_engine.cli import main
from density_engine.engine.chunkio import decode_metadata, read_chunk
from tests.engine.conftest import G1, RB, RH, make_spec


def test_simulate_roundtrip(spec_file, tmp_path: Path) -> None:
    out = tmp_path / "chunks" / "chunk_00000.parquet"
    result = CliRunner().invoke(main, ["simulate", "--spec", str(spec_file()), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = read_chunk(out)
    assert table.num_rows == 6 and table.column("num_paths").to_pylist() == [3000] * 6
    assert decode_metadata(table.schema)["device"].startswith("cpu")
    assert sorted(p.name for p in out.parent.iterdir()) == ["chunk_00000.manifest.json", "chunk_00000.parquet"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [(None, "chunk spec not found"), (make_spec(num_paths=-3), "key 'num_paths'"), ("{", "not valid JSON")],
)
def test_simulate_bad_spec(tmp_path: Path, spec, message: str) -> None:
    path = tmp_path / "spec.json"
    if spec is not None:
        path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(main, ["simulate", "--spec", str(path), "--out", str(out), "--device", "cpu"])
    assert result.exit_code != 0
    assert message in result.output and str(path) in result.output
    assert not out.exists()


def test_models_json_and_text() -> None:
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    described = {m["name"]: m for m in json.loads(result.output)}
    assert list(described) == ["gjrgarch_normalized", "rough_heston", "rough_bergomi"]
    garch = described["gjrgarch_normalized"]
    assert [p["name"] for p in garch["parameters"]] == ["alpha", "gamma", "beta", "eta", "lam", "sigma0_sq"]
    assert garch["settings"] == {}
    assert described["rough_bergomi"]["settings"] == {"dt": 1 / 252, "substeps": 1, "scheme": "hybrid"}
    eta = next(p for p in garch["parameters"] if p["name"] == "eta")
    assert eta["lower"] == 2.0 and eta["lower_open"] and eta["upper"] is None
    text = CliRunner().invoke(main, ["models"])
    assert text.exit_code == 0 and "hurst" in text.output and "(0, 0.5)" in text.output


def test_bench_prints_throughput() -> None:
    args = [
        "bench",
        "--device",
        "cpu",
        "--models",
        "gjrgarch_normalized,rough_bergomi",
        "--paths",
        "2000,4000",
        "--steps",
        "8",
        "--kernels",
        "eager",
        "--quantile-paths",
        "100000",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if not line.startswith(("#", "model"))]
    assert [r[0] for r in rows] == ["gjrgarch_normalized"] * 2 + ["rough_bergomi"] * 2
    assert all(r[3] == "eager" and float(r[6]) > 0 for r in rows)
    assert rows[0][8] == rows[1][8]  # kernels per step do not depend on the number of paths
    assert "normals/s" in result.output and "quantile stage" in result.output


def test_console_script_logs_per_parameter_set(tmp_path: Path) -> None:
    """The installed entry point, in a real subprocess (non-interactive: log lines, no progress bar)."""
    spec = tmp_path / "spec.json"
    grid = {"steps": 8, "steps_per_day": 0, "scheme": "hybrid", "richardson": "coupled", "allow_coarse": True}
    spec.write_text(json.dumps(make_spec("rough_bergomi", num_paths=2000, horizons=[1, 4], time_grid=grid)))
    out = tmp_path / "rb.parquet"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "VAST_API_KEY")}
    exe = shutil.which("density-engine") or str(Path(sys.executable).parent / "density-engine")
    cmd = [exe, "simulate", "--spec", str(spec), "--out", str(out)]
    proc = subprocess.run([*cmd, "--device", "auto"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("path-steps/s") == 3  # one line per parameter set + the summary
    table = read_chunk(out)
    assert table.column("steps").to_pylist() == [8] * 4 and table.column("dt").to_pylist() == [1 / 252] * 4


def test_memory_budget_option_parsing() -> None:
    import click

    from density_engine.cli.simulate import _parse_bytes

    assert _parse_bytes("512M") == 512 * 2**20 and _parse_bytes("2G") == 2 * 2**30 and _parse_bytes("1000") == 1000
    assert _parse_bytes("1.5GiB") == int(1.5 * 2**30) and _parse_bytes(None) is None
    for bad in ("lots", "-1G", "0"):
        with pytest.raises(click.BadParameter):
            _parse_bytes(bad)


def _no_engine(*args, **kwargs):
    raise AssertionError("the engine ran although the output cannot be written")


def test_simulate_fails_before_compute_when_the_output_cannot_be_written(
    spec_file, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output folder that cannot be created (a file is in the way: root ignores permission bits) and a file system
    without room for the chunk both fail in one line, before anything is simulated."""
    import density_engine.atomic
    import density_engine.cli.simulate

    monkeypatch.setattr(density_engine.cli.simulate, "run_engine", _no_engine)
    blocker = tmp_path / "results"
    blocker.write_text("a file where the chunk folder should be")
    out = blocker / "chunks" / "chunk_00000.parquet"
    result = CliRunner().invoke(main, ["simulate", "--spec", str(spec_file()), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {out.parent}: cannot create the output folder (Not a directory); nothing was simulated"
    ]

    # a spec of 4e9 paths (made by hand, not by the workflow's checked config; the most a spec may hold, 32-bit path
    # counters, is 4,294,967,232) would need 162 GB (8e9 kept values x 20 bytes, job_memory): one line
    huge = spec_file(make_spec(num_paths=4 * 10**9, horizons=[1, 5]), name="huge.json")
    out = tmp_path / "chunks" / "chunk_00000.parquet"
    result = CliRunner().invoke(main, ["simulate", "--spec", str(huge), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {huge}: the chunk needs ~162.0 GB of memory (4,000,000,000 paths x 2 ")
    assert result.output.strip().endswith("; nothing was simulated") and len(result.output.strip().splitlines()) == 1

    class Usage:
        free = 10_000

    monkeypatch.setattr(density_engine.atomic.shutil, "disk_usage", lambda folder: Usage)
    out = tmp_path / "chunks" / "chunk_00000.parquet"
    result = CliRunner().invoke(main, ["simulate", "--spec", str(spec_file()), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {out.parent}: 0.0 MB free, writing chunk_00000.parquet needs about 1.1 MB; nothing was simulated"
    ]
    assert not out.exists()


def test_simulate_one_prints_moments_and_quantiles(tmp_path: Path) -> None:
    args = ["simulate-one", "--model", "gjrgarch_normalized", "--paths", "4000", "--horizons", "1,5", "--seed", "3"]
    args += [f"--param={name}={value}" for name, value in G1.items()] + ["--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("gjrgarch_normalized (alpha=0.05, gamma=0.1, beta=0.85, eta=6, lam=-0.2, sigma0_sq=1.5)")
    assert lines[1].split()[:5] == ["horizon", "mean", "std", "skew", "kurt"] and "q0.499" in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["1", "5"]
    # the same numbers as the workflow's chunk of this parameter set (param_id 0, seed 3)
    out = tmp_path / "one.parquet"
    data = CliRunner().invoke(main, [*args, "--json", "--num-quantiles", "64", "--out", str(out)])
    assert data.exit_code == 0, data.output
    record = json.loads(data.output)
    assert [h["horizon"] for h in record["horizons"]] == [1, 5] and len(record["horizons"][0]["quantiles"]) == 64
    table = read_chunk(out)  # written like a chunk, with its manifest
    assert table.column("std").to_pylist() == [h["std"] for h in record["horizons"]]
    assert (tmp_path / "one.manifest.json").is_file()
    spec = make_spec(num_paths=4000, seed=3, horizons=[1, 5], parameter_sets=[{"param_id": 0, "params": G1}])
    from density_engine.engine.chunkio import parse_spec
    from density_engine.engine.runner import run_chunk

    assert (
        run_chunk(parse_spec(spec), device="cpu").table.column("mean").to_pylist() == table.column("mean").to_pylist()
    )


def test_simulate_one_time_grid_options(tmp_path: Path) -> None:
    """--steps/--richardson set the rough models' time_grid (coarse grids allowed: it is a one-off look); a
    discrete-time model refuses them naming the option."""
    args = ["simulate-one", "--model", "rough_bergomi", "--paths", "400", "--horizons", "1,2", "--device", "cpu"]
    args += [f"--param={name}={value}" for name, value in RB.items()]
    result = CliRunner().invoke(main, [*args, "--steps", "8", "--scheme", "hybrid", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)  # the hybrid scheme's default Richardson
    assert record["time_grid"]["steps"] == 8 and record["time_grid"]["richardson"] == "coupled"
    assert record["time_grid"]["scheme"] == "hybrid"
    default = json.loads(CliRunner().invoke(main, [*args, "--steps", "8", "--json"]).output)
    assert (default["time_grid"]["scheme"], default["time_grid"]["richardson"]) == ("cell", "none")
    mixed = CliRunner().invoke(main, [*args, "--steps", "8", "--richardson", "coupled"])
    assert mixed.exit_code != 0 and "richardson: 'coupled' is not used with scheme cell" in mixed.output
    garch = ["simulate-one", "--model", "gjrgarch_normalized", "--horizons", "1", "--steps", "8"]
    refused = CliRunner().invoke(main, [*garch, *(f"--param={k}={v}" for k, v in G1.items())])
    assert refused.exit_code != 0 and "--steps" in refused.output and "discrete-time model" in refused.output


def test_simulate_one_names_a_bad_parameter() -> None:
    args = ["simulate-one", "--model", "gjrgarch_normalized", "--horizons", "1", "--paths", "100"]
    params = {**G1, "beta": 0.99}  # persistence >= 1
    result = CliRunner().invoke(main, [*args, *(f"--param={k}={v}" for k, v in params.items())])
    assert result.exit_code == 1
    assert result.output.startswith("Error: simulate-one: --param: gjrgarch_normalized: persistence")
    assert len(result.output.strip().splitlines()) == 1
    missing = CliRunner().invoke(main, [*args, "--param", "alpha=0.05"])
    assert (
        missing.exit_code == 1 and "missing parameter(s) ['gamma', 'beta', 'eta', 'lam', 'sigma0_sq']" in missing.output
    )


@pytest.mark.parametrize("model", ["gjrgarch_normalized", "rough_bergomi", "rough_heston"])
def test_progress_reaches_the_specs_path_steps(model: str) -> None:
    """The engine's progress callback adds up to the chunk's path-steps, the total of simulate's progress bar: every
    run of the policy's plan (rough Heston: independent runs of different paths; rough Bergomi: nested grids; both
    with a shared per-day run here) for every parameter set."""
    from density_engine.cli.simulate import run_engine
    from density_engine.engine.chunkio import parse_spec

    grid = None if model == "gjrgarch_normalized" else {"steps": 4, "steps_per_day": 2, "allow_coarse": True}
    sets = [{"param_id": 1, "params": RH}, {"param_id": 2, "params": RH}] if model == "rough_heston" else None
    spec = parse_spec(make_spec(model, sets, horizons=[1, 2, 5], time_grid=grid, num_paths=1000), "spec.json")
    done: list[int] = []
    run_engine(spec, device="cpu", progress=done.append)
    assert sum(done) == spec.path_steps() > 0
    if grid is not None:
        assert spec.path_steps() > 2 * spec.num_paths * 5 * 2  # more than one grid of 2 steps a day per set
