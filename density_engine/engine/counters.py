"""Counter-based random numbers, torch-free part: the Philox4x32-10 key and counter layout, the draw layout of a step,
and a pure-Python reference implementation (the torch version is :mod:`density_engine.engine.rng`).

Every random 32-bit word of a simulation is ``Philox4x32-10(counter, key)`` (Salmon et al. 2011, Random123) with

* key ``(k0, k1) = (seed, param_id)``: both must lie in ``[0, 2**32)`` (checked, never hashed or wrapped), so every
  parameter set of every seed has its own stream;
* counter ``(c0, c1, c2, c3) = (path, step // steps_per_block, block, stream)``: the global path index within the
  parameter set, the fine time step (or step pair/quad, below), the Philox block within the step (each block gives 4
  words) and the sub-simulation (``stream`` 0 is the main simulation; other ids give independent streams for the same
  paths, e.g. per-horizon grids).

A step that needs ``w`` words takes ``ceil(w / 4)`` blocks of its own (``steps_per_block = 1``), except that steps
needing one or two words share a block with their neighbours: ``steps_per_block = 4 // w`` consecutive steps
``k s, ..., k s + s - 1`` use the block with counter ``(path, k, 0, stream)``, step ``k s + j`` taking words
``j w, ..., j w + w - 1`` (a GARCH step with two uniforms uses half a block).

Word order is Random123's: ``philox4x32(ctr=(c0, c1, c2, c3), key=(k0, k1))`` returns ``(x0, x1, x2, x3)``, checked
against Random123's known-answer vectors (tests/engine/test_rng.py). Because a word depends only on these logical
coordinates, the numbers a path sees are the same on every device, for every block size, chunking and path order.

Transforms (fixed, rejection-free, one word per uniform):

* uniform: ``u = fl(2 w + 1) * 2**-33``, i.e. ``(w + 1/2) / 2**32`` rounded once to the simulation dtype; in (0, 1)
  in float64 (exact) and in (0, 1] in float32 (it rounds to 1 for ``w >= 2**32 - 128``);
* normal pair (Box-Muller): ``r = sqrt(-2 log u_a)``, ``(r cos(2 pi u_b), r sin(2 pi u_b))``.

The draws of a step (:class:`DrawLayout`) are assigned to words in order: a uniform takes the next word; a normal
takes the sine half of the previous pair if one is pending, else the next two words (cos half now, sine half kept for
the next normal). ``(normal, normal, uniform)`` uses words 0-1 for both normals and word 2 for the uniform.
"""

from __future__ import annotations

from dataclasses import dataclass

from density_engine.numeric import as_int

WORD_MASK = 0xFFFFFFFF
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
MAX_WORD = WORD_MASK
"""Seeds, parameter ids, path indices, steps, blocks and stream ids must each fit a 32-bit word."""
MAX_NUM_PATHS = MAX_WORD - 63
"""Paths per parameter set: path indices (blocks are padded to 64 paths) must fit a counter word."""

RNG_SCHEME = (
    "philox4x32-10 key=(seed,param_id) counter=(path,step,block,stream); uniform=(2w+1)*2^-33; normal=Box-Muller"
)
"""A short description of the stream layout, written to chunk metadata (key ``rng``)."""

DRAW_KINDS = ("normal", "uniform")


def philox_key(seed: int, param_id: int) -> tuple[int, int]:
    """The Philox key ``(seed, param_id)`` as Python ints; ``ValueError`` unless both are integers (Python or numpy, not
    bool) in ``[0, 2**32)``."""
    key = []
    for name, value in (("seed", seed), ("param_id", param_id)):
        number = as_int(value)
        if number is None or not 0 <= number <= MAX_WORD:
            raise ValueError(f"{name} must be an integer in [0, 2**32 - 1] (a Philox key word), got {value!r}")
        key.append(number)
    return key[0], key[1]


def philox4x32_reference(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """Philox4x32-10 on Python integers (the specification the torch version is tested against)."""
    c0, c1, c2, c3 = (int(c) & WORD_MASK for c in counter)
    k0, k1 = (int(k) & WORD_MASK for k in key)
    for round_index in range(PHILOX_ROUNDS):
        if round_index:
            k0, k1 = (k0 + PHILOX_W0) & WORD_MASK, (k1 + PHILOX_W1) & WORD_MASK
        p0, p1 = PHILOX_M0 * c0, PHILOX_M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & WORD_MASK, (p0 >> 32) ^ c3 ^ k1, p0 & WORD_MASK)
    return c0, c1, c2, c3


@dataclass(frozen=True)
class DrawSlot:
    """Where one draw of a step comes from: ``kind``, the word(s) it uses and, for a normal, the Box-Muller half."""

    kind: str
    words: tuple[int, ...]
    half: str = ""  # "cos" or "sin" for normals


@dataclass(frozen=True)
class DrawLayout:
    """The random inputs of one time step, in order (``"normal"`` or ``"uniform"``), and their words."""

    kinds: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in DRAW_KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"draw kinds must be a non-empty sequence of {DRAW_KINDS}, got {self.kinds}")

    @property
    def slots(self) -> tuple[DrawSlot, ...]:
        """The word assignment (module docstring)."""
        slots: list[DrawSlot] = []
        next_word = 0
        pending: tuple[int, int] | None = None
        for kind in self.kinds:
            if kind == "uniform":
                slots.append(DrawSlot(kind, (next_word,)))
                next_word += 1
            elif pending is not None:
                slots.append(DrawSlot(kind, pending, "sin"))
                pending = None
            else:
                pending = (next_word, next_word + 1)
                slots.append(DrawSlot(kind, pending, "cos"))
                next_word += 2
        return tuple(slots)

    @property
    def num_words(self) -> int:
        """32-bit words consumed per path and step."""
        return max(w for slot in self.slots for w in slot.words) + 1

    @property
    def num_blocks(self) -> int:
        """Philox blocks (4 words each) per path and step (1 when steps share a block)."""
        return -(-self.num_words // 4)

    @property
    def steps_per_block(self) -> int:
        """Consecutive steps sharing one Philox block: 4 // words for one or two words per step, else 1."""
        return 4 // self.num_words if self.num_words <= 2 else 1
