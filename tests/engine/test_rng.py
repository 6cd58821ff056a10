"""RandomStream: per-sub-block generators make draws independent of how paths are split into blocks."""

from __future__ import annotations

import pytest
import torch

from density_engine.engine.rng import RNG_SUBBLOCK_PATHS, RandomStream, subblock_ranges, subblock_seed

S = RNG_SUBBLOCK_PATHS


def test_subblock_seed_is_stable_and_distinct() -> None:
    # pinned values: changing the hash string or function would silently change every published dataset
    assert subblock_seed(1, 2, 3) == 3267657545889451919
    assert subblock_seed(20260101, 0, 0) == 8651545516333115285
    seeds = {subblock_seed(s, p, k) for s in range(3) for p in range(3) for k in range(3)}
    assert len(seeds) == 27
    assert all(0 <= x < 2**63 for x in seeds)


def test_stream_values_are_pinned() -> None:
    """The first uniforms of a stream, pinned: a change of torch's CPU generator, of the sub-block seeding or of the
    draw layout fails here instead of silently changing every chunk. (Uniforms are exact functions of the mt19937
    words, so they do not depend on the CPU's vector instructions; normals go through log/cos and might.)"""
    single = RandomStream(seed=5, param_id=9, path_start=0, path_stop=4, total_paths=4).uniform(2)
    assert single.tolist() == [
        [0.5597874522209167, 0.8035452961921692],
        [0.715390682220459, 0.36894041299819946],
        [0.1487746238708496, 0.7708426117897034],
        [0.5950779914855957, 0.4440843462944031],
    ]
    double = RandomStream(seed=5, param_id=9, path_start=0, path_stop=4, total_paths=4, dtype=torch.float64)
    assert double.uniform(1).flatten().tolist() == [
        0.47829985768263283,
        0.7231254863905542,
        0.1901971507274408,
        0.7606239457504532,
    ]


def test_subblock_ranges() -> None:
    assert subblock_ranges(1) == [(0, 1)]
    assert subblock_ranges(2 * S + 5) == [(0, S), (S, 2 * S), (2 * S, 2 * S + 5)]
    with pytest.raises(ValueError, match="num_paths"):
        subblock_ranges(0)


def _draws(start: int, stop: int, total: int) -> list[torch.Tensor]:
    stream = RandomStream(seed=5, param_id=9, path_start=start, path_stop=stop, total_paths=total)
    draws = [stream.normal(3), stream.uniform(2, 2), stream.gamma(2.5, 4), stream.normal()]
    # step-major draws are (steps, paths): transpose so that paths are rows like the others
    return [
        *draws,
        stream.uniform_steps(3).T,
        stream.normal_steps(2).T,
        stream.normal(2, out=torch.empty(stop - start, 2)),
    ]


def test_draws_do_not_depend_on_block_split() -> None:
    total = 2 * S + 100
    whole = _draws(0, total, total)
    first, second = _draws(0, S, total), _draws(S, total, total)
    for w, a, b in zip(whole, first, second, strict=True):
        assert w.shape[0] == total
        assert torch.equal(w, torch.cat([a, b]))


def test_streams_differ_by_param_id_and_seed() -> None:
    a = RandomStream(5, 9, 0, 100, 100).normal(4)
    b = RandomStream(5, 10, 0, 100, 100).normal(4)
    c = RandomStream(6, 9, 0, 100, 100).normal(4)
    assert not torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, RandomStream(5, 9, 0, 100, 100).normal(4))


def test_uniform_range_and_dtype() -> None:
    u = RandomStream(1, 0, 0, 5000, 5000, dtype=torch.float64).uniform(10)
    assert u.dtype == torch.float64 and u.shape == (5000, 10)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0


def test_gamma_mean_matches_concentration() -> None:
    # Gamma(k, 1): mean k, sd sqrt(k); 200k draws -> se of the mean sqrt(2.5/2e5) = 3.5e-3; tolerance 5 se
    g = RandomStream(3, 0, 0, 200_000, 200_000, dtype=torch.float64).gamma(2.5)
    assert abs(float(g.mean()) - 2.5) < 5 * (2.5 / 200_000) ** 0.5
    with pytest.raises(ValueError, match="concentration"):
        RandomStream(3, 0, 0, 10, 10).gamma(0.0)


@pytest.mark.parametrize(
    ("start", "stop", "total", "message"),
    [(1, 10, 10, "multiple"), (0, 11, 10, "bad path range"), (0, S + 1, 2 * S, "boundary"), (5, 5, 10, "multiple")],
)
def test_bad_ranges_raise(start: int, stop: int, total: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomStream(0, 0, start, stop, total)


def test_split_shares_generators_and_out_is_checked() -> None:
    total = RNG_SUBBLOCK_PATHS + 10
    whole = RandomStream(1, 2, 0, total, total)
    parts = RandomStream(1, 2, 0, total, total).split()
    assert [(p.path_start, p.path_stop) for p in parts] == [(0, RNG_SUBBLOCK_PATHS), (RNG_SUBBLOCK_PATHS, total)]
    first = whole.uniform_steps(4)
    assert torch.equal(first, torch.cat([p.uniform_steps(4) for p in parts], dim=1))
    assert torch.equal(whole.normal(2), torch.cat([p.normal(2) for p in parts]))  # the generators moved on together
    with pytest.raises(ValueError, match="shape"):
        whole.uniform(3, out=torch.empty(total, 2))
    with pytest.raises(ValueError, match="contiguous"):
        whole.uniform_steps(2, out=torch.empty(total, 2).T)
