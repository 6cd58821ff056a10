"""CPU cost of refining the rough Bergomi hybrid scheme (prototype = production to 1e-16): process time per path of
``schemes.rb_hybrid`` with the production's coupled grids (strides 1, 2, 4) at N = 128 .. 2048 steps to one horizon,
interleaved rounds, ratio to N = 128 of the same round (the production default at 1 day). The O(N^2) Toeplitz GEMM is
what the production kernel does; an FFT convolution would make the large N cheaper (O(N log N)), not the path-steps.

    python -m benchmarks.accuracy.rb_refine_cost --paths 4096 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from benchmarks.accuracy.schemes import rb_hybrid
from tests.models.rough_bergomi_exact import RBParams

OUT = Path(__file__).resolve().parent / "measurements" / "rb_refine_cost.json"
STEPS = (128, 256, 512, 1024, 2048)


def one(n: int, paths: int, p: RBParams) -> float:
    g = torch.Generator().manual_seed(n)
    z = [torch.randn(paths, n, generator=g) for _ in range(3)]
    t0 = time.process_time()
    rb_hybrid(p, 1 / 252, *z, strides=(1, 2, 4))
    return (time.process_time() - t0) / paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    p = RBParams(3.0, -0.95, 0.03, 0.04)
    load_before = os.getloadavg()
    rounds = []
    for _ in range(args.rounds):
        per = {n: one(n, args.paths, p) for n in STEPS}
        rounds.append({str(n): {"us_per_path": per[n] * 1e6, "ratio": per[n] / per[128]} for n in STEPS})
    out = {"paths": args.paths, "load_before": load_before, "load_after": os.getloadavg(), "rounds": rounds}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    for n in STEPS:
        print(n, [f"{r[str(n)]['us_per_path']:.1f} us ({r[str(n)]['ratio']:.2f})" for r in rounds])
    print("load", load_before, os.getloadavg())


if __name__ == "__main__":
    main()
