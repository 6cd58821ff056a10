"""Discretisation error of the rough Bergomi hybrid scheme (production code path) against the exact reference, and
the coupled-coarse-grid error estimator on the same paths.

For each reference case (tests/models/data/rough_bergomi_quantiles.json) and N fine steps to the horizon, the
prototype ``rb_hybrid`` (bit-identical to the production model on a uniform grid) is run on P antithetic paths:

* measured error: max over the 512 published levels of |F_N(q_ref(p)) - p|, with F_N(x) = mean Phi((x - m)/s) the
  conditional-Monte-Carlo CDF of the scheme (W_perp integrated out) and q_ref the reference quantiles; its Monte
  Carlo noise (se of the mean of Phi, antithetic pairs) is reported as ``noise`` (3 se at the worst level);
* estimator (what a chunk row would carry): the same paths on the grid of every 2nd point (stride 2, coupled), and
  est(p) = |F_N(q_hat_N/2(p)) ... in two forms:
    - ``est_cond``: max_p |F_N(q_ref) - F_N/2(q_ref)| / (2^r - 1)  (conditional MC, low noise), r = min(3H + 1/2, 1);
    - ``est_os``: max_p |Fhat_N(qhat_N/2(p)) - p| / (2^r - 1) from the order statistics only (what an engine without
      conditional MC computes: ranks of the coarse-grid quantiles among the fine-grid samples).

    python -m benchmarks.accuracy.rb_hybrid_error [--steps 2,4,...] [--paths 262144] [--cases name:days,...]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy.references import PUBLISHED_LEVELS, load_cases
from benchmarks.accuracy.schemes import rb_hybrid
from tests.models.rough_bergomi_exact import RBParams, weak_rate

RESULTS = Path(__file__).resolve().parent / "measurements"


def simulate(p: RBParams, maturity: float, steps: int, paths: int, seed: int) -> tuple[np.ndarray, ...]:
    """(cond means (2, P), cond sds (2, P), x fine (P,), x coarse (P,)) for grids N and N/2, antithetic pairs."""
    g = torch.Generator().manual_seed(seed)
    chunk = max(2, min(paths, (1 << 22) // max(steps, 1))) // 2 * 2
    means, sds, xf, xc = [], [], [], []
    for start in range(0, paths, chunk):
        half = min(chunk, paths - start) // 2
        z = torch.randn((3, half, steps), dtype=torch.float64, generator=g)
        z = torch.cat([z, -z], dim=1)
        out = rb_hybrid(p, maturity, z[0], z[1], z[2], strides=(1, 2) if steps > 1 else (1,))
        means.append(out.cond_mean)
        sds.append(out.cond_sd)
        xf.append(out.x)
        xc.append(out.x_coarse[0] if out.x_coarse is not None else out.x)
    return torch.cat(means, 1), torch.cat(sds, 1), torch.cat(xf), torch.cat(xc)


def mixture_cdf_pairs(x: np.ndarray, mean: torch.Tensor, sd: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per grid: mean of Phi((x - m)/s) over paths and its standard error over antithetic pairs, at each x."""
    xt = torch.from_numpy(x)
    grids, paths = mean.shape
    half = paths // 2
    total = torch.zeros((grids, x.size), dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    step = 1 << 12
    for s in range(0, half, step):
        e = min(s + step, half)
        a = torch.special.ndtr((xt[None, None, :] - mean[:, s:e, None]) / sd[:, s:e, None])
        b = torch.special.ndtr(
            (xt[None, None, :] - mean[:, half + s : half + e, None]) / sd[:, half + s : half + e, None]
        )
        pair = 0.5 * (a + b)
        total += pair.sum(1)
        total_sq += (pair * pair).sum(1)
    m = total / half
    var = (total_sq / half - m * m).clamp(min=0.0)
    return m.numpy(), (var / half).sqrt().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", default="1,2,4,8,16,32,64,128,256")
    parser.add_argument("--paths", type=int, default=1 << 18)
    parser.add_argument("--cases", default="")
    parser.add_argument("--out", default=str(RESULTS / "rb_hybrid_error.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    wanted = {tuple(c.split(":")) for c in args.cases.split(",") if c}
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for case in load_cases("rough_bergomi"):
        if wanted and (case.name, str(case.days)) not in wanted:
            continue
        p = RBParams.of(case.params)
        rate = weak_rate(p.hurst)
        key = f"{case.name}:{case.days}"
        row = results.setdefault(key, {"params": case.params, "days": case.days, "reference_accuracy": case.accuracy})
        row.setdefault("errors", {})
        for n in [int(s) for s in args.steps.split(",")]:
            if str(n) in row["errors"] and (n == 1 or "richardson_sup" in row["errors"][str(n)]):
                continue
            t0 = time.perf_counter()
            mean, sd, x_fine, x_coarse = simulate(p, case.maturity, n, args.paths, seed=n + 17)
            f, se = mixture_cdf_pairs(case.quantiles, mean, sd)
            dev = f[0] - PUBLISHED_LEVELS
            entry = {
                "sup": float(np.abs(dev).max()),
                "at_level": float(PUBLISHED_LEVELS[int(np.argmax(np.abs(dev)))]),
                "noise": float(3 * se[0].max()),
                "paths": args.paths,
            }
            if n > 1:
                factor = 1.0 / (2.0**rate - 1.0)
                entry["est_cond"] = float(np.abs(f[0] - f[1]).max() * factor)
                extrapolated = f[0] + (f[0] - f[1]) * factor  # coupled Richardson of the CDF at q_ref
                entry["richardson_sup"] = float(np.abs(extrapolated - PUBLISHED_LEVELS).max())
                pair_se = np.sqrt(se[0] ** 2 * (1 + factor) ** 2)  # lower bound: ignores the coarse-grid term
                entry["richardson_noise"] = float(3 * pair_se.max())
                xs = np.sort(x_fine.numpy())
                k = np.floor(PUBLISHED_LEVELS * x_coarse.numel()).astype(int)
                q_coarse = np.sort(x_coarse.numpy())[k]
                ranks = np.searchsorted(xs, q_coarse, side="right") / xs.size
                entry["est_os"] = float(np.abs(ranks - PUBLISHED_LEVELS).max() * factor)
                entry["coarse_sup"] = float(np.abs(f[1] - PUBLISHED_LEVELS).max())
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            row["errors"][str(n)] = entry
            print(
                f"{key:>22} N={n:4d}: sup {entry['sup']:.2e} (noise {entry['noise']:.1e}, ref {case.accuracy:.1e})"
                + (
                    f" est_cond {entry['est_cond']:.2e} est_os {entry['est_os']:.2e} rich {entry['richardson_sup']:.2e}"
                    if n > 1
                    else ""
                ),
                flush=True,
            )
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=1) + "\n")


def noise_floor(paths: int) -> float:
    """3 sqrt(p(1-p)/P) at the median: the order-statistic noise of a plain MC CDF."""
    return 3 * math.sqrt(0.25 / paths)


if __name__ == "__main__":
    main()
