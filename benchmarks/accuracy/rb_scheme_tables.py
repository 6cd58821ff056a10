"""Tables of measurements/rb_mixed_schemes.json: per case and scheme, sup-CDF distance to the reference on each nested
grid, consecutive-grid differences, and the distance between the finest grids of different schemes; with ``--cells``
the same for measurements/rb_cell_convergence.json (P6 and P6v on 16 .. 512 cells), plus the distance of the finest
P6v grid to the left-point rule's coupled Richardson (N/2, N) at its finest grid of rb_point_refine.json.

    python -m benchmarks.accuracy.rb_scheme_tables [--schemes point,cell,lag]
    python -m benchmarks.accuracy.rb_scheme_tables --cells [--column]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.accuracy.rb_mixed_schemes import OUT, SCHEMES
from benchmarks.accuracy.references import load_cases
from tests.models.rough_bergomi_exact import weak_rate


def cell_tables() -> None:
    measurements = OUT.parent
    cells = json.loads((measurements / "rb_cell_convergence.json").read_text())
    refine_path = measurements / "rb_point_refine.json"
    refine = json.loads(refine_path.read_text()) if refine_path.exists() else {}
    refs = {f"{c.name}:{c.days}": c for c in load_cases("rough_bergomi")}
    grid_cols = " | ".join(f"N={n}" for n in (16, 32, 64, 128, 256, 512))
    print(f"| set | days | ref. acc. | scheme | {grid_cols} | moves (per doubling) | 2 se |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for key, entry in cells.items():
        if entry["cells"] < 512:
            continue
        name, days = key.split(":")[:2]
        ref = refs[f"{name}:{days}"]
        x = np.asarray(entry["x"])
        f_ref = ref.cdf(x)
        central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
        rows = np.asarray(entry["cdf_by_grid"])
        err = np.abs(rows - f_ref)[:, central].max(1)
        moves = np.abs(np.diff(rows, axis=0))[:, central].max(1)
        variant = entry.get("variant", "P6")
        if entry["cells"] != 512:
            variant += f" (N={entry['grids'][0]}..{entry['cells']})"
        row = {"err_vs_ref": err.tolist(), "moves": moves.tolist(), "se_max": entry["se_by_grid_max"]}
        point = refine.get(f"{name}:{days}:1024")
        if point is not None:
            prow = np.asarray(point["cdf_by_grid"])
            rate = weak_rate(entry["params"]["hurst"])
            rich = prow[-1] + (prow[-1] - prow[-2]) / (2.0**rate - 1.0)
            row["vs_point_richardson_512_1024"] = float(np.abs(rows[-1] - rich)[central].max())
        summary[f"{key}"] = row
        print(
            f"| {name} | {days} | {ref.accuracy:.1e} | {variant} | "
            + " | ".join(f"{v:.1e}" for v in err)
            + " | "
            + ", ".join(f"{v:.1e}" for v in moves)
            + f" | {2 * entry['se_by_grid_max'][-1]:.0e} |"
        )
    for key, row in summary.items():
        if "vs_point_richardson_512_1024" in row:
            print(f"{key}: finest grid vs left-point Richardson (512, 1024): {row['vs_point_richardson_512_1024']:.1e}")
    (measurements / "rb_cell_tables.json").write_text(json.dumps(summary, indent=1) + "\n")


def cell_column_table() -> None:
    """The cell scheme's production error column at infinite paths, from the P6v moves of rb_cell_tables.json (run
    ``--cells`` first): at the policy's N (128 cells; 512 for 252 days, the policy's 504), |F_N - F_N/2| / (2^r' - 1)
    with r' = log2 of the ratio of the last two moves clipped to [MIN_RATE, CELL_RATE] (the estimator's rule), against
    the measured error."""
    from density_engine.engine.estimators import MIN_RATE
    from density_engine.models.rough_bergomi import CELL_RATE

    measurements = OUT.parent
    tables = json.loads((measurements / "rb_cell_tables.json").read_text())
    cells = json.loads((measurements / "rb_cell_convergence.json").read_text())
    grids = [16, 32, 64, 128, 256, 512]
    print("| set | days | N | move N/2 -> N | move N/4 -> N/2 | r' | column | measured | column / measured |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, row in tables.items():
        if cells[key].get("variant") != "v" or cells[key]["grids"][0] != grids[0]:
            continue
        name, days = key.split(":")[:2]
        k = grids.index(512 if int(days) == 252 else 128)
        fine, coarse = row["moves"][k - 1], row["moves"][k - 2]
        rate = min(max(np.log2(coarse / fine), MIN_RATE), CELL_RATE)
        column, measured = fine / (2.0**rate - 1.0), row["err_vs_ref"][k]
        print(
            f"| {name} | {days} | {grids[k]} | {fine:.1e} | {coarse:.1e} | {rate:.2f} | {column:.1e} | {measured:.1e} "
            f"| {column / measured:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--cells", action="store_true")
    parser.add_argument("--column", action="store_true", help="with --cells: the cell scheme's error column")
    args = parser.parse_args()
    if args.cells:
        cell_tables()
        if args.column:
            cell_column_table()
        return
    schemes = args.schemes.split(",")
    store = json.loads(OUT.read_text())
    refs = {f"{c.name}:{c.days}": c for c in load_cases("rough_bergomi")}
    summary = {}
    print("| set | days | ref. acc. | scheme | " + " | ".join(f"N={g}" for g in next(iter(store.values()))["grids"]))
    print("|---|---|---|---|" + "---|" * 6 + " consecutive differences | E e^X - 1 (finest) |")
    for key, entry in store.items():
        name, days, _ = key.split(":")
        ref = refs[f"{name}:{days}"]
        x = np.asarray(entry["x"])
        f_ref = ref.cdf(x)
        central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
        rate = weak_rate(entry["params"]["hurst"])
        finest = {}
        for s in schemes:
            rows = np.asarray(entry[s]["cdf_by_grid"])
            err = np.abs(rows - f_ref)[:, central].max(1)
            diffs = np.abs(np.diff(rows, axis=0))[:, central].max(1)
            rich = rows[-1] + (rows[-1] - rows[-2]) / (2.0**rate - 1.0)
            finest[s] = rows[-1]
            summary[f"{key}:{s}"] = {
                "err_vs_ref": [float(v) for v in err],
                "consecutive_diffs": [float(v) for v in diffs],
                "richardson_finest_err": float(np.abs(rich - f_ref)[central].max()),
                "se_max": entry[s]["se_by_grid_max"],
                "martingale_defect_finest": entry[s]["martingale_defect"][-1],
            }
            cells = " | ".join(f"{v:.1e}" for v in err)
            dcells = ", ".join(f"{v:.1e}" for v in diffs)
            print(
                f"| {name} | {days} | {ref.accuracy:.1e} | {s} | {cells} | {dcells} | "
                f"{entry[s]['martingale_defect'][-1]:.0e} |"
            )
        pairs = [(a, b) for a in schemes for b in schemes if a < b]
        summary[f"{key}:pairs"] = {f"{a}-{b}": float(np.abs(finest[a] - finest[b])[central].max()) for a, b in pairs}
    OUT.with_name("rb_scheme_tables.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
