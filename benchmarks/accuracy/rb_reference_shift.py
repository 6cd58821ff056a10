"""How far a regenerated rough Bergomi reference moved from an earlier version of the table (docs/accuracy.md 1.2).

For each case: sup_p |F_new(q_old(p)) - p| over the 512 published levels (the old table's CDF error if the new one is
exact), next to the old and the new stated accuracy. The old table is read from git (``--old``, a commit).

    python -m benchmarks.accuracy.rb_reference_shift --old <commit> [--cases eta3_H01:252,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess

import numpy as np

from benchmarks.accuracy.references import DATA, PUBLISHED_LEVELS, load_cases, sup_cdf_error
from density_engine.models.rough_heston_fourier import ReferenceCDF

TABLE = DATA / "rough_bergomi_quantiles.json"


def old_cases(commit: str) -> dict[str, dict]:
    path = TABLE.relative_to(TABLE.parents[3]).as_posix()
    text = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=TABLE.parents[3], check=True, capture_output=True, text=True
    ).stdout
    payload = json.loads(text)
    levels = np.asarray(payload["table_levels"], dtype=float)
    return {f"{c['name']}:{c['days']}": {**c, "levels": levels} for c in payload["cases"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", required=True, help="git commit holding the earlier table")
    parser.add_argument("--cases", default="", help="name:days,... (default: every case that changed)")
    args = parser.parse_args()
    old = old_cases(args.old)
    new = {f"{c.name}:{c.days}": c for c in load_cases("rough_bergomi")}
    wanted = args.cases.split(",") if args.cases else [k for k in new if k in old]
    print("| case | old n_f | old acc. | new n_f | new acc. | sup abs(F_new(q_old) - p) | sup abs(F_old(q_new) - p) |")
    print("|---|---|---|---|---|---|---|")
    current = {f"{c['name']}:{c['days']}": c for c in json.loads(TABLE.read_text())["cases"]}
    for key in wanted:
        o, n = old[key], new[key]
        q_old = np.asarray(o["quantiles"], dtype=float)
        if np.array_equal(q_old, np.asarray(current[key]["quantiles"], dtype=float)) and not args.cases:
            continue
        q_old_published = q_old[np.searchsorted(o["levels"], PUBLISHED_LEVELS[0]) :][:512]
        forward = sup_cdf_error(n.cdf, q_old_published)
        backward = float(np.max(np.abs(ReferenceCDF(o["levels"], q_old)(n.quantiles) - PUBLISHED_LEVELS)))
        print(
            f"| {key} | {o['fine_steps']} | {o['accuracy']:.1e} | {current[key]['fine_steps']} | {n.accuracy:.1e} | "
            f"{forward:.1e} | {backward:.1e} |"
        )


if __name__ == "__main__":
    main()
