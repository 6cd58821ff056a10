"""Reproducible random numbers for one block of paths: :class:`RandomStream`.

Paths of one parameter set are grouped in fixed *RNG sub-blocks* of :data:`RNG_SUBBLOCK_PATHS` paths (the last
sub-block of a run may be shorter). Sub-block ``k`` of parameter set ``param_id`` under ``seed`` owns a
``torch.Generator`` seeded from a hash of ``(seed, param_id, k)``. A compute block is a whole number of consecutive
sub-blocks, and every draw is made per sub-block with a fixed shape ``(paths_in_subblock, *tail)``. Hence the numbers
a path sees depend only on ``(seed, param_id, path index, call sequence)``: not on the block size, the chunk, or the
position of the parameter set in a chunk. Data-dependent consumption (rejection samplers such as
``torch._standard_gamma``) stays reproducible because it only ever advances the sub-block's own generator.

Limits: CPU (mt19937) and CUDA (Philox) generators are different algorithms, so CPU and CUDA streams differ; CUDA
draws of one shape may also differ between GPUs with different SM counts. Results are bit-identical on rerun on the
same device type (and GPU model) and software stack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

RNG_SUBBLOCK_PATHS: int = 2**16
"""Paths per RNG sub-block. Compute blocks are whole multiples of it. Changing it changes every stream."""

RNG_SCHEME: str = f"torch.Generator per sub-block of {RNG_SUBBLOCK_PATHS} paths, seed=blake2b(seed,param_id,k)"
"""A short description of the stream layout, written to chunk metadata (key ``rng``)."""


def subblock_seed(seed: int, param_id: int, subblock_index: int) -> int:
    """The 63-bit generator seed of sub-block ``subblock_index`` of ``param_id`` under ``seed`` (stable across runs)."""
    key = f"density-engine/v1/{int(seed)}/{int(param_id)}/{int(subblock_index)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & ((1 << 63) - 1)


def subblock_ranges(num_paths: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` path ranges of the RNG sub-blocks of a run of ``num_paths`` paths."""
    if num_paths < 1:
        raise ValueError(f"num_paths must be >= 1, got {num_paths}")
    return [(a, min(a + RNG_SUBBLOCK_PATHS, num_paths)) for a in range(0, num_paths, RNG_SUBBLOCK_PATHS)]


class RandomStream:
    """The random numbers of one compute block (paths ``[path_start, path_stop)``) of one parameter set.

    Every draw returns a tensor of shape ``(num_paths, *tail)`` on ``device`` with ``dtype``; row ``i`` belongs to the
    global path ``path_start + i``. Make the same sequence of calls for every block (the call sequence must not depend
    on ``num_paths``), and results do not depend on how paths are split into blocks.
    """

    def __init__(
        self,
        seed: int,
        param_id: int,
        path_start: int,
        path_stop: int,
        total_paths: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if path_start % RNG_SUBBLOCK_PATHS != 0:
            raise ValueError(f"path_start={path_start} is not a multiple of RNG_SUBBLOCK_PATHS={RNG_SUBBLOCK_PATHS}")
        if not 0 <= path_start < path_stop <= total_paths:
            raise ValueError(f"bad path range [{path_start}, {path_stop}) of {total_paths} paths")
        if path_stop != total_paths and path_stop % RNG_SUBBLOCK_PATHS != 0:
            raise ValueError(f"path_stop={path_stop} must be a sub-block boundary or the total number of paths")
        self.seed = int(seed)
        self.param_id = int(param_id)
        self.path_start = int(path_start)
        self.path_stop = int(path_stop)
        self.device = torch.device(device)
        self.dtype = dtype
        self._ranges: list[tuple[int, int]] = []
        self._generators: list[torch.Generator] = []
        for start in range(path_start, path_stop, RNG_SUBBLOCK_PATHS):
            stop = min(start + RNG_SUBBLOCK_PATHS, path_stop)
            gen = torch.Generator(device=self.device)
            gen.manual_seed(subblock_seed(seed, param_id, start // RNG_SUBBLOCK_PATHS))
            self._ranges.append((start - path_start, stop - path_start))
            self._generators.append(gen)

    @property
    def num_paths(self) -> int:
        """Number of paths in this block."""
        return self.path_stop - self.path_start

    @property
    def num_subblocks(self) -> int:
        """Number of RNG sub-blocks in this block."""
        return len(self._ranges)

    def subblock_slices(self) -> list[slice]:
        """Row slices of the sub-blocks within this block (for per-sub-block compute with fixed shapes, e.g. GEMMs)."""
        return [slice(a, b) for a, b in self._ranges]

    def split(self) -> list[RandomStream]:
        """One stream per RNG sub-block of this block, sharing the generators (drawing from a part advances the
        same generator as drawing from this stream). For cache-friendly per-sub-block compute on CPU."""
        parts = []
        for (a, b), gen in zip(self._ranges, self._generators, strict=True):
            part = RandomStream.__new__(RandomStream)
            part.seed, part.param_id, part.device, part.dtype = self.seed, self.param_id, self.device, self.dtype
            part.path_start, part.path_stop = self.path_start + a, self.path_start + b
            part._ranges, part._generators = [(0, b - a)], [gen]
            parts.append(part)
        return parts

    def _check_out(self, out: torch.Tensor, tail: Sequence[int]) -> torch.Tensor:
        shape = (self.num_paths, *tail)
        if tuple(out.shape) != shape or out.dtype != self.dtype or out.device != self.device:
            raise ValueError(f"out must be a {self.dtype} tensor of shape {shape} on {self.device}")
        if not out.is_contiguous():
            raise ValueError("out must be contiguous")
        return out

    def _empty(self, tail: Sequence[int], dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.empty((self.num_paths, *tail), device=self.device, dtype=dtype or self.dtype)

    def normal(self, *tail: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Standard normal draws of shape ``(num_paths, *tail)`` (into ``out``, a contiguous tensor of that shape,
        if given: the same values as without it)."""
        out = self._empty(tail) if out is None else self._check_out(out, tail)
        for (a, b), gen in zip(self._ranges, self._generators, strict=True):
            out[a:b].normal_(generator=gen)
        return out

    def uniform(self, *tail: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Uniform draws on ``[0, 1)`` of shape ``(num_paths, *tail)`` (use ``1 - u`` for ``(0, 1]``); ``out`` as in
        :meth:`normal`."""
        out = self._empty(tail) if out is None else self._check_out(out, tail)
        for (a, b), gen in zip(self._ranges, self._generators, strict=True):
            out[a:b].uniform_(generator=gen)
        return out

    def normal_steps(self, num_steps: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Standard normal draws in step-major layout ``(num_steps, num_paths)`` (contiguous rows per step; into
        ``out`` if given).

        Each sub-block's generator fills a contiguous ``(num_steps, paths_in_subblock)`` tile, so the values differ
        from :meth:`normal` but are just as independent of the block split.
        """
        return self._steps(num_steps, "normal_", out)

    def uniform_steps(self, num_steps: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Uniform ``[0, 1)`` draws in step-major layout ``(num_steps, num_paths)`` (see :meth:`normal_steps`)."""
        return self._steps(num_steps, "uniform_", out)

    def _steps(self, num_steps: int, method: str, out: torch.Tensor | None) -> torch.Tensor:
        shape = (num_steps, self.num_paths)
        if out is None:
            out = torch.empty(shape, device=self.device, dtype=self.dtype)
        elif tuple(out.shape) != shape or out.dtype != self.dtype or out.device != self.device:
            raise ValueError(f"out must be a {self.dtype} tensor of shape {shape} on {self.device}")
        elif not out.is_contiguous():
            raise ValueError("out must be contiguous")
        if len(self._ranges) == 1:
            getattr(out, method)(generator=self._generators[0])
            return out
        for (a, b), gen in zip(self._ranges, self._generators, strict=True):
            tile = torch.empty((num_steps, b - a), device=self.device, dtype=self.dtype)
            out[:, a:b] = getattr(tile, method)(generator=gen)
        return out

    def gamma(self, concentration: float | torch.Tensor, *tail: int) -> torch.Tensor:
        """Gamma(concentration, scale 1) draws of shape ``(num_paths, *tail)``.

        ``concentration`` is a scalar or a tensor broadcastable to ``(num_paths, *tail)`` (rows indexed by the block's
        paths). Exact (rejection sampler ``torch._standard_gamma``); its data-dependent consumption only advances the
        sub-block's own generator, so it is reproducible.
        """
        shape = (self.num_paths, *tail)
        conc = torch.as_tensor(concentration, device=self.device, dtype=self.dtype).expand(shape)
        if bool((conc <= 0).any()):
            raise ValueError("gamma concentration must be > 0")
        out = self._empty(tail)
        for (a, b), gen in zip(self._ranges, self._generators, strict=True):
            out[a:b] = torch._standard_gamma(conc[a:b].contiguous(), generator=gen)
        return out
