"""Tables of measurements/rb_mixed_schemes.json: per case and scheme, sup-CDF distance to the reference on each nested
grid, consecutive-grid differences, and the distance between the finest grids of different schemes.

    python -m benchmarks.accuracy.rb_scheme_tables [--schemes point,cell,lag]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.accuracy.rb_mixed_schemes import OUT, SCHEMES
from benchmarks.accuracy.references import load_cases
from tests.models.rough_bergomi_exact import weak_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    args = parser.parse_args()
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
