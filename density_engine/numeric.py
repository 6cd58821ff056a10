"""Strict number checks shared by every layer: what counts as an integer or a real number in an input.

Python and numpy integers (``np.int64``, ...) are integers; Python and numpy floats and integers are real numbers; a
0-d numpy array of such a dtype counts as its element. Booleans (``True`` is an ``int`` in Python), strings
(``"0.05"``), ``None``, complex numbers and containers are neither: they are refused rather than converted, so a config
or spec value of the wrong type is an error, not a number.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def _scalar(value: Any) -> Any:
    """The element of a 0-d numpy array of integer or float dtype; anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return value[()]
    return value


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def as_int(value: Any) -> int | None:
    """``value`` as a Python ``int`` if it is an integer (``int`` or a numpy integer scalar, not a bool), else None."""
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def as_real(value: Any) -> float | None:
    """``value`` as a Python ``float`` if it is a real number (int, float or a numpy integer/floating scalar, not a
    bool or a string), else None. Non-finite values are returned as they are (the caller checks the range)."""
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Real):
        return None
    return float(value)
