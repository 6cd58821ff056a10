"""Report pieces without a workflow run: figure layout (no overlapping panels, integer chunk axis), benchmark files of
the current chunks only, the cost table from a Vast cost ledger (or a local run), the ignored graph/report files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from density_engine.workflow.report import (
    LOCAL_RUN,
    LedgerError,
    cost_table,
    coverage_figure,
    error_budget_figure,
    error_budget_table,
    fan_figure,
    html_table,
    read_benchmarks,
    runtime_figure,
    validation_figure,
    write_cost_table,
)

from .conftest import REPO_ROOT

matplotlib.use("Agg")


def _validation_table() -> pd.DataFrame:
    """Values like the demo's rough Heston means: long tick labels on the right panel's y axis."""
    exact = [-0.0023, -0.0016, -0.0011, -0.0006, -0.0003, -0.0001]
    return pd.DataFrame(
        {
            "param_id": range(6),
            "horizon": [1, 5, 20, 1, 5, 20],
            "statistic": "mean",
            "simulated": [e * 1.02 for e in exact],
            "exact": exact,
            "std_error": [0.0002] * 6,
            "z": [0.5, -1.0, 0.3, 1.2, -0.4, 0.1],
        }
    )


def test_validation_panels_do_not_overlap() -> None:
    import matplotlib.pyplot as plt

    figure = validation_figure(_validation_table(), "rough_heston")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    left, right = figure.axes
    # everything of the right panel (its y label and tick labels included) lies right of everything of the left one
    assert right.get_tightbbox(renderer).x0 >= left.get_tightbbox(renderer).x1
    assert right.yaxis.label.get_window_extent(renderer).x0 >= left.get_window_extent(renderer).x1
    plt.close(figure)


def _garch_frame(sets: int = 40) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    names = ["alpha", "gamma", "beta", "eta", "lam", "sigma0_sq"]
    values = rng.random((sets, len(names)))
    rows = [
        {"param_id": i, "horizon": h, **dict(zip(names, values[i], strict=True))} for i in range(sets) for h in (1, 5)
    ]
    quantiles = np.sort(rng.standard_normal((len(rows), 64)), axis=1)
    return pd.DataFrame(rows), quantiles, names


def test_coverage_title_clears_the_panels() -> None:
    """The title (with the fixed parameters) sits above every panel, tick labels included (it overlapped before)."""
    import matplotlib.pyplot as plt

    frame, _, names = _garch_frame()
    frame["lam"] = -0.1  # a fixed parameter goes into the title
    figure = coverage_figure(frame, names, "gjrgarch_normalized")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    title = figure._suptitle.get_window_extent(renderer)
    assert "fixed: lam=-0.1" in figure._suptitle.get_text()
    assert all(title.y0 >= ax.get_tightbbox(renderer).y1 for ax in figure.axes)
    plt.close(figure)


def test_fan_chart_states_the_garch_unit() -> None:
    import matplotlib.pyplot as plt

    frame, quantiles, names = _garch_frame(4)
    figure = fan_figure(frame, quantiles, names, "gjrgarch_normalized")
    assert figure.axes[0].get_ylabel() == "cumulative return (unconditional sd units)"
    assert "multiply by the asset's daily volatility" in figure._suptitle.get_text()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    assert all(figure._suptitle.get_window_extent(renderer).y0 >= ax.get_tightbbox(renderer).y1 for ax in figure.axes)
    plt.close(figure)
    rough = fan_figure(frame.assign(), quantiles, names, "rough_heston")
    assert rough.axes[0].get_ylabel() == "cumulative log-return log(S_h/S_0)"
    plt.close(rough)


def test_html_table_escapes_and_flags() -> None:
    table = pd.DataFrame({"name": ["<a>", "b"], "z": [1.5, -4.5]})
    page = html_table(table, "t & u", flag={"z": lambda z: abs(z) > 4})
    assert "<caption>t &amp; u (2 rows)</caption>" in page and "&lt;a&gt;" in page
    assert '<td class="flag">-4.5</td>' in page and "<td>1.5</td>" in page


def test_runtime_chunk_axis_has_integer_ticks() -> None:
    import matplotlib.pyplot as plt

    bench = pd.DataFrame({"chunk": [0, 1], "seconds": [1.8, 1.7], "max_rss_mb": [300.0, 310.0]})
    figure = runtime_figure(bench, "rough_heston")
    figure.canvas.draw()
    bar = figure.axes[0]
    low, high = bar.get_xlim()
    ticks = [t for t in bar.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    plt.close(figure)


def test_error_budget_per_horizon() -> None:
    """The error-budget figure's table: per horizon the fine steps, max and median over rows of both error columns,
    the rows above the 1e-3 goal; both panels on log axes; an all-zero discretisation column (GJR) is said in words."""
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(
        {
            "horizon": [1, 1, 1, 20, 20, 20],
            "steps": [128, 128, 128, 128, 128, 128],
            "mc_se_cdf_max": [1e-4, 2e-4, 3e-4, 1e-4, 1e-4, 4e-4],
            "disc_err_cdf_max": [5e-4, 2e-3, 1e-4, 3e-3, 4e-3, 1e-5],
        }
    )
    table = error_budget_table(frame)
    assert table["horizon"].tolist() == [1, 20] and table["steps"].tolist() == [128, 128]
    assert table["max_mc_se_cdf_max"].tolist() == [3e-4, 4e-4] and table["median_mc_se_cdf_max"].tolist() == [
        2e-4,
        1e-4,
    ]
    assert table["max_disc_err_cdf_max"].tolist() == [2e-3, 4e-3]
    assert table["median_disc_err_cdf_max"].tolist() == [5e-4, 3e-3]
    assert table["rows_above_goal"].tolist() == [1, 2] and table["rows"].tolist() == [3, 3]
    figure = error_budget_figure(table, "rough_bergomi")
    assert [ax.get_yscale() for ax in figure.axes] == ["log", "log"]
    assert "3 of 6 rows above the 0.001 goal" in figure._suptitle.get_text()
    plt.close(figure)
    exact = error_budget_figure(error_budget_table(frame.assign(disc_err_cdf_max=0.0)), "gjrgarch_normalized")
    assert "0 in every row (exact model)" in [t.get_text() for t in exact.axes[1].texts]
    plt.close(exact)


def test_benchmarks_are_read_for_the_current_chunks_only(tmp_path: Path) -> None:
    header = "s\th:m:s\tmax_rss\n"
    (tmp_path / "chunk_00000.aaaaaaaaaaaaaaaa.tsv").write_text(header + "2.5\t0:00:02\t300\n")
    (tmp_path / "chunk_00000.bbbbbbbbbbbbbbbb.tsv").write_text(header + "99\t0:01:39\t900\n")  # an older config's
    (tmp_path / "chunk_00002.cccccccccccccccc.tsv").write_text(header + "1.5\t0:00:01\t200\n")
    stems = ["chunk_00000.aaaaaaaaaaaaaaaa", "chunk_00001.dddddddddddddddd", "chunk_00002.cccccccccccccccc"]
    bench = read_benchmarks(tmp_path, stems)
    assert bench[["chunk", "seconds", "max_rss_mb"]].values.tolist() == [[0, 2.5, 300], [2, 1.5, 200]]


def test_cost_table_without_a_ledger_is_one_local_row(tmp_path: Path) -> None:
    out = tmp_path / "costs.csv"
    table = write_cost_table(tmp_path / "missing", out)
    assert table.equals(cost_table(None))
    assert pd.read_csv(out)[["run_id", "instance", "cost_usd"]].values.tolist() == [["local", LOCAL_RUN, 0]]


def test_cost_table_of_a_ledger_with_a_live_instance(tmp_path: Path) -> None:
    """A ledger written while an instance was live (no destroyed_at): its hours run to the ledger's written_at."""
    ledger = {
        "run_id": "r1",
        "written_at": 7200.0,
        "final": False,
        "budget_usd": None,
        "total_cost_usd": 0.8,
        "live_instances": 1,
        "instances": [
            {
                "instance_id": 7,
                "machine_id": None,
                "gpu_name": "A100",
                "num_gpus": 2,
                "dph_total": 0.4,
                "label": "density-engine-r1-0",
                "rented_at": 0.0,
                "ready_at": None,
                "destroyed_at": None,
                "end_reason": "",
                "cost_usd": 0.8,
            }
        ],
    }
    path = tmp_path / "ledger" / "r1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(ledger))
    table = write_cost_table(path.parent, tmp_path / "costs.csv")
    assert table["instance"].tolist() == ["7", "total (1 instance(s))"]
    assert table["gpu"].iloc[0] == "A100 x2" and table["rented_at_utc"].iloc[0] == "1970-01-01 00:00:00"
    assert table["hours"].tolist() == pytest.approx([2.0, 2.0])
    assert table["ended_at_utc"].iloc[0] == "" and table["end_reason"].iloc[0] == "live when the ledger was written"
    assert table["end_reason"].iloc[1] == "run in progress at 1970-01-01 02:00:00"  # no budget, not the final ledger


def test_unreadable_ledger_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ledger" / "r2.json"
    path.parent.mkdir()
    path.write_text('{"instances": [{"instance_id": 1}]}')
    with pytest.raises(LedgerError, match=rf"{path}: not a readable Vast cost ledger \(KeyError"):
        write_cost_table(path.parent, tmp_path / "costs.csv")
    path.write_text("{not json")
    with pytest.raises(LedgerError, match=rf"{path}: not a readable Vast cost ledger"):
        write_cost_table(path.parent, tmp_path / "costs.csv")
    assert not (tmp_path / "costs.csv").exists()


@pytest.mark.skipif(shutil.which("git") is None or not (REPO_ROOT / ".git").exists(), reason="needs the git checkout")
def test_graphs_and_report_are_ignored_by_git() -> None:
    for name in ("dag.svg", "rules.svg", "report.html", "results/report/costs.csv"):
        check = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO_ROOT, check=False)
        assert check.returncode == 0, f"{name} is not ignored by .gitignore"
