"""Print the markdown tables of docs/accuracy.md from the stored results (benchmarks/accuracy/measurements/*.json).

python -m benchmarks.accuracy.tables [rh|rb|cost]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "measurements"


def fmt(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def rh_table() -> None:
    data = json.loads((RESULTS / "rh_ivi_error.json").read_text())
    steps = sorted({int(n) for row in data.values() for n in row["errors"]})
    print("| set | days | " + " | ".join(f"N={n}" for n in steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for key, row in data.items():
        name, days = key.split(":")
        cells = [fmt(row["errors"].get(str(n), {}).get("sup")) for n in steps]
        print(f"| {name} | {days} | " + " | ".join(cells) + " |")
    print()
    print("Richardson 2 q_N - q_{N/2} (sup-CDF error):")
    print("| set | days | " + " | ".join(f"({n // 2},{n})" for n in steps if n >= 2) + " |")
    print("|---|---|" + "---|" * len([n for n in steps if n >= 2]))
    for key, row in data.items():
        name, days = key.split(":")
        cells = [fmt(row["errors"].get(str(n), {}).get("richardson_sup")) for n in steps if n >= 2]
        print(f"| {name} | {days} | " + " | ".join(cells) + " |")


def rb_table() -> None:
    data = json.loads((RESULTS / "rb_hybrid_error.json").read_text())
    steps = sorted({int(n) for row in data.values() for n in row["errors"]})
    print("| set | days | ref. acc. | " + " | ".join(f"N={n}" for n in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    for key, row in data.items():
        name, days = key.split(":")
        cells = []
        for n in steps:
            e = row["errors"].get(str(n))
            cells.append("" if e is None else f"{fmt(e['sup'])} ({fmt(e.get('est_cond'))})")
        print(f"| {name} | {days} | {fmt(row['reference_accuracy'])} | " + " | ".join(cells) + " |")


def rb_reference_table() -> None:
    data = json.loads((RESULTS.parents[2] / "tests" / "models" / "data" / "rough_bergomi_quantiles.json").read_text())
    columns = ["set (η, ρ, H, ξ0)", "days", "n_f", "extrapolation (rate)", "accuracy", "residual", "2 se"]
    columns += ["finest grid vs ref.", "cell scheme vs ref.", "estimator"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in sorted(data["cases"], key=lambda c: (list(data["parameter_sets"]).index(c["name"]), c["days"])):
        p = c["params"]
        rate = c["fitted_rate"] if c["extrapolation"] == "fitted rate" else c["rate"]
        head = f"| {c['name']} ({p['eta']:g}, {p['rho']:g}, {p['hurst']:g}, {p['xi0']:.3g}) | {c['days']} "
        body = f"| {c['fine_steps']} | {c['extrapolation']} ({rate:.2f}) | {fmt(c['accuracy'])} "
        tail = f"| {fmt(c['residual_max'])} | {fmt(2 * c['se_max'])} | {fmt(c['fine_minus_extrapolated_max'])} "
        cells = c.get("cell_scheme_by_cells")
        cell = " / ".join(fmt(v) for v in cells.values()) + f" ({'/'.join(cells)})" if cells else ""
        cell = cell or fmt(c["cell_scheme_max_abs_cdf_diff"])
        estimator = c.get("estimator", "W-conditional")
        print(head + body + tail + f"| {cell} | {estimator}, {c['paths'] >> 10}k paths, {c['seconds'] / 60:.0f} min |")


def rb_hybrid_small_n() -> None:
    data = json.loads((RESULTS / "rb_hybrid_error.json").read_text())
    steps = sorted({int(n) for row in data.values() for n in row["errors"] if int(n) <= 16})
    print("| set | days | " + " | ".join(f"N={n}" for n in steps) + " | noise (3 se) |")
    print("|---|---|" + "---|" * len(steps) + "---|")
    for key, row in data.items():
        name, days = key.split(":")
        cells = [fmt(row["errors"].get(str(n), {}).get("sup")) for n in steps]
        noise = max(e["noise"] for n, e in row["errors"].items() if int(n) <= 16)
        print(f"| {name} | {days} | " + " | ".join(cells) + f" | {fmt(noise)} |")


if __name__ == "__main__":
    commands = {"rh": rh_table, "rb": rb_table, "rb-ref": rb_reference_table, "rb-hybrid": rb_hybrid_small_n}
    commands[sys.argv[1] if len(sys.argv) > 1 else "rh"]()
