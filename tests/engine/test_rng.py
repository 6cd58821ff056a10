"""Counter-based random numbers: Philox4x32-10 against Random123's known answers, the torch implementation against
the reference on random counters, the transforms, the draw layout and the key checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from density_engine.engine.counters import DrawLayout, philox4x32_reference, philox_key
from density_engine.engine.rng import box_muller, philox4x32, step_draws, uniform_from_word, uniforms

# Random123 kat_vectors, philox4x32_10: (counter, key, expected output), words in Random123 order
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_known_answer_vectors(counter, key, expected) -> None:
    assert philox4x32_reference(counter, key) == expected
    as_tensors = philox4x32(*(torch.tensor([c], dtype=torch.int64) for c in counter), *key)
    assert tuple(int(w) for w in as_tensors) == expected
    assert philox4x32(*counter, *key) == expected  # plain Python ints take the same code path


def test_torch_words_equal_the_reference_on_random_counters() -> None:
    rng = np.random.default_rng(3)
    counters = rng.integers(0, 2**32, size=(500, 4), dtype=np.int64)
    keys = rng.integers(0, 2**32, size=(500, 2), dtype=np.int64)
    words = philox4x32(
        *(torch.from_numpy(counters[:, i]) for i in range(4)), *(torch.from_numpy(keys[:, i]) for i in range(2))
    )
    got = torch.stack(words, 1).numpy()
    expected = np.array([philox4x32_reference(tuple(c), tuple(k)) for c, k in zip(counters, keys, strict=True)])
    assert np.array_equal(got, expected)
    assert got.min() >= 0 and got.max() < 2**32


def test_uniform_transform_is_exact_and_in_range() -> None:
    words = torch.tensor([0, 1, 2**24, 2**32 - 129, 2**32 - 128, 2**32 - 1], dtype=torch.int64)
    u64 = uniform_from_word(words, torch.float64)
    assert u64.tolist() == [(2 * w + 1) / 2**33 for w in words.tolist()]  # exact in float64
    assert float(u64.min()) > 0 and float(u64.max()) < 1
    u32 = uniform_from_word(words, torch.float32)
    assert float(u32[0]) == 2.0**-33 and float(u32.min()) > 0
    assert float(u32[-1]) == 1.0 and float(u32[-2]) == 1.0 and float(u32[-3]) < 1.0  # (0, 1] in float32
    assert torch.equal(u32, u64.to(torch.float32))  # one correctly rounded conversion either way


def test_box_muller_moments() -> None:
    """Mean 0, variance 1, no correlation between the two halves; 200k pairs, tolerance 5 standard errors."""
    u = uniforms(1, 2, torch.arange(200_000), step=0)
    z0, z1 = box_muller(u[:, 0], u[:, 1])
    n = z0.numel()
    for z in (z0, z1):
        assert abs(float(z.mean())) < 5 / math.sqrt(n)
        assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
        assert abs(float((z**4).mean()) - 3) < 5 * math.sqrt(96 / n)  # Var(z^4) = 105 - 9
    assert abs(float((z0 * z1).mean())) < 5 / math.sqrt(n)


def test_stream_values_are_pinned() -> None:
    """The first uniforms of a stream, pinned: a change of Philox, the key/counter layout or the uniform transform
    fails here instead of silently changing every chunk. (Integer words and uniforms are exact everywhere.)"""
    u = uniforms(seed=5, param_id=9, paths=[0, 1, 2, 10**6], step=3)
    # words of counter (path, step=3, block=0, stream=0) under key (5, 9); u = (2 w + 1) / 2**33 exactly
    pinned = {0: (3885932716, 4139174119, 3145102251, 642952630), 3: (3752116642, 3167740074, 4276522882, 2700576756)}
    for row, words in pinned.items():
        assert (u[row] * 2**33).tolist() == [2 * w + 1 for w in words]
        assert philox4x32_reference((int([0, 1, 2, 10**6][row]), 3, 0, 0), (5, 9)) == words
    assert torch.equal(u[:3], uniforms(5, 9, [0, 1, 2], 3))  # same coordinates, same numbers


def test_coordinates_give_distinct_streams() -> None:
    base = uniforms(5, 9, torch.arange(100), step=0)
    for other in (uniforms(6, 9, torch.arange(100), 0), uniforms(5, 10, torch.arange(100), 0),
                  uniforms(5, 9, torch.arange(100), 1), uniforms(5, 9, torch.arange(100), 0, stream=1),
                  uniforms(5, 9, torch.arange(1, 101), 0)):  # fmt: skip
        assert not torch.equal(base, other)
    assert torch.equal(uniforms(5, 9, torch.arange(100), 0, num_blocks=2)[:, :4], base)


def test_draw_layout_word_assignment() -> None:
    heston = DrawLayout(("normal", "normal", "uniform"))
    assert [(s.kind, s.words, s.half) for s in heston.slots] == [
        ("normal", (0, 1), "cos"),
        ("normal", (0, 1), "sin"),
        ("uniform", (2,), ""),
    ]
    assert (heston.num_words, heston.num_blocks) == (3, 1)
    bergomi = DrawLayout(("normal",) * 3)
    assert [s.words for s in bergomi.slots] == [(0, 1), (0, 1), (2, 3)] and bergomi.num_blocks == 1
    assert DrawLayout(("uniform", "normal", "normal", "normal", "normal")).num_blocks == 2
    assert [s.words for s in DrawLayout(("uniform", "uniform")).slots] == [(0,), (1,)]
    with pytest.raises(ValueError, match="draw kinds"):
        DrawLayout(("gamma",))


def test_step_draws_follow_the_layout() -> None:
    paths = torch.arange(1000)
    k0, k1 = philox_key(7, 3)
    draws = step_draws(DrawLayout(("normal", "normal", "uniform")), paths, 4, 0, k0, k1, torch.float64)
    u = uniforms(7, 3, paths, 4)
    z0, z1 = box_muller(u[:, 0], u[:, 1])
    assert torch.equal(draws[0], z0) and torch.equal(draws[1], z1) and torch.equal(draws[2], u[:, 2])


@pytest.mark.parametrize(("seed", "param_id"), [(-1, 0), (2**32, 0), (0, 2**32), (1.5, 0), (True, 0)])
def test_key_words_must_fit_32_bits(seed, param_id) -> None:
    with pytest.raises(ValueError, match=r"in \[0, 2\*\*32 - 1\]"):
        philox_key(seed, param_id)
    assert philox_key(20260101, 4_000_000_000) == (20260101, 4_000_000_000)
