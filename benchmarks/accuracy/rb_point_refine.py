"""Left-point rule with the Volterra process exact, refined beyond the reference's 512 steps (what "simply refining"
buys at the hard corner), on nested grids n/32 .. n of one exact RQMC draw, evaluated at the reference's points x.

    python -m benchmarks.accuracy.rb_point_refine --cases eta3_H003:1 --steps 2048 --log2-points 13
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import tests.models.make_rough_bergomi_quantiles as gen
from benchmarks.accuracy.rb_grid_error import reference_payload
from tests.models.rough_bergomi_exact import RBParams

OUT = Path(__file__).resolve().parent / "measurements" / "rb_point_refine.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default="eta3_H003:1")
    parser.add_argument("--steps", type=int, default=2048)
    parser.add_argument("--scrambles", type=int, default=8)
    parser.add_argument("--log2-points", type=int, default=13)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen.LOG2_POINTS = args.log2_points
    cases = {f"{c['name']}:{c['days']}": c for c in reference_payload()["cases"]}
    store = json.loads(OUT.read_text()) if OUT.exists() else {}
    for key in args.cases.split(","):
        case = cases[key]
        p = RBParams.of(case["params"])
        x = torch.tensor(case["x"], dtype=torch.float64)
        t0 = time.process_time()
        per_scramble, grids = gen.point_scheme_cdf(p, case["maturity"], args.steps, x, 5000 + len(key), args.scrambles)
        mean = per_scramble.mean(0)
        se = per_scramble.std(0, ddof=1) / math.sqrt(args.scrambles)
        central = (mean[-1] > 1e-3) & (mean[-1] < 1 - 1e-3)
        store[f"{key}:{args.steps}"] = {
            "params": case["params"],
            "days": case["days"],
            "grids": grids,
            "paths": args.scrambles << args.log2_points,
            "x": case["x"],
            "cdf_by_grid": [[float(f"{v:.7g}") for v in row] for row in mean],
            "se_by_grid_max": [float(v) for v in se[:, central].max(1)],
            "cpu_seconds": round(time.process_time() - t0, 1),
        }
        diffs = np.abs(np.diff(mean, axis=0))[:, central].max(1)
        print(key, grids, "diffs", [f"{d:.1e}" for d in diffs], "se", [f"{v:.0e}" for v in se[:, central].max(1)])
        OUT.write_text(json.dumps(store, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
