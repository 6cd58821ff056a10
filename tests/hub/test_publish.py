"""Publishing with the real huggingface_hub client to the fake Hub: idempotency, increments, tags, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from density_engine.cli import main
from density_engine.dataset.build import build_dataset
from density_engine.dataset.publish import PublishError, check_publish_access, publish_dataset

from .conftest import PARAMS_PER_SHARD, READ_TOKEN, WRITE_TOKEN
from .fakehub import FakeHub, git_blob_oid

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # inside huggingface_hub

GARCH = "gjrgarch_normalized"
HESTON = "rough_heston"
REPO = "org/densities"
WRITE_TOKEN_HEADER = f"Bearer {WRITE_TOKEN}"[:12]  # the fake logs 12 characters


def config(tag: str, private: bool = False) -> dict:
    return {"models": {}, "hf": {"repo_id": REPO, "tag": tag, "private": private, "revision": "main"}}


def publish_cli(folder: Path, tag: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["dataset", "publish", "--folder", str(folder), "--repo-id", REPO, "--tag", tag, *extra],
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def local_data(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_publish_is_idempotent_incremental_and_loadable(tmp_path: Path, make_chunks, fake_hub: FakeHub) -> None:
    import datasets

    folder = tmp_path / "hf"
    chunks = make_chunks(GARCH, [[0, 1, 2, 3], [4, 5, 6, 7]]) + make_chunks(HESTON, [[0, 1, 2]])
    build_dataset(chunks, folder, config("v0.1.0"), params_per_shard=PARAMS_PER_SHARD)

    # 1. First publish: repo created, every file stored byte for byte, release tagged.
    code, output = publish_cli(folder, "v0.1.0", "--result", str(tmp_path / "publish.json"))
    assert code == 0, output
    assert WRITE_TOKEN not in output
    # A real publish says what it did, in the past tense; the plan's "would ..." is the dry run's wording only.
    assert "would" not in output
    assert "dataset repo org/densities: does not exist yet" in output
    assert "created dataset repo org/densities (private=False)" in output
    assert re.search(r"uploaded README\.md \(new, \d+ bytes\)\n", output)
    assert "tagged " in output and "as 'v0.1.0'" in output
    outcome = json.loads((tmp_path / "publish.json").read_text())
    first_commit = fake_hub.head(REPO)
    assert outcome["commit"] == first_commit and outcome["committed"] and outcome["created_repo"]
    assert fake_hub.tags(REPO) == {"v0.1.0": first_commit}
    for path, data in local_data(folder).items():
        assert fake_hub.read(REPO, path) == data, path
    assert fake_hub.files(REPO)[f"data/{GARCH}/params-000000-000003.parquet"]["lfs"]
    api_writes = [r for r in fake_hub.requests if r["method"] == "POST" and r["path"].startswith("/api/")]
    assert api_writes and all(r["auth"] == WRITE_TOKEN_HEADER for r in api_writes)  # token from HF_TOKEN, sent

    # 2. Same data again: no commit request at all, same head, tag untouched.
    commits_before = fake_hub.count("POST", "/commit/")
    code, output = publish_cli(folder, "v0.1.0")
    assert code == 0, output
    assert "no changes, no commit" in output and "uploaded" not in output
    assert fake_hub.count("POST", "/commit/") == commits_before
    assert fake_hub.head(REPO) == first_commit

    # 3. One more GARCH chunk (param_ids 8, 9) under a new tag: dry-run lists exactly the new shard + card files,
    #    the commit carries only those, and only the new shard's bytes travel (one LFS PUT).
    chunks += make_chunks(GARCH, [[8, 9]], first_chunk=2)
    build_dataset(chunks, folder, config("v0.2.0"), params_per_shard=PARAMS_PER_SHARD)
    new_shard = f"data/{GARCH}/params-000008-000011.parquet"
    code, output = publish_cli(folder, "v0.2.0", "--dry-run")
    assert code == 0, output
    planned = sorted(line.split()[3] for line in output.splitlines() if line.startswith("dry run: upload "))
    assert planned == sorted(["README.md", "provenance.json", new_shard])
    assert fake_hub.head(REPO) == first_commit  # dry-run changed nothing

    puts_before = fake_hub.count("PUT", "/_lfs/")
    code, output = publish_cli(folder, "v0.2.0")
    assert code == 0, output
    second_commit = fake_hub.head(REPO)
    assert second_commit != first_commit
    operations = fake_hub.commits(REPO)[second_commit]["operations"]
    assert sorted(path for op, path in operations if op == "add") == sorted(["README.md", "provenance.json", new_shard])
    assert fake_hub.count("PUT", "/_lfs/") == puts_before + 1
    assert fake_hub.tags(REPO) == {"v0.1.0": first_commit, "v0.2.0": second_commit}

    # 4. load_dataset from the Hub at each release tag returns exactly the rows of that release.
    cache = str(tmp_path / "datasets-cache")
    old = datasets.load_dataset(REPO, GARCH, split="train", revision="v0.1.0", cache_dir=cache)
    new = datasets.load_dataset(REPO, GARCH, split="train", revision="v0.2.0", cache_dir=cache)
    assert old.num_rows == 24 and new.num_rows == 30
    assert new.features["quantiles"] == datasets.List(datasets.Value("float32"), length=512)
    local = pq.read_table(folder / "data" / GARCH)
    np.testing.assert_array_equal(
        new.with_format("numpy")[:]["quantiles"],
        local.column("quantiles").combine_chunks().flatten().to_numpy().reshape(-1, 512),
    )
    assert new["param_id"][:] == local.column("param_id").to_pylist()
    stream = datasets.load_dataset(REPO, HESTON, split="train", revision="v0.2.0", streaming=True)
    assert stream.features["quantiles"] == datasets.List(datasets.Value("float32"), length=512)
    streamed = list(stream.with_format("numpy"))
    heston = pq.read_table(folder / "data" / HESTON)
    assert [int(row["param_id"]) for row in streamed] == heston.column("param_id").to_pylist()
    for row, expected in zip(streamed, heston.column("quantiles").to_pylist(), strict=True):
        assert row["quantiles"].dtype == np.float32 and row["quantiles"].shape == (512,)
        np.testing.assert_array_equal(row["quantiles"], np.asarray(expected, dtype=np.float32))


def test_reshard_deletes_stale_shards_in_the_same_commit(tmp_path: Path, make_chunks, fake_hub: FakeHub) -> None:
    folder = tmp_path / "hf"
    chunks = make_chunks(GARCH, [[0, 1, 2, 3, 4, 5]])
    build_dataset(chunks, folder, config("v1"), params_per_shard=2)
    publish_dataset(folder, REPO, tag="v1")
    old_shards = {p for p in fake_hub.files(REPO) if p.startswith("data/")}
    assert len(old_shards) == 3

    build_dataset(chunks, folder, config("v2"), params_per_shard=PARAMS_PER_SHARD)
    result = publish_dataset(folder, REPO, tag="v2")
    new_shards = {p for p in fake_hub.files(REPO) if p.startswith("data/")}
    assert new_shards == {f"data/{GARCH}/params-000000-000003.parquet", f"data/{GARCH}/params-000004-000007.parquet"}
    operations = fake_hub.commits(REPO)[fake_hub.head(REPO)]["operations"]
    assert {path for op, path in operations if op == "delete"} == old_shards - new_shards
    assert {path for op, path in operations if op == "add"} >= new_shards
    assert sorted(result.deleted) == sorted(old_shards - new_shards)


def test_publish_access_is_checked_before_any_job(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """check_publish_access (the publish rule's input function): offline mode, no token, a token the Hub refuses, an
    unreachable Hub: one line each, never the token; a token the Hub accepts names the account."""
    assert check_publish_access(fake_hub.endpoint) == "fake-user"
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_s3cr3t")
    with pytest.raises(PublishError, match=r"does not accept the token in HF_TOKEN \(HTTP 401\)") as refused:
        check_publish_access(fake_hub.endpoint)
    assert "s3cr3t" not in str(refused.value)
    with pytest.raises(PublishError, match=r"^cannot reach the Hugging Face Hub at http://127\.0\.0\.1:9: .*refused"):
        check_publish_access("http://127.0.0.1:9")  # the discard port: connection refused
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match=r"^no Hugging Face token: set HF_TOKEN"):
        check_publish_access(fake_hub.endpoint)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match=r"HF_HUB_OFFLINE is set"):
        check_publish_access(fake_hub.endpoint)


def test_publish_errors_are_clear(tmp_path: Path, make_chunks, fake_hub: FakeHub, monkeypatch) -> None:
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)

    # A dry-run against a missing repo creates nothing.
    code, output = publish_cli(folder, "v1", "--dry-run")
    assert code == 0 and "would be created" in output
    assert not any(
        r["method"] in ("PUT",) or r["path"].endswith(("/create", "/commit/main")) for r in fake_hub.requests
    )

    monkeypatch.delenv("HF_TOKEN")
    code, output = publish_cli(folder, "v1")
    assert code == 1 and "no Hugging Face token: set HF_TOKEN" in output
    code, output = publish_cli(folder, "v1", "--dry-run")  # a dry-run needs no token (anonymous reads)
    assert code == 0 and "dry run: upload README.md (new" in output

    monkeypatch.setenv("HF_TOKEN", READ_TOKEN)
    code, output = publish_cli(folder, "v1")
    assert code == 1
    assert "cannot write to dataset repo org/densities (HTTP 403)" in output
    assert READ_TOKEN not in output

    # Offline mode: one line, before any request, for the publish and for its dry run.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for extra in ((), ("--dry-run",)):
        requests = len(fake_hub.requests)
        code, output = publish_cli(folder, "v1", *extra)
        assert code == 1 and output.strip().splitlines() == [
            "Error: publishing needs the Hugging Face Hub, but HF_HUB_OFFLINE is set: unset it and run again"
        ]
        assert len(fake_hub.requests) == requests
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)

    # Publish with the writer; then changed data under the same tag is refused before any commit.
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    code, output = publish_cli(folder, "v1")
    assert code == 0, output
    assert not fake_hub.is_private(REPO)
    head = fake_hub.head(REPO)
    build_dataset(make_chunks(GARCH, [[0, 1], [2]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    with pytest.raises(PublishError, match=r"tag 'v1' already exists on commit .* set a new hf\.tag"):
        publish_dataset(folder, REPO, tag="v1")
    assert fake_hub.head(REPO) == head

    # hf.private: true makes an existing public repo private; hf.private: false never makes a private repo public.
    publish_dataset(folder, REPO, tag="v2", private=True)
    assert fake_hub.is_private(REPO)
    assert fake_hub.tags(REPO)["v2"] == fake_hub.head(REPO) != head
    messages: list[str] = []
    result = publish_dataset(folder, REPO, tag="v2", private=False, echo=messages.append)
    assert fake_hub.is_private(REPO) and not result.committed
    assert any("stays private" in m for m in messages)


def test_publish_to_a_new_branch(tmp_path: Path, make_chunks, fake_hub: FakeHub) -> None:
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    main_commit = publish_dataset(folder, REPO, tag="v1").commit
    build_dataset(make_chunks(GARCH, [[0, 1], [4]]), folder, config("v1-dev"), params_per_shard=PARAMS_PER_SHARD)
    result = publish_dataset(folder, REPO, revision="dev", tag="v1-dev")
    assert fake_hub.head(REPO, "main") == main_commit
    assert fake_hub.head(REPO, "dev") == result.commit != main_commit
    assert result.uploaded == ["README.md", "provenance.json", f"data/{GARCH}/params-000004-000007.parquet"]
    assert f"data/{GARCH}/params-000004-000007.parquet" not in fake_hub.files(REPO, "main")


def test_publish_through_the_default_xet_pipeline(tmp_path: Path, make_chunks, monkeypatch) -> None:
    """With hf_xet enabled (the production default) upload_folder takes the streamed Xet pipeline; the fake hands out
    hf_xet's disk-backed ``local://`` CAS, so the commit records each shard's sha256 (bytes stay in the CAS)."""
    import hashlib

    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1], [4]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    with FakeHub(tmp_path / "hub", write_tokens=[WRITE_TOKEN], xet_local_cas=tmp_path / "cas") as hub:
        first = publish_dataset(folder, REPO, tag="v1", endpoint=hub.endpoint)
        assert hub.count("GET", "/xet-write-token/") >= 1 and hub.count("PUT", "/_lfs/") == 0
        stored = hub.files(REPO)
        for path, data in local_data(folder).items():
            digest = hashlib.sha256(data).hexdigest()
            assert stored[path]["sha256" if stored[path]["lfs"] else "oid"] == (
                digest if stored[path]["lfs"] else git_blob_oid(data)
            ), path
        assert all(stored[p]["xet"] for p in stored if p.endswith(".parquet"))
        again = publish_dataset(folder, REPO, tag="v1", endpoint=hub.endpoint)
        assert again.commit == first.commit and not again.committed
        assert hub.count("POST", "/commit/") == 1

        # Re-sharding on the Xet path: the stale shards are deleted in the same (first) commit as the new ones.
        old_shards = {p for p in hub.files(REPO) if p.startswith("data/")}
        build_dataset(make_chunks(GARCH, [[0, 1], [4]]), folder, config("v2"), params_per_shard=2)
        result = publish_dataset(folder, REPO, tag="v2", endpoint=hub.endpoint)
        new_shards = {p for p in hub.files(REPO) if p.startswith("data/")}
        assert new_shards == {
            f"data/{GARCH}/params-000000-000001.parquet",
            f"data/{GARCH}/params-000004-000005.parquet",
        }
        operations = hub.commits(REPO)[result.commit]["operations"]
        assert {path for op, path in operations if op == "delete"} == old_shards - new_shards
        assert {path for op, path in operations if op == "add"} >= new_shards
        assert hub.commit_headers[-1]["parentCommit"] == first.commit
        assert all(hub.files(REPO)[p]["xet"] for p in new_shards)


def test_a_chunk_inside_an_existing_shard_range_uploads_only_that_shard(
    tmp_path: Path, make_chunks, fake_hub: FakeHub
) -> None:
    folder = tmp_path / "hf"
    chunks = make_chunks(GARCH, [[0, 1, 2, 3], [4, 5]])
    build_dataset(chunks, folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    publish_dataset(folder, REPO, tag="v1")
    chunks += make_chunks(GARCH, [[6, 7]], first_chunk=2)  # into the range 4–7 of the second shard
    build_dataset(chunks, folder, config("v2"), params_per_shard=PARAMS_PER_SHARD)
    puts = fake_hub.count("PUT", "/_lfs/")
    result = publish_dataset(folder, REPO, tag="v2")
    changed = f"data/{GARCH}/params-000004-000007.parquet"
    assert result.uploaded == ["README.md", "provenance.json", changed] and result.deleted == []
    operations = fake_hub.commits(REPO)[result.commit]["operations"]
    assert sorted(operations) == sorted([["add", "README.md"], ["add", "provenance.json"], ["add", changed]])
    assert fake_hub.count("PUT", "/_lfs/") == puts + 1
    assert fake_hub.read(REPO, changed) == (folder / changed).read_bytes()


@pytest.mark.parametrize(
    "problem", ["missing_shard", "extra_shard", "changed_shard", "stale_card", "no_provenance", "no_data"]
)
def test_an_inconsistent_folder_is_never_published(
    tmp_path: Path, make_chunks, fake_hub: FakeHub, problem: str
) -> None:
    """Publishing deletes remote data/** files that are not in the folder, so a folder whose shards do not match its
    provenance.json (a stale manifest, an interrupted build, a deleted data/ folder) would publish a broken dataset."""
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1, 2, 3], [4, 5]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    publish_dataset(folder, REPO, tag="v1")
    head, commits = fake_hub.head(REPO), fake_hub.count("POST", "/commit/")
    shard = folder / "data" / GARCH / "params-000004-000007.parquet"
    if problem == "missing_shard":
        shard.unlink()
        named, expected = shard, r"listed in provenance\.json but missing"
    elif problem == "extra_shard":
        named = folder / "data" / HESTON / "params-000000-000003.parquet"
        named.parent.mkdir()
        named.write_bytes(shard.read_bytes())
        expected = r"not listed in provenance\.json"
    elif problem == "changed_shard":
        shard.write_bytes(shard.read_bytes()[:-8])
        named, expected = shard, r"sha256 [0-9a-f]{12} differs from provenance\.json"
    elif problem == "stale_card":
        (folder / "provenance.json").write_text(
            (folder / "provenance.json").read_text().replace('"rows": 18', '"rows": 19')
        )
        named, expected = folder / "README.md", "does not belong to provenance.json"
    elif problem == "no_provenance":
        (folder / "provenance.json").unlink()
        named, expected = folder / "provenance.json", "missing"
    else:
        shutil.rmtree(folder / "data")
        named, expected = folder / "data" / GARCH / "params-000000-000003.parquet", r"listed in provenance\.json"
    for dry_run in (True, False):
        with pytest.raises(PublishError, match=re.escape(f"{named}: ") + expected):
            publish_dataset(folder, REPO, tag="v2", dry_run=dry_run)
    assert fake_hub.head(REPO) == head and fake_hub.count("POST", "/commit/") == commits
    assert fake_hub.count("POST", "/preupload/") == 1  # only the first publish got that far


def test_a_new_repo_is_created_private(tmp_path: Path, make_chunks, fake_hub: FakeHub) -> None:
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1]]), folder, config("v1", private=True), params_per_shard=PARAMS_PER_SHARD)
    code, output = publish_cli(folder, "v1", "--private", "--dry-run")
    assert code == 0 and "would be created (private=True)" in output
    code, output = publish_cli(folder, "v1", "--private")
    assert code == 0, output
    assert fake_hub.is_private(REPO) and fake_hub.tags(REPO) == {"v1": fake_hub.head(REPO)}
    create = next(r for r in fake_hub.requests if r["path"] == "/api/repos/create")
    assert create["status"] == 200
    assert fake_hub.count("PUT", "/settings") == 0  # created private, not made private afterwards


@pytest.mark.parametrize("refused_at", ["preupload", "lfs", "commit"])
def test_a_read_only_token_on_an_existing_repo_is_a_clear_error(
    tmp_path: Path, make_chunks, fake_hub: FakeHub, monkeypatch, refused_at: str
) -> None:
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    publish_dataset(folder, REPO, tag="v1")
    head = fake_hub.head(REPO)
    build_dataset(make_chunks(GARCH, [[0, 1], [4]]), folder, config("v2"), params_per_shard=PARAMS_PER_SHARD)
    steps = ["preupload", "lfs", "commit"]
    fake_hub.read_token_passes = set(steps[: steps.index(refused_at)])  # the Hub itself refuses at preupload
    monkeypatch.setenv("HF_TOKEN", READ_TOKEN)
    code, output = publish_cli(folder, "v2")
    assert code == 1
    assert "the token in HF_TOKEN cannot write to dataset repo org/densities (HTTP 403)" in output
    assert READ_TOKEN not in output
    refused = [r for r in fake_hub.requests if r["status"] == 403]
    path = {"preupload": "/preupload/", "lfs": "/info/lfs/objects/batch", "commit": "/commit/"}[refused_at]
    assert len(refused) == 1 and path in refused[0]["path"]
    assert fake_hub.head(REPO) == head and "v2" not in fake_hub.tags(REPO)


def test_a_tag_on_an_older_commit_is_refused_even_with_unchanged_data(
    tmp_path: Path, make_chunks, fake_hub: FakeHub
) -> None:
    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    first = publish_dataset(folder, REPO, tag="v1").commit
    build_dataset(make_chunks(GARCH, [[0, 1], [2]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    second = publish_dataset(folder, REPO, tag="v2").commit
    assert second != first
    # The folder equals the head (no upload needed), but v1 names the older commit: moving or re-using it would
    # make v1 mean other data.
    with pytest.raises(PublishError, match=rf"tag 'v1' is on commit {first[:12]}, not on the head {second[:12]}"):
        publish_dataset(folder, REPO, tag="v1")
    assert fake_hub.tags(REPO) == {"v1": first, "v2": second} and fake_hub.head(REPO) == second


def test_a_commit_landing_between_plan_and_upload_publishes_nothing(
    tmp_path: Path, make_chunks, fake_hub: FakeHub, monkeypatch
) -> None:
    """upload_folder gets parent_commit = the head the plan compared against; a concurrent commit → HTTP 412 → a
    clear error, no commit, no tag."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from density_engine.dataset import publish

    folder = tmp_path / "hf"
    build_dataset(make_chunks(GARCH, [[0, 1]]), folder, config("v1"), params_per_shard=PARAMS_PER_SHARD)
    publish_dataset(folder, REPO, tag="v1")
    planned_head = fake_hub.head(REPO)
    build_dataset(make_chunks(GARCH, [[0, 1], [4]]), folder, config("v2"), params_per_shard=PARAMS_PER_SHARD)

    real_plan = publish.plan_publish

    def plan_then_someone_commits(*args: object, **kwargs: object) -> publish.PublishPlan:
        plan = real_plan(*args, **kwargs)
        other = HfApi(endpoint=fake_hub.endpoint, token=WRITE_TOKEN)
        other.create_commit(
            REPO,
            [CommitOperationAdd("NOTES.md", b"edited on the Hub\n")],
            commit_message="concurrent edit",
            repo_type="dataset",
        )
        return plan

    monkeypatch.setattr(publish, "plan_publish", plan_then_someone_commits)
    with pytest.raises(
        PublishError, match=rf"branch 'main' of dataset repo {REPO} moved .* head was {planned_head[:12]}"
    ):
        publish_dataset(folder, REPO, tag="v2")
    concurrent = fake_hub.head(REPO)
    assert concurrent != planned_head
    assert fake_hub.commits(REPO)[concurrent]["message"] == "concurrent edit"
    assert fake_hub.commit_headers[-1]["parentCommit"] == planned_head
    assert f"data/{GARCH}/params-000004-000007.parquet" not in fake_hub.files(REPO)
    assert "v2" not in fake_hub.tags(REPO)

    # Re-running compares against the new head and publishes on top of it (the concurrent file stays).
    monkeypatch.setattr(publish, "plan_publish", real_plan)
    result = publish_dataset(folder, REPO, tag="v2")
    assert fake_hub.commits(REPO)[result.commit]["parent"] == concurrent
    assert fake_hub.commit_headers[-1]["parentCommit"] == concurrent
    assert "NOTES.md" in fake_hub.files(REPO) and fake_hub.tags(REPO)["v2"] == result.commit
