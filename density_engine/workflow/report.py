"""Report figures of one model: parameter coverage, quantile fan charts, validation against references, error budget,
runtimes.

All figures are PNG (matplotlib, Agg backend) written atomically; the validation table is a CSV. The Snakemake report
rule marks them with ``report(...)`` and captions from ``workflow/report/*.rst``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from density_engine.atomic import atomic_path
from density_engine.engine.chunkio import ERROR_COLUMNS, quantile_levels

MAX_COVERAGE_POINTS = 5_000
FAN_SETS = 4
#: Central intervals drawn in the fan charts (lower, upper quantile levels) and their opacity.
FAN_BANDS = ((0.01, 0.99, 0.15), (0.05, 0.95, 0.25), (0.25, 0.75, 0.4))
#: Fan chart y label and title note per model: GARCH rows are sums of unit-variance returns, not log-returns.
FAN_UNITS = {
    "gjrgarch_normalized": (
        "cumulative return (unconditional sd units)",
        "\n(sum of h returns of unit unconditional variance: multiply by the asset's daily volatility for log-returns)",
    ),
    "rough_heston": ("cumulative log-return log(S_h/S_0)", ""),
    "rough_bergomi": ("cumulative log-return log(S_h/S_0)", ""),
}
MOMENT_AND_META_COLUMNS = {
    "model",
    "param_id",
    "horizon",
    "quantiles",
    "mean",
    "std",
    "skew",
    "kurt",
    "num_paths",
    "seed",
    "dt",
    "steps",
    *ERROR_COLUMNS,
}
#: The accuracy goal drawn in the error-budget figure (sup-CDF discretisation error, issue 9).
DISC_ERROR_GOAL = 1e-3


def load_densities(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Read a merged densities parquet: (rows without quantiles, (rows, Q) quantile array, parameter names)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    quantile_column = table.column("quantiles").combine_chunks()
    width = quantile_column.type.list_size
    quantiles = quantile_column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    frame = table.drop_columns(["quantiles"]).to_pandas()
    parameters = [name for name in table.column_names if name not in MOMENT_AND_META_COLUMNS]
    return frame, quantiles, parameters


def _save(figure: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")


_TABLE_STYLE = (
    "body{font-family:sans-serif;font-size:13px;margin:8px}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    "th{background:#f0f0f0}td.flag{background:#fdd}caption{text-align:left;font-weight:bold;padding:4px 0}"
)


def html_table(frame: pd.DataFrame, title: str, flag: Mapping[str, Any] | None = None) -> str:
    """A self-contained HTML page with ``frame`` as a table (the Snakemake report shows HTML inline). ``flag`` maps a
    column to a predicate; cells where it holds are highlighted."""
    import html

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.6g}"
        return html.escape(str(value))

    rows = []
    for record in frame.to_dict("records"):
        cells = []
        for column in frame.columns:
            value = record[column]
            marked = flag is not None and column in flag and flag[column](value)
            opening = '<td class="flag">' if marked else "<td>"
            cells.append(f"{opening}{cell(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_TABLE_STYLE}</style></head><body><table><caption>{html.escape(title)} ({len(frame)} rows)</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )


def _write_html(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def coverage_figure(frame: pd.DataFrame, parameters: list[str], model: str) -> Any:
    """Pairwise scatter of the ranged parameters (histograms on the diagonal); fixed ones go in the title, which the
    constrained layout keeps above the panels."""
    import matplotlib.pyplot as plt

    sets = frame.drop_duplicates("param_id")[parameters]
    ranged = [p for p in parameters if sets[p].nunique() > 1]
    fixed = {p: sets[p].iloc[0] for p in parameters if p not in ranged}
    if len(sets) > MAX_COVERAGE_POINTS:
        sets = sets.sample(MAX_COVERAGE_POINTS, random_state=0)
    dims = max(len(ranged), 1)
    figure, axes = plt.subplots(
        dims, dims, figsize=(2.2 * dims + 1, 2.2 * dims + 1.4), squeeze=False, layout="constrained"
    )
    if not ranged:
        axes[0][0].text(0.5, 0.5, "all parameters fixed", ha="center", va="center")
    for i, row_name in enumerate(ranged):
        for j, col_name in enumerate(ranged):
            ax = axes[i][j]
            if i == j:
                ax.hist(sets[col_name], bins=min(30, max(5, len(sets) // 4)), color="tab:blue", alpha=0.7)
            else:
                ax.scatter(sets[col_name], sets[row_name], s=6, alpha=0.6)
            if i == dims - 1:
                ax.set_xlabel(col_name)
            if j == 0:
                ax.set_ylabel(row_name)
    fixed_text = ", ".join(f"{k}={v:g}" for k, v in fixed.items())
    figure.suptitle(
        f"{model}: {len(frame.param_id.unique())} parameter sets" + (f" (fixed: {fixed_text})" * bool(fixed))
    )
    return figure


def plot_coverage(frame: pd.DataFrame, parameters: list[str], model: str, out: Path) -> None:
    """Write :func:`coverage_figure` as PNG."""
    import matplotlib.pyplot as plt

    figure = coverage_figure(frame, parameters, model)
    _save(figure, out)
    plt.close(figure)


def fan_figure(frame: pd.DataFrame, quantiles: np.ndarray, parameters: list[str], model: str) -> Any:
    """Fan charts (central 98/90/50% bands and the median) across horizons for the first few parameter sets; the y
    label and title give the unit (GARCH: sums of unit-variance returns, :data:`FAN_UNITS`)."""
    import matplotlib.pyplot as plt

    num_levels = quantiles.shape[1]
    levels = quantile_levels(num_levels)

    def column(p: float) -> int:
        return int(np.argmin(np.abs(levels - p)))

    param_ids = list(pd.unique(frame["param_id"]))[:FAN_SETS]
    figure, axes = plt.subplots(
        1, len(param_ids), figsize=(4.2 * len(param_ids), 4.0), squeeze=False, layout="constrained"
    )
    ylabel, unit_note = FAN_UNITS.get(model, ("cumulative log-return", ""))
    for ax, param_id in zip(axes[0], param_ids, strict=True):
        rows = np.flatnonzero(frame["param_id"].to_numpy() == param_id)
        rows = rows[np.argsort(frame["horizon"].to_numpy()[rows])]
        horizons = frame["horizon"].to_numpy()[rows]
        for low, high, alpha in FAN_BANDS:
            ax.fill_between(
                horizons,
                quantiles[rows, column(low)],
                quantiles[rows, column(high)],
                alpha=alpha,
                color="tab:blue",
                label=f"{low:.0%}-{high:.0%}",
                linewidth=0,
            )
        ax.plot(horizons, quantiles[rows, column(0.5)], color="tab:blue", marker="o", label="median")
        values = frame.iloc[rows[0]]
        labels = [f"{p}={values[p]:.3g}" for p in parameters]
        lines = [", ".join(labels[i : i + 3]) for i in range(0, len(labels), 3)]
        ax.set_title("\n".join([f"param_id {param_id}", *lines]), fontsize=8)
        ax.set_xlabel("horizon (model steps)")
        ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=7, loc="lower left")
    figure.suptitle(f"{model}: quantile fan charts{unit_note}")
    return figure


def plot_fan(frame: pd.DataFrame, quantiles: np.ndarray, parameters: list[str], model: str, out: Path) -> None:
    """Write :func:`fan_figure` as PNG."""
    import matplotlib.pyplot as plt

    figure = fan_figure(frame, quantiles, parameters, model)
    _save(figure, out)
    plt.close(figure)


def validation_table(frame: pd.DataFrame, parameters: list[str], model: str) -> pd.DataFrame:
    """One row per (param_id, horizon) with a reference: simulated vs exact statistic, MC standard error, z-score."""
    from density_engine.workflow.references import reference

    rows = []
    for record in frame.to_dict("records"):
        dt = record.get("dt")
        dt = None if dt is None or (isinstance(dt, float) and math.isnan(dt)) else float(dt)
        result = reference(
            model,
            {p: float(record[p]) for p in parameters},
            int(record["horizon"]),
            dt,
            record,
            int(record["num_paths"]),
        )
        if result is not None:
            rows.append({"param_id": int(record["param_id"]), "horizon": int(record["horizon"]), **result})
    columns = ["param_id", "horizon", "statistic", "simulated", "exact", "std_error", "z"]
    return pd.DataFrame(rows, columns=columns)


def validation_figure(table: pd.DataFrame, model: str) -> Any:
    """z-scores (simulated - exact) / standard error per horizon with +-4 guide lines (left), simulated vs exact with
    +-2 s.e. bars (right). Constrained layout keeps the right panel's labels clear of the left panel."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (ax_z, ax_xy) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    if table.empty:
        for ax in (ax_z, ax_xy):
            ax.text(0.5, 0.5, "no reference available", ha="center", va="center")
    else:
        statistic = table["statistic"].iloc[0]
        ax_z.scatter(table["horizon"], table["z"], s=14)
        for level in (-4, 4):
            ax_z.axhline(level, color="grey", linestyle="--", linewidth=1)
        ax_z.axhline(0, color="black", linewidth=0.8)
        ax_z.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_z.set_xlabel("horizon (model steps)")
        ax_z.set_ylabel(f"z-score of the {statistic}")
        ax_z.set_title(f"max |z| = {np.nanmax(np.abs(table['z'])):.2f} over {len(table)} rows")
        ax_xy.errorbar(table["exact"], table["simulated"], yerr=2 * table["std_error"], fmt="o", markersize=3)
        low, high = float(table[["exact", "simulated"]].min().min()), float(table[["exact", "simulated"]].max().max())
        ax_xy.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
        ax_xy.set_xlabel(f"exact {statistic}")
        ax_xy.set_ylabel(f"simulated {statistic} (+-2 s.e.)")
    figure.suptitle(f"{model}: simulation vs reference")
    return figure


def plot_validation(table: pd.DataFrame, model: str, out: Path) -> None:
    """Write :func:`validation_figure` as PNG."""
    import matplotlib.pyplot as plt

    figure = validation_figure(table, model)
    _save(figure, out)
    plt.close(figure)


def error_budget_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per horizon: the fine steps and the max and median over rows of ``mc_se_cdf_max`` and ``disc_err_cdf_max``."""
    grouped = frame.groupby("horizon")
    table = pd.DataFrame({"steps": grouped["steps"].max()})
    for column in ("mc_se_cdf_max", "disc_err_cdf_max"):
        table[f"max_{column}"] = grouped[column].max()
        table[f"median_{column}"] = grouped[column].median()
    table["rows_above_goal"] = grouped["disc_err_cdf_max"].apply(lambda v: int((v > DISC_ERROR_GOAL).sum()))
    table["rows"] = grouped.size()
    return table.reset_index()


def error_budget_figure(table: pd.DataFrame, model: str) -> Any:
    """Max and median over rows of the Monte Carlo (left) and discretisation (right) error columns per horizon, in CDF
    units on log axes, with the 1e-3 goal; an all-zero discretisation column (an exact model) is said in words."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained", sharey=True)
    panels = (("mc_se_cdf_max", "Monte Carlo standard error"), ("disc_err_cdf_max", "discretisation error"))
    for ax, (column, label) in zip(axes, panels, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(DISC_ERROR_GOAL, color="grey", linestyle=":", label=f"goal {DISC_ERROR_GOAL:g}")
        for stat, style in (("max", "o-"), ("median", "s--")):
            values = table[f"{stat}_{column}"]
            positive = values > 0
            if positive.any():
                ax.plot(table["horizon"][positive], values[positive], style, label=f"{stat} over rows")
        if not (table[f"max_{column}"] > 0).any():
            ax.text(0.5, 0.5, "0 in every row (exact model)", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("horizon (model steps)")
        ax.set_title(f"{label} (`{column}`)", fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("CDF units |F(q_p) - p|")
    above = int(table["rows_above_goal"].sum())
    figure.suptitle(
        f"{model}: error budget per horizon; {above} of {int(table['rows'].sum())} rows above the "
        f"{DISC_ERROR_GOAL:g} goal in discretisation error"
    )
    return figure


def plot_error_budget(frame: pd.DataFrame, model: str, out: Path) -> pd.DataFrame:
    """Write :func:`error_budget_figure` as PNG; return its table."""
    import matplotlib.pyplot as plt

    table = error_budget_table(frame)
    figure = error_budget_figure(table, model)
    _save(figure, out)
    plt.close(figure)
    return table


def read_benchmarks(benchmarks_dir: str | Path, chunk_stems: Sequence[str]) -> pd.DataFrame:
    """Per-chunk runtime (seconds) and peak memory from Snakemake's benchmark TSVs ``<chunk stem>.tsv`` of the current
    chunks (``ModelPlan.chunk_stems``; benchmarks of older configs are not read, missing files are skipped)."""
    rows = []
    for chunk, stem in enumerate(chunk_stems):
        path = Path(benchmarks_dir) / f"{stem}.tsv"
        if not path.is_file():
            continue
        bench = pd.read_csv(path, sep="\t")
        if bench.empty:
            continue
        max_rss = pd.to_numeric(bench.get("max_rss", pd.Series([np.nan])), errors="coerce").iloc[-1]
        rows.append({"chunk": chunk, "seconds": float(bench["s"].iloc[-1]), "max_rss_mb": max_rss})
    return pd.DataFrame(rows, columns=["chunk", "seconds", "max_rss_mb"])


def runtime_figure(bench: pd.DataFrame, model: str) -> Any:
    """Bar chart of seconds per chunk (integer chunk numbers on the x axis) and a histogram of the same."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (ax_bar, ax_hist) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    if bench.empty:
        for ax in (ax_bar, ax_hist):
            ax.text(0.5, 0.5, "no benchmark files", ha="center", va="center")
        title = f"{model}: no chunk runtimes recorded"
    else:
        ax_bar.bar(bench["chunk"], bench["seconds"], width=0.8)
        ax_bar.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_bar.set_xlabel("chunk")
        ax_bar.set_ylabel("wall-clock seconds")
        ax_hist.hist(bench["seconds"], bins=min(40, max(3, len(bench) // 3)))
        ax_hist.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_hist.set_xlabel("wall-clock seconds per chunk")
        ax_hist.set_ylabel("chunks")
        title = (
            f"{model}: {len(bench)} chunks, total {bench['seconds'].sum():.1f} s, "
            f"mean {bench['seconds'].mean():.2f} s per chunk"
        )
    figure.suptitle(title)
    return figure


def plot_runtime(bench: pd.DataFrame, model: str, out: Path) -> None:
    """Write :func:`runtime_figure` as PNG."""
    import matplotlib.pyplot as plt

    figure = runtime_figure(bench, model)
    _save(figure, out)
    plt.close(figure)


def write_report_figures(
    model: str, densities: str | Path, benchmarks_dir: str | Path, chunk_stems: Sequence[str], out_dir: str | Path
) -> dict[str, Any]:
    """Write coverage.png, fan.png, validation.png, validation.csv (+ .html), errors.png and runtime.png; return a
    summary."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    frame, quantiles, parameters = load_densities(densities)
    plot_coverage(frame, parameters, model, out_dir / "coverage.png")
    plot_fan(frame, quantiles, parameters, model, out_dir / "fan.png")
    table = validation_table(frame, parameters, model)
    _write_csv(table, out_dir / "validation.csv")
    _write_html(
        html_table(table, f"{model}: simulation vs reference", flag={"z": lambda z: abs(z) > 4}),
        out_dir / "validation.html",
    )
    plot_validation(table, model, out_dir / "validation.png")
    budget = plot_error_budget(frame, model, out_dir / "errors.png")
    bench = read_benchmarks(benchmarks_dir, chunk_stems)
    plot_runtime(bench, model, out_dir / "runtime.png")
    summary = {
        "model": model,
        "parameter_sets": int(frame["param_id"].nunique()),
        "rows": len(frame),
        "validation_rows": len(table),
        "max_abs_z": float(np.nanmax(np.abs(table["z"]))) if len(table) else None,
        "max_mc_se_cdf": float(budget["max_mc_se_cdf_max"].max()),
        "max_disc_err_cdf": float(budget["max_disc_err_cdf_max"].max()),
        "chunks_benchmarked": len(bench),
        "total_chunk_seconds": float(bench["seconds"].sum()) if len(bench) else 0.0,
    }
    return json.loads(json.dumps(summary))


# ---- costs of rented hosts ---------------------------------------------------------------------------------------

COST_COLUMNS = [
    "run_id",
    "instance",
    "gpu",
    "usd_per_hour",
    "rented_at_utc",
    "ended_at_utc",
    "hours",
    "idle_hours",
    "cost_usd",
    "end_reason",
]
LOCAL_RUN = "local run: no rented hosts"


class LedgerError(ValueError):
    """A cost ledger that cannot be read; the message names the file."""


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(float(timestamp), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _run_rows(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per instance of one run's ledger and the run's total row."""
    written_at = ledger.get("written_at")
    run_id = ledger.get("run_id", "")
    rows = []
    for entry in ledger.get("instances", []):
        ended = entry.get("destroyed_at")
        end = ended if ended is not None else written_at
        hours = (float(end) - float(entry["rented_at"])) / 3600.0 if end is not None else float("nan")
        reason = entry.get("end_reason") or "live when the ledger was written"
        if entry.get("adopted_from"):
            reason += f" (adopted from run {entry['adopted_from']})"
        rows.append(
            {
                "run_id": run_id,
                "instance": str(entry["instance_id"]),
                "gpu": f"{entry.get('gpu_name', '')} x{entry.get('num_gpus', 1)}",
                "usd_per_hour": float(entry["dph_total"]),
                "rented_at_utc": _utc(entry["rented_at"]),
                "ended_at_utc": _utc(ended),
                "hours": hours,
                "idle_hours": float(entry.get("idle_seconds") or 0.0) / 3600.0,
                "cost_usd": float(entry["cost_usd"]),
                "end_reason": reason,
            }
        )
    budget = ledger.get("budget_usd")
    notes = [f"budget ${budget:g}"] if budget is not None else []
    if ledger.get("preemptions"):
        notes.append(f"{ledger['preemptions']} preemption(s)")
    if ledger.get("final") is False:  # written during the run: live instances are costed up to written_at
        notes.append(f"run in progress at {_utc(written_at)}")
    elif ledger.get("end_reason"):
        notes.append(str(ledger["end_reason"]))
    rows.append(
        {
            "run_id": run_id,
            "instance": f"total ({len(rows)} instance(s))",
            "hours": sum(r["hours"] for r in rows),
            "idle_hours": sum(r["idle_hours"] for r in rows),
            "cost_usd": float(ledger.get("total_cost_usd", sum(r["cost_usd"] for r in rows))),
            "end_reason": "; ".join(notes),
        }
    )
    return rows


def cost_table(ledgers: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> pd.DataFrame:
    """The report's cost table from the Vast executor's ledgers (one per run, oldest first; format:
    snakemake-executor-plugin-vast docs/further.md, "The cost ledger"): per run one row per rented instance and a
    total row (its end_reason notes the budget, preemptions, and "run in progress" for a ledger written while its run
    was going on), then a total over all runs when there are several. No ledger gives the one row of a local run."""
    if isinstance(ledgers, Mapping):
        ledgers = [ledgers]
    if not ledgers:
        return pd.DataFrame([{"run_id": "local", "instance": LOCAL_RUN, "cost_usd": 0.0}], columns=COST_COLUMNS)
    rows = [row for ledger in ledgers for row in _run_rows(ledger)]
    if len(ledgers) > 1:
        totals = [row for row in rows if str(row["instance"]).startswith("total")]
        rows.append(
            {
                "run_id": "all runs",
                "instance": f"total ({len(ledgers)} runs)",
                "hours": sum(r["hours"] for r in totals),
                "idle_hours": sum(r["idle_hours"] for r in totals),
                "cost_usd": sum(r["cost_usd"] for r in totals),
                "end_reason": "",
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def read_ledgers(ledger_dir: str | Path) -> list[dict[str, Any]]:
    """Every run's ledger in ``ledger_dir`` (``<run id>.json``), oldest run first; a missing folder: none."""
    folder = Path(ledger_dir)
    if not folder.is_dir():
        return []
    ledgers = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("instances"), list):
                raise ValueError("no 'instances' list")
            _run_rows(data)  # every field the table needs is there
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LedgerError(f"{path}: not a readable Vast cost ledger ({type(exc).__name__}: {exc})") from exc
        ledgers.append(data)
    return sorted(ledgers, key=lambda d: (d.get("started_at") or d.get("written_at") or 0.0, str(d.get("run_id"))))


def write_cost_table(ledger_dir: str | Path, out: str | Path, html_out: str | Path | None = None) -> pd.DataFrame:
    """Write :func:`cost_table` of the ledgers in ``ledger_dir`` (none: a local run) as CSV (and as HTML to
    ``html_out``); return it."""
    table = cost_table(read_ledgers(ledger_dir))
    _write_csv(table, Path(out))
    if html_out is not None:
        _write_html(html_table(table, "Costs of the rented hosts, per run"), Path(html_out))
    return table
