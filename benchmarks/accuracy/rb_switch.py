"""Which rough Bergomi scheme where: P6v (plain) vs the hybrid scheme + coupled Richardson, across H (docs/accuracy.md
4.5).

For each reference case (tests/models/data/rough_bergomi_quantiles.json) of the sets below and the production grid
N = max(128, 2 x days) per horizon:

* P6v (the variance-matched cell-average scheme, rb_cell_convergence ``--variant v``) on one exact joint-Gaussian RQMC
  draw of 2N cells, nested grids N/2, N, 2N: its sup-CDF error at N (what production would publish, no
  extrapolation), at 2N (is it converging?), and the nested-grid difference |F(N) - F(N/2)| (what its error column
  would use) next to it;
* the hybrid scheme (``schemes.rb_hybrid``, the production kernel) on N steps with its coupled N/2 grid, published as
  the coupled Richardson extrapolant F_N + (F_N - F_N/2) / (2^r - 1), r = min(3H + 1/2, 1) (of the CDF at fixed x: the
  quantile form of production agrees to first order), RQMC normals (z1, z2 per step; z3 does not enter the conditional
  moments); also its plain F_N and that grid's error estimate |F_N - F_N/2| / (2^r - 1) (plain_error_estimate).

Both with conditional Monte Carlo (W_perp integrated out), the standard error from the spread of the scrambles;
errors are max over the reference's 201 points x with 1e-3 < F_ref < 1 - 1e-3 of |F_scheme - F_ref| (as
rb_scheme_tables). Results to measurements/rb_switch.json (merged), a markdown table on stdout.

    python -m benchmarks.accuracy.rb_switch [--cases eta3_H015:1,...] [--scrambles 16 --log2-points 14]
        [--hybrid-log2-points 16]
    python -m benchmarks.accuracy.rb_switch --table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy.rb_cell_convergence import cell_cdfs
from benchmarks.accuracy.rb_grid_error import reference_payload
from benchmarks.accuracy.references import load_cases
from benchmarks.accuracy.schemes import rb_hybrid
from tests.models.rough_bergomi_exact import RBParams, mixture_cdf, sobol_normals, weak_rate

OUT = Path(__file__).resolve().parent / "measurements" / "rb_switch.json"
SETS = ("eta3_H01", "eta3_H015", "eta3_H02", "eta3_H03", "MP")


def production_steps(days: int) -> int:
    """The per-horizon grid of the production policy (density_engine.models.time_grid, rough Bergomi)."""
    return max(128, 2 * days)


def brownian_pca(steps: int) -> torch.Tensor:
    """Orthogonal O (steps x steps) with z1 = u @ O.T: the increments of the Brownian path's principal components
    (eigenvectors of min(i, j), largest first), so that the first Sobol coordinates drive the largest modes of W (RQMC
    on the time-major z1 scatters 3 - 10 x more)."""
    k = np.arange(1, steps + 1, dtype=float)
    lam, vec = np.linalg.eigh(np.minimum.outer(k, k))
    path = vec[:, ::-1] * np.sqrt(lam[::-1])  # W_k / sqrt(h) = path @ u
    return torch.from_numpy(np.diff(path, axis=0, prepend=0.0))


def hybrid_cdfs(
    p: RBParams, maturity: float, steps: int, x: torch.Tensor, scrambles: int, log2_points: int, seed: int
) -> np.ndarray:
    """Per scramble: the hybrid scheme's conditional-MC CDF at x on its N/2 and N grids (coupled), (R, 2, X)."""
    rotation = brownian_pca(steps)
    out = []
    for r in range(scrambles):
        means, sds = [], []
        for z in sobol_normals(2 * steps, log2_points, seed=seed + r, chunk=8192):
            z1, z2 = z[:, :steps] @ rotation.T, z[:, steps:]
            res = rb_hybrid(p, maturity, z1, z2, torch.zeros_like(z1), strides=(2, 1))
            means.append(res.cond_mean)
            sds.append(res.cond_sd)
        out.append(mixture_cdf(x, torch.cat(means, 1), torch.cat(sds, 1)).numpy())
    return np.asarray(out)


def sup(values: np.ndarray, central: np.ndarray) -> float:
    return float(np.abs(values)[..., central].max())


def two_se(per_scramble: np.ndarray, central: np.ndarray) -> float:
    return float(2 * (per_scramble.std(0, ddof=1) / math.sqrt(per_scramble.shape[0]))[central].max())


def measure(case: dict, ref, scrambles: int, log2_points: int, hybrid_log2_points: int) -> dict:
    p = RBParams.of(case["params"])
    days, maturity = int(case["days"]), float(case["maturity"])
    n = production_steps(days)
    x = torch.tensor(case["x"], dtype=torch.float64)
    f_ref = ref.cdf(np.asarray(case["x"]))
    central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
    seed = 100 * days + int(1000 * p.hurst)
    t0 = time.process_time()
    cells, _, grids = cell_cdfs(p, maturity, 2 * n, x, scrambles, log2_points, seed, variant="v", strides=(4, 2, 1))
    t_cell = time.process_time() - t0
    assert grids == [n // 2, n, 2 * n]
    half, fine, double = cells[:, 0], cells[:, 1], cells[:, 2]
    t0 = time.process_time()
    hyb = hybrid_cdfs(p, maturity, n, x, scrambles, hybrid_log2_points, seed + 50)
    t_hyb = time.process_time() - t0
    factor = 1.0 / (2.0 ** weak_rate(p.hurst) - 1.0)
    rich = hyb[:, 1] + (hyb[:, 1] - hyb[:, 0]) * factor
    return {
        "params": case["params"],
        "days": days,
        "steps": n,
        "reference_accuracy": ref.accuracy,
        "reference_fine_steps": case.get("fine_steps"),
        "paths": {"p6v": scrambles << log2_points, "hybrid": scrambles << hybrid_log2_points},
        "p6v": {
            "err_half": sup(half.mean(0) - f_ref, central),
            "err": sup(fine.mean(0) - f_ref, central),
            "err_double": sup(double.mean(0) - f_ref, central),
            "move_half_to_n": sup(fine.mean(0) - half.mean(0), central),
            "move_n_to_double": sup(double.mean(0) - fine.mean(0), central),
            "two_se": two_se(fine, central),
            "two_se_double": two_se(double, central),
            "cpu_seconds": round(t_cell, 1),
        },
        "hybrid": {
            "err_plain": sup(hyb[:, 1].mean(0) - f_ref, central),
            "err_richardson": sup(rich.mean(0) - f_ref, central),
            "plain_error_estimate": sup((hyb[:, 1] - hyb[:, 0]).mean(0) * factor, central),
            "two_se_plain": two_se(hyb[:, 1], central),
            "two_se_richardson": two_se(rich, central),
            "cpu_seconds": round(t_hyb, 1),
        },
        "p6v_vs_hybrid_richardson": sup(fine.mean(0) - rich.mean(0), central),
    }


def table(store: dict) -> None:
    print(
        "| set | days | N | ref. acc. | P6v N | P6v 2N | P6v \\|F(N) − F(N/2)\\| | P6v 2 se | hybrid + Richardson N "
        "| its 2 se | hybrid plain N | better |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = {name: k for k, name in enumerate(SETS)}
    for key, row in sorted(store.items(), key=lambda kv: (order.get(kv[0].split(":")[0], 99), kv[1]["days"])):
        c, h = row["p6v"], row["hybrid"]
        gap = abs(c["err"] - h["err_richardson"])
        noise = max(c["two_se"], h["two_se_richardson"], row["reference_accuracy"])
        better = ("P6v" if c["err"] < h["err_richardson"] else "hybrid+R") if gap > noise else "tie (within noise)"
        print(
            f"| {key.split(':')[0]} | {row['days']} | {row['steps']} | {row['reference_accuracy']:.1e} | "
            f"{c['err']:.1e} | {c['err_double']:.1e} | {c['move_half_to_n']:.1e} | {c['two_se']:.0e} | "
            f"{h['err_richardson']:.1e} | {h['two_se_richardson']:.0e} | {h['err_plain']:.1e} | {better} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="", help="name:days,... (default: every reference case of SETS)")
    parser.add_argument("--scrambles", type=int, default=16)
    parser.add_argument("--log2-points", type=int, default=14, help="P6v paths per scramble (log2)")
    parser.add_argument("--hybrid-log2-points", type=int, default=16, help="hybrid paths per scramble (log2; cheaper)")
    parser.add_argument("--table", action="store_true", help="only print the table of the stored results")
    args = parser.parse_args()
    store = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.table:
        table(store)
        return
    torch.set_num_threads(1)
    refs = {f"{c.name}:{c.days}": c for c in load_cases("rough_bergomi")}
    cases = {f"{c['name']}:{c['days']}": c for c in reference_payload()["cases"]}
    wanted = args.cases.split(",") if args.cases else [k for k in cases if k.split(":")[0] in SETS]
    for key in wanted:
        row = measure(cases[key], refs[key], args.scrambles, args.log2_points, args.hybrid_log2_points)
        row["load_average"] = [round(v, 2) for v in os.getloadavg()]
        store[key] = row
        c, h = row["p6v"], row["hybrid"]
        print(
            f"{key} N={row['steps']}: P6v {c['err']:.1e} (2N {c['err_double']:.1e}, move {c['move_half_to_n']:.1e}, "
            f"2se {c['two_se']:.0e}, {c['cpu_seconds']} s); hybrid+R {h['err_richardson']:.1e} (2se "
            f"{h['two_se_richardson']:.0e}, plain {h['err_plain']:.1e}, {h['cpu_seconds']} s); "
            f"ref {row['reference_accuracy']:.1e}",
            flush=True,
        )
        OUT.write_text(json.dumps(store, indent=1) + "\n")
    table(store)


if __name__ == "__main__":
    main()
