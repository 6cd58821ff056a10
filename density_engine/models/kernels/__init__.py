"""Step kernels: the torch side of the models, pure functions of random numbers (no RNG, no I/O, no engine imports).

A scheme is a :class:`StepKernel` subclass; its model declaration names it in ``Model.kernel``. The engine
(:mod:`density_engine.engine.paths`) owns everything else: it draws the step's random numbers from the counter-based
stream (``draws``, in order), holds the per-path ``state``, keeps the Volterra history and hands each step
``conv_i = sum_{j<i} K[i, j] d_j`` (``history = True``), records ``outputs`` at the requested steps, and compiles a
fixed number of consecutive steps together with the random-number generation into one fused kernel.

Rules for ``step`` (so that eager and compiled runs, every block size and every device agree):

* only torch tensor ops on the given tensors, no Python control flow on tensor values, no in-place updates of inputs;
* every per-path tensor has shape ``(paths,)``; scalars and the step's constants are 0-d tensors (``scalar(...)``);
* random numbers only from ``draws``: one tensor per declared draw, standard normal or uniform on (0, 1] (1 possible
  in float32), independent across draws, steps, paths and streams.
"""

from __future__ import annotations

from typing import ClassVar

import torch

Tensors = tuple[torch.Tensor, ...]


class StepKernel:
    """One time step of a scheme, for all paths of a block at once."""

    draws: ClassVar[tuple[str, ...]]
    """Random inputs per path and step, in order: ``"normal"`` or ``"uniform"``."""
    state: ClassVar[tuple[str, ...]]
    """Names of the per-path state tensors (what :meth:`initial_state` returns and :meth:`step` carries)."""
    outputs: ClassVar[tuple[str, ...]] = ("log_return",)
    """Per-path values :meth:`step` returns after each step (recordable); the first is the cumulative log-return."""
    scalars: ClassVar[tuple[str, ...]]
    """Names of ``SchemeTables.scalars`` the kernel uses, in the order of the ``scalars`` tensor."""
    step_constants: ClassVar[tuple[str, ...]] = ()
    """Names of ``SchemeTables.per_step`` the kernel uses, in the order of the ``row`` tensor of a step."""
    history: ClassVar[bool] = False
    """True: :meth:`step` returns a history value ``d_i`` and receives ``conv_i = sum_{j<i} K[i, j] d_j``."""

    @classmethod
    def named(cls, scalars: torch.Tensor) -> dict[str, torch.Tensor]:
        """The packed ``scalars`` tensor as ``{name: 0-d tensor}`` (names of :attr:`scalars`)."""
        return {name: scalars[i] for i, name in enumerate(cls.scalars)}

    @classmethod
    def initial_state(cls, scalars: torch.Tensor, num_paths: int) -> Tensors:
        """The state at time 0 for ``num_paths`` paths (on the device and in the dtype of ``scalars``)."""
        raise NotImplementedError

    @classmethod
    def step(
        cls,
        state: Tensors,
        draws: list[torch.Tensor],
        conv: torch.Tensor | None,
        row: torch.Tensor | None,
        scalars: torch.Tensor,
    ) -> tuple[Tensors, torch.Tensor | None, Tensors]:
        """One step: ``(new state, history value d_i or None, outputs after the step)``.

        ``row`` holds the step's constants (``step_constants`` order) or is None without step constants; ``conv``
        is None for kernels without history.
        """
        raise NotImplementedError
