"""`density-engine bench --policy`: the cost per parameter set of the per-horizon time-grid policy next to the previous
single grid (issue 9). Figures are not asserted (machine-dependent); the structure and the accounting are."""

from __future__ import annotations

from click.testing import CliRunner

from density_engine.cli import main
from density_engine.engine.bench import PREVIOUS_SUBSTEPS, UNSHARED, policy_cost


def test_policy_cost_reports_both_policies_and_times_the_fourier_column_separately() -> None:
    heston = policy_cost("rough_heston", horizons=(1, 5), num_paths=256, rounds=1)
    (row,) = heston["rounds"]
    assert row["previous_s"] > 0 and row["new_s"] > row["column_s"] > 0
    assert row["ratio"] == row["new_s"] / row["previous_s"]
    assert heston["previous"] == f"one grid of {PREVIOUS_SUBSTEPS['rough_heston']} fine steps a day"
    assert "Richardson 2 q_N - q_N/2 of independent runs" in heston["new"]
    (bergomi,) = policy_cost("rough_bergomi", horizons=(1,), num_paths=256, rounds=1, time_grid={"steps": 32})["rounds"]
    assert bergomi["column_s"] == 0.0  # its column comes from the coupled grids, part of the simulation
    assert UNSHARED not in bergomi["peers"]  # one horizon: nothing shared
    shared = policy_cost("rough_bergomi", horizons=(16, 20), num_paths=256, rounds=1, time_grid={"steps": 32})
    assert shared["peers"][UNSHARED] == UNSHARED and shared["rounds"][0]["peers"][UNSHARED]["s"] > 0


def test_bench_policy_command_prints_one_line_per_model_and_round() -> None:
    result = CliRunner().invoke(
        main, ["bench", "--device", "cpu", "--policy", "--models", "rough_bergomi", "--paths", "64", "--rounds", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "rough_bergomi    round 1: previous" in result.output and "ratio" in result.output
