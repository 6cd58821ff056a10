"""Fixtures of the dataset/publish tests: chunk files and the fake Hub wired into the Hub clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .chunks import chunk_table, write_chunk
from .fakehub import FakeHub

WRITE_TOKEN = "hf_writer_s3cr3t"
READ_TOKEN = "hf_reader_s3cr3t"
# 4 parameter sets per shard, so that the small test grids span several shards.
PARAMS_PER_SHARD = 4


@pytest.fixture
def make_chunks(tmp_path: Path) -> Callable[..., list[Path]]:
    """``make_chunks(model, [[0, 1, 2, 3], [4, 5]])`` → one chunk file per list of param_ids."""

    def make(model: str, groups: list[list[int]], first_chunk: int = 0, **kwargs: object) -> list[Path]:
        return [
            write_chunk(
                tmp_path / "results" / "chunks" / model / f"chunk_{first_chunk + i:05d}.parquet",
                chunk_table(model, ids, **kwargs),
            )
            for i, ids in enumerate(groups)
        ]

    return make


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The fake Hub, with huggingface_hub and datasets pointed at it (hf-hub.md §7.4) and HF_TOKEN set to a writer."""
    import datasets.config
    import huggingface_hub.constants as constants

    with FakeHub(tmp_path / "hub", write_tokens=[WRITE_TOKEN], read_tokens=[READ_TOKEN]) as hub:
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.endpoint)
        monkeypatch.setattr(
            datasets.config, "HUB_DATASETS_URL", hub.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
        )
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield hub
