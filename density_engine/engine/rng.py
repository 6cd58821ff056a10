"""Counter-based random numbers in torch integer ops: Philox4x32-10 and the fixed transforms to uniforms and normals.

Layout, key mapping and transforms are documented in :mod:`density_engine.engine.counters`. The words are 32-bit
values held in int64 tensors (or Python ints for coordinates shared by all paths). The 32 x 32 -> 64-bit products of
Philox are formed without signed overflow: with ``m' = m - 2**32 < 0`` (both multipliers have their top bit set),
``p = a * m'`` lies in ``(-2**63, 0]``, its low word is the low word of ``a * m`` and ``(p >> 32) + a`` (arithmetic
shift) its high word, already in ``[0, 2**32)`` because ``a * m < 2**64``.
So the words are exact integer arithmetic on every backend (eager CPU/CUDA, inductor C++ and Triton) and identical
everywhere; no undefined behaviour is involved. The float transforms use the backend's log/cos/sin/sqrt, so normals
agree across devices and between eager and compiled code only to a few ulps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from density_engine.engine.counters import (
    PHILOX_M0,
    PHILOX_M1,
    PHILOX_ROUNDS,
    PHILOX_W0,
    PHILOX_W1,
    WORD_MASK,
    DrawLayout,
)

Word = torch.Tensor | int

_M0_SIGNED = PHILOX_M0 - 2**32
_M1_SIGNED = PHILOX_M1 - 2**32
_TWO_PI = 2.0 * math.pi


def _mulhilo(a: Word, multiplier_signed: int) -> tuple[Word, Word]:
    product = a * multiplier_signed  # in (-2**63, 0]: no overflow
    return (product >> 32) + a, product & WORD_MASK  # the high word (p >> 32) + a lies in [0, 2**32) already


def philox4x32(c0: Word, c1: Word, c2: Word, c3: Word, k0: Word, k1: Word) -> tuple[Word, Word, Word, Word]:
    """Philox4x32-10 of the counter ``(c0, c1, c2, c3)`` under the key ``(k0, k1)``; arguments are 32-bit words as
    int64 tensors (broadcast together) or Python ints; returns the four output words in Random123 order."""
    for round_index in range(PHILOX_ROUNDS):
        if round_index:
            k0 = (k0 + PHILOX_W0) & WORD_MASK
            k1 = (k1 + PHILOX_W1) & WORD_MASK
        hi0, lo0 = _mulhilo(c0, _M0_SIGNED)
        hi1, lo1 = _mulhilo(c2, _M1_SIGNED)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def uniform_from_word(word: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(2 w + 1) * 2**-33`` rounded once to ``dtype``: in (0, 1) (float64) or (0, 1] (float32); exact integer
    arithmetic, one correctly rounded conversion and a power-of-two scaling, so identical on every backend."""
    return (2 * word + 1).to(dtype) * 2.0**-33


def box_muller(u_radius: torch.Tensor, u_angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent standard normals from two uniforms in (0, 1]: ``r cos(2 pi u_angle), r sin(2 pi u_angle)``
    with ``r = sqrt(-2 log u_radius)``."""
    radius = torch.sqrt(torch.log(u_radius) * -2.0)
    angle = u_angle * _TWO_PI
    return radius * torch.cos(angle), radius * torch.sin(angle)


def step_words(paths: torch.Tensor, step: Word, num_blocks: int, stream: Word, k0: Word, k1: Word) -> list[Word]:
    """The ``4 * num_blocks`` words of the blocks ``(paths, step, 0..num_blocks-1, stream)`` (counter c1 = ``step``)."""
    words: list[Word] = []
    for block in range(num_blocks):
        words.extend(philox4x32(paths, step, block, stream, k0, k1))
    return words


def _draws_from_words(layout: DrawLayout, words: Sequence[Word], dtype: torch.dtype) -> list[torch.Tensor]:
    uniforms: dict[int, torch.Tensor] = {}

    def uniform(index: int) -> torch.Tensor:
        if index not in uniforms:
            uniforms[index] = uniform_from_word(words[index], dtype)  # type: ignore[arg-type]
        return uniforms[index]

    draws: list[torch.Tensor] = []
    pairs: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
    for slot in layout.slots:
        if slot.kind == "uniform":
            draws.append(uniform(slot.words[0]))
            continue
        if slot.words not in pairs:
            pairs[slot.words] = box_muller(uniform(slot.words[0]), uniform(slot.words[1]))
        draws.append(pairs[slot.words][0 if slot.half == "cos" else 1])
    return draws


def group_draws(
    layout: DrawLayout,
    paths: torch.Tensor,
    step0: Word,
    num_steps: int,
    stream: Word,
    k0: Word,
    k1: Word,
    dtype: torch.dtype,
) -> list[list[torch.Tensor]]:
    """The draws of steps ``step0 .. step0 + num_steps - 1`` for the paths ``paths``: per step one ``(len(paths),)``
    tensor per entry of ``layout.kinds``. ``step0`` and ``num_steps`` must be multiples of ``layout.steps_per_block``
    (each shared block is computed once)."""
    per_block = layout.steps_per_block
    if num_steps % per_block:
        raise ValueError(f"num_steps={num_steps} is not a multiple of steps_per_block={per_block}")
    width = layout.num_words
    steps: list[list[torch.Tensor]] = []
    for first in range(0, num_steps, per_block):
        words = step_words(paths, (step0 + first) // per_block, layout.num_blocks, stream, k0, k1)
        for lane in range(per_block):
            steps.append(_draws_from_words(layout, words[lane * width : (lane + 1) * width], dtype))
    return steps


def step_draws(
    layout: DrawLayout,
    paths: torch.Tensor,
    step: int,
    stream: Word,
    k0: Word,
    k1: Word,
    dtype: torch.dtype,
) -> list[torch.Tensor]:
    """The draws of one step (an int) for the paths ``paths``: one tensor per entry of ``layout.kinds``."""
    per_block = layout.steps_per_block
    first = step - step % per_block
    return group_draws(layout, paths, first, per_block, stream, k0, k1, dtype)[step % per_block]


def uniforms(
    seed: int, param_id: int, paths: Sequence[int] | torch.Tensor, step: int, stream: int = 0, num_blocks: int = 1
) -> torch.Tensor:
    """The uniforms (float64) of ``num_blocks`` Philox blocks of one step for the given global path indices:
    tensor ``(len(paths), 4 * num_blocks)`` (for tests and inspection)."""
    from density_engine.engine.counters import philox_key

    k0, k1 = philox_key(seed, param_id)
    index = torch.as_tensor(paths, dtype=torch.int64)
    words = step_words(index, step, num_blocks, stream, k0, k1)
    return torch.stack([uniform_from_word(torch.as_tensor(w).expand(index.shape), torch.float64) for w in words], 1)
