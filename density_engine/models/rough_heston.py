"""Rough Heston model simulated with the iVi scheme (integrated-variance implicit scheme, inverse-Gaussian sampling).

Model (parameters kappa, theta, sigma, rho, alpha = H + 1/2, v0; zero rates; time in years):

    V_t = v0 + 1/Gamma(alpha) int_0^t (t-s)^(alpha-1) [kappa (theta - V_s) ds + sigma sqrt(V_s) dB_s]
    dX_t = -V_t/2 dt + sqrt(V_t) dW_t,    d<W, B>_t = rho dt,    X = log(S_t / S_0)

Scheme (Abi Jaber et al., arXiv 2504.19885), on the uniform fine grid t_i = i * h, h = dt / substeps. With U = int V dt,
Z = int sqrt(V) dB, Kbar(t) = t^alpha / Gamma(alpha + 1), g0(t) = v0 t + kappa theta t^(alpha+1) / Gamma(alpha+2):

    a_i = g0(t_{i+1}) - g0(t_i) + sum_{j<i} w_{i-j} Y_j,  w_m = Kbar((m+1)h) - Kbar(mh),  Y_j = sigma dZ_j - kappa dU_j
    dU_i ~ InverseGaussian(mean a_i / (1 + kappa Kbar(h)), shape (a_i / (sigma Kbar(h)))^2)
    dZ_i = ((1 + kappa Kbar(h)) dU_i - a_i) / (sigma Kbar(h))            (so Y_i = (dU_i - a_i) / Kbar(h))
    X_{i+1} = X_i - dU_i / 2 + rho dZ_i + sqrt(1 - rho^2) sqrt(dU_i) N_i

dU > 0 by construction (no truncation of negative variance). The inverse Gaussian is drawn by Michael-Schucany-Haas
with one normal and one uniform per step, written as dU = mu / r or mu * r with r = 1 + a + sqrt(a (a + 2)),
a = mu y / (2 lambda), y = N^2 (the same formula, free of cancellation).

Reproducibility: each RNG sub-block's draws are read time-major (step, path) in place, and every op (only +, *, /, sqrt
and matmuls) runs per tile of fixed shape at a fixed offset inside a sub-block, so results are bit-identical for any
split of the paths into blocks and any number of CPU worker threads.

Cost: the Volterra history sum is O(n^2) per path. Steps are processed in groups of ``HISTORY_BLOCK``: the contribution
of all earlier groups is one GEMM (time-major history (s, paths) against a Toeplitz slice of the weights), the part
inside the group a short GEMV per step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from density_engine.engine.rng import RNG_SUBBLOCK_PATHS
from density_engine.models.base import Model, Parameter

if TYPE_CHECKING:
    from density_engine.engine.rng import RandomStream

HISTORY_BLOCK = 32
"""Fine steps per history group: earlier groups enter through one GEMM per group."""

PATH_TILE = {"cpu": 16384, "cuda": RNG_SUBBLOCK_PATHS}
"""Paths simulated together (a tile) per device type; tiles start at fixed offsets within an RNG sub-block, so every
matmul has the same shape whatever the block size. CPU: small tiles stay in cache; CUDA: a whole sub-block per tile."""

CPU_TILE_WORKERS = 8
"""At most this many tiles run concurrently on CPU (and never more than ``torch.get_num_threads()``)."""

ALPHA_FLOOR_RATIO = 1e-16
"""Lower clip of the conditional integrated-variance increment a_i, relative to the IG scale constant, so that the MSH
ratio a = y * ig_scale / a_i stays below ~1e18 and a (a + 2) finite in float32 (a_i <= 0 has not been observed)."""


def kbar(t: torch.Tensor, alpha: float) -> torch.Tensor:
    """Integrated fractional kernel: t^alpha / Gamma(alpha + 1)."""
    return t.pow(alpha) / math.gamma(alpha + 1.0)


class RoughHeston(Model):
    """Rough Heston (El Euch-Rosenbaum), simulated by the iVi scheme on the full Volterra kernel."""

    model_name: ClassVar[str] = "rough_heston"
    description: ClassVar[str] = (
        "Rough Heston: V_t = v0 + K*(kappa(theta - V) dt + sigma sqrt(V) dB), K(t) = t^(alpha-1)/Gamma(alpha), "
        "dX = -V/2 dt + sqrt(V) dW, d<W,B> = rho dt; iVi scheme (inverse-Gaussian integrated variance); "
        "dt = year fraction per model step"
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("kappa", 0.0, math.inf, description="mean-reversion speed (1/year)", default_range=(0.1, 3.0)),
        Parameter(
            "theta", 0.0, math.inf, lower_open=True, description="long-run variance level", default_range=(0.01, 0.1)
        ),
        Parameter(
            "sigma", 0.0, math.inf, lower_open=True, description="volatility of variance", default_range=(0.1, 1.0)
        ),
        Parameter("rho", -1.0, 1.0, description="correlation of return and variance shocks", default_range=(-0.9, 0.0)),
        Parameter(
            "alpha",
            0.5,
            1.0,
            lower_open=True,
            upper_open=True,
            description="kernel exponent alpha = H + 1/2 (Hurst index H in (0, 0.5))",
            default_range=(0.55, 0.9),
        ),
        Parameter("v0", 0.0, math.inf, lower_open=True, description="initial variance", default_range=(0.01, 0.1)),
    )
    settings: ClassVar[tuple[str, ...]] = ("dt", "substeps")
    default_settings: ClassVar[Mapping[str, Any]] = {"dt": 1.0 / 252.0, "substeps": 1}

    @classmethod
    def check_parameters(cls, params: Mapping[str, Any]) -> dict[str, float]:
        """As :meth:`Model.check_parameters`; an ``alpha`` error also states the Hurst-index bound."""
        try:
            return super().check_parameters(params)
        except ValueError as err:
            if "'alpha'" in str(err):
                raise ValueError(f"{err} (alpha = H + 1/2: the Hurst index H must lie in (0, 0.5))") from None
            raise

    def block_bytes_per_path(self, num_fine_steps: int) -> int:
        """Peak bytes per block path as the engine runs it: the block's random numbers (3 per fine step, transformed in
        place) plus the MSH odds and history of the tile in flight (2 per fine step and tile path), the history group
        and temporaries. CPU: the engine calls one sub-block at a time with single-threaded ops, so one tile of 16384
        paths per 65536-path sub-block is in flight (0.5 per block path; 0.92 GB measured for 1008 steps, as estimated);
        CUDA: one tile is a whole sub-block, so at most 2 per block path (a block holds >= 1 sub-block)."""
        tile_share = 2.0 * PATH_TILE["cpu"] / RNG_SUBBLOCK_PATHS if self.device.type == "cpu" else 2.0
        per_step = 3.0 + tile_share
        return int(self.dtype.itemsize * (per_step * num_fine_steps + 2 * HISTORY_BLOCK + 32)) + 64

    # ---- simulation --------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        self._constants_cache: dict[tuple[int, str, torch.dtype], dict[str, Any]] = {}

    def _constants(self, num_steps: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """Per-(parameter set, step count) constants (cached), computed in float64, cast to the simulation dtype."""
        key = (num_steps, str(device), dtype)
        if key not in self._constants_cache:
            self._constants_cache.clear()  # one entry is enough: every block of a run uses the same step count
            self._constants_cache[key] = self._compute_constants(num_steps, device, dtype)
        return self._constants_cache[key]

    def _compute_constants(self, num_steps: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """The history holds D_j = dU_j - a_j (= Kbar(h) Y_j), so the Toeplitz weights carry the factor 1 / Kbar(h)."""
        p = self.params
        alpha, kappa, theta, sigma, v0, rho = p["alpha"], p["kappa"], p["theta"], p["sigma"], p["v0"], p["rho"]
        h = self.dt / self.substeps
        f64 = torch.float64
        t = torch.arange(num_steps + 1, dtype=f64) * h
        g0 = v0 * t + kappa * theta * t.pow(alpha + 1.0) / math.gamma(alpha + 2.0)
        k_grid = kbar(t, alpha)  # Kbar(m h), m = 0..n
        k1 = float(k_grid[1])
        weights = (k_grid[1:] - k_grid[:-1]) / k1  # weights[m] = (Kbar((m+1)h) - Kbar(m h)) / Kbar(h); lags m >= 1
        lag = torch.arange(num_steps).view(1, -1) - torch.arange(num_steps).view(-1, 1)  # lag[j, i] = i - j
        toeplitz = torch.where(lag > 0, weights[lag.clamp(min=0)], torch.zeros((), dtype=f64))  # [j, i] = w_{i-j}
        one_plus = 1.0 + kappa * k1
        ig_scale = (sigma * k1) ** 2 / (2.0 * one_plus)  # MSH: a = mu y / (2 lambda) = y * ig_scale / a_i
        dz_scale = one_plus / (sigma * k1)  # dZ = dz_scale * (dU - mu),  mu = a_i / one_plus
        return {
            "g0_increments": (g0[1:] - g0[:-1]).to(device, dtype),
            "toeplitz_t": toeplitz.t().contiguous().to(device, dtype),  # [i, j] = w_{i-j} for j < i
            "reversed_weights": weights.flip(0).contiguous().to(device, dtype),  # [k] = w_{n-1-k}
            "inv_one_plus": 1.0 / one_plus,
            "ig_scale": ig_scale,
            "a_floor": ig_scale * ALPHA_FLOOR_RATIO,
            # dX = rho dZ - dU/2 + rho_perp sqrt(dU) N = du_coef * dU + a_coef * a_i + rho_perp sqrt(dU) N
            "du_coef": rho * dz_scale - 0.5,
            "a_coef": -rho * dz_scale / one_plus,
            "rho_perp": math.sqrt(max(0.0, 1.0 - rho**2)),
        }

    def simulate_block(self, stream: RandomStream, record_steps: Sequence[int]) -> torch.Tensor:
        """Cumulative log-returns after each fine step count in ``record_steps``: tensor (len(record_steps), paths)."""
        steps = [int(s) for s in record_steps]
        if not steps or any(s < 1 for s in steps) or sorted(set(steps)) != steps:
            raise ValueError(f"record_steps must be sorted, unique and >= 1, got {list(record_steps)}")
        num_steps = steps[-1]
        device, dtype = stream.device, stream.dtype
        # The draw sequence depends only on num_steps (never on the number of paths): reproducible for any blocking.
        normals = stream.normal(2, num_steps)
        uniforms = stream.uniform(num_steps)
        const = self._constants(num_steps, device, dtype)
        # Each RNG sub-block's draws (fixed shape, iid) are read time-major: its P_sub * 2n normals as (2, n, P_sub) and
        # its P_sub * n uniforms as (n, P_sub), so every step reads contiguous rows without a transpose. The assignment
        # of numbers to paths depends only on the sub-block's size, never on the block size.
        tile_paths = PATH_TILE.get(device.type, RNG_SUBBLOCK_PATHS)
        tiles: list[tuple[slice, torch.Tensor, torch.Tensor]] = []
        for sub in stream.subblock_slices():
            sub_paths = sub.stop - sub.start
            sub_normals = normals[sub].view(2, num_steps, sub_paths)  # [0] drives the IG, [1] the orthogonal noise
            sub_uniforms = uniforms[sub].view(num_steps, sub_paths)  # MSH acceptance
            for start in range(0, sub_paths, tile_paths):
                cols = slice(start, min(start + tile_paths, sub_paths))
                rows = slice(sub.start + cols.start, sub.start + cols.stop)
                tiles.append((rows, sub_normals[:, :, cols], sub_uniforms[:, cols]))
        out = torch.empty((len(steps), stream.num_paths), device=device, dtype=dtype)

        def run_tile(tile: tuple[slice, torch.Tensor, torch.Tensor]) -> None:
            rows, tile_normals, tile_uniforms = tile
            out[:, rows] = self._simulate_tile(tile_normals, tile_uniforms, steps, const)

        if device.type != "cpu":
            for tile in tiles:
                run_tile(tile)
            return out
        # CPU: tiles run in parallel Python threads (torch releases the GIL), each op single-threaded. Tiles are
        # independent and each is computed by the same ops whatever the thread, so results do not depend on workers.
        workers = min(torch.get_num_threads(), len(tiles), CPU_TILE_WORKERS)
        with _single_cpu_thread():
            if workers <= 1:
                for tile in tiles:
                    run_tile(tile)
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(run_tile, tiles))
        return out

    @staticmethod
    def _simulate_tile(
        normals: torch.Tensor, uniforms: torch.Tensor, steps: list[int], c: dict[str, Any]
    ) -> torch.Tensor:
        """iVi on one tile: ``normals`` (2, n, P) and ``uniforms`` (n, P), time-major (transformed in place)."""
        num_steps = steps[-1]
        num_paths = normals.shape[2]
        device, dtype = normals.device, normals.dtype
        ig_y = normals[0].square_().mul_(c["ig_scale"])  # (n, P): y * ig_scale of the MSH sampler
        ret_noise = normals[1].mul_(c["rho_perp"])  # (n, P): rho_perp * N
        odds = torch.div(uniforms, uniforms.neg().add_(1.0))  # U / (1 - U): accept mu / r iff U (1 + r) <= r
        history = torch.empty((num_steps, num_paths), device=device, dtype=dtype)  # D_j = dU_j - a_j
        x = torch.zeros(num_paths, device=device, dtype=dtype)
        out = torch.empty((len(steps), num_paths), device=device, dtype=dtype)
        record_row = {s - 1: row for row, s in enumerate(steps)}
        g0_inc, toeplitz_t, rev_weights = c["g0_increments"], c["toeplitz_t"], c["reversed_weights"]
        for block_start in range(0, num_steps, HISTORY_BLOCK):
            block_stop = min(block_start + HISTORY_BLOCK, num_steps)
            # a_i for the whole group from the deterministic part and all earlier groups: one GEMM (B, s) @ (s, P)
            base = g0_inc[block_start:block_stop].unsqueeze(1).expand(-1, num_paths).contiguous()
            if block_start > 0:
                base.addmm_(toeplitz_t[block_start:block_stop, :block_start], history[:block_start])
            for i in range(block_start, block_stop):
                a_i = base[i - block_start]
                if i > block_start:  # earlier steps of this group: w_{i-j} for j = block_start..i-1
                    lag_weights = rev_weights[num_steps - 1 - (i - block_start) : num_steps - 1]  # w_{i-bs} .. w_1
                    a_i.addmv_(history[block_start:i].t(), lag_weights)
                a_i.clamp_(min=c["a_floor"])
                # Michael-Schucany-Haas: dU = mu / r  (prob r / (1 + r))  or  mu * r,  r = 1 + a + sqrt(a (a + 2))
                ig_a = ig_y[i] / a_i
                r = (ig_a + 2.0).mul_(ig_a).sqrt_().add_(ig_a).add_(1.0)
                mu = a_i * c["inv_one_plus"]
                accept_small = odds[i] <= r
                small_root = mu / r
                d_u = torch.where(accept_small, small_root, mu.mul_(r))
                torch.sub(d_u, a_i, out=history[i])
                x.add_(d_u, alpha=c["du_coef"]).add_(a_i, alpha=c["a_coef"]).addcmul_(d_u.sqrt_(), ret_noise[i])
                row = record_row.get(i)
                if row is not None:
                    out[row] = x
        return out


@contextmanager
def _single_cpu_thread() -> Iterator[None]:
    """Single-threaded torch ops on CPU: the step loop's ops act on <= 16384 elements, where intra-op threading does
    not pay, and MKL-VML ops (sqrt) with two threads on a loaded machine were measured 100x slower (9 ms vs 13 us)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
