"""The Monte Carlo engine: counter-based random numbers, path blocks, compiled step groups, quantiles, chunk I/O.

``Simulation`` is imported lazily so that the torch-free modules (``chunkio``, ``counters``) stay torch-free.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Simulation"]


def __getattr__(name: str) -> Any:
    if name == "Simulation":
        from density_engine.engine.simulation import Simulation

        return Simulation
    raise AttributeError(name)
