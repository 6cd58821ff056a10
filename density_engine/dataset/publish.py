"""Publish the dataset folder to the Hugging Face Hub, idempotently.

One publish = check that the folder is one consistent build (its shards are exactly those of provenance.json, with
their sha256, and README.md belongs to that provenance.json), create the dataset repo if missing (``hf.private``),
compare the folder with the branch (``hf.revision``), ``upload_folder`` the changed files while deleting stale shards
(``data/**``) in the same operation, with ``parent_commit`` = the compared head (a concurrent commit makes the Hub
refuse it: nothing is published), then tag that commit (``hf.tag``). Unchanged data makes no commit; a tag that
already names another commit is an error (bump ``hf.tag``). The token comes from ``HF_TOKEN`` and is never logged or
written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from density_engine.atomic import file_sha256

logger = logging.getLogger(__name__)

TOKEN_ENV = "HF_TOKEN"
UPLOAD_PATTERNS = ("README.md", "provenance.json", "data/**/*.parquet")
DELETE_PATTERNS = ("data/**",)


class PublishError(RuntimeError):
    """Publishing failed for a reason the user can act on (no token, repo not writable, tag conflict, ...)."""


@dataclass
class FileChange:
    """One file of the plan."""

    path: str
    action: str  # "new" | "changed" | "unchanged" | "delete"
    size: int | None = None


@dataclass
class PublishPlan:
    """What a publish would do, computed from the local folder and the remote branch (read-only)."""

    repo_id: str
    revision: str
    repo_exists: bool
    branch_exists: bool
    head: str | None
    private: bool | None
    remote_private: bool | None
    tag: str | None
    tag_commit: str | None
    changes: list[FileChange] = field(default_factory=list)

    @property
    def uploads(self) -> list[FileChange]:
        """Files that are new or changed."""
        return [c for c in self.changes if c.action in ("new", "changed")]

    @property
    def deletions(self) -> list[FileChange]:
        """Remote files under ``data/`` that are no longer in the folder."""
        return [c for c in self.changes if c.action == "delete"]

    @property
    def make_private(self) -> bool:
        """Whether an existing public repo must become private. Never the reverse: publishing does not make a private
        repo public (an accidental release cannot be taken back), that stays a deliberate step on the Hub."""
        return self.repo_exists and self.private is True and self.remote_private is False

    @property
    def changed(self) -> bool:
        """Whether a commit is needed."""
        return bool(self.uploads or self.deletions)

    def tag_conflict(self) -> str | None:
        """Why tagging would fail, or ``None``: an existing tag must already name the commit being published."""
        if not self.tag or self.tag_commit is None:
            return None
        if self.changed:
            return (
                f"tag {self.tag!r} already exists on commit {self.tag_commit[:12]} of {self.repo_id}, but the dataset "
                f"files changed ({len(self.uploads)} to upload, {len(self.deletions)} to delete) and would become a "
                "new commit; set a new hf.tag for this release"
            )
        if self.tag_commit != self.head:
            return (
                f"tag {self.tag!r} is on commit {self.tag_commit[:12]}, not on the head {str(self.head)[:12]} of "
                f"{self.revision!r} in {self.repo_id}; set a new hf.tag for this release"
            )
        return None

    def describe(self, dry_run: bool = True) -> list[str]:
        """Human-readable lines: with ``dry_run`` what a publish would do; else only what was found (the publish then
        reports what it did)."""
        stays_private = self.repo_exists and self.private is False and self.remote_private
        if not dry_run:
            state = "exists" if self.repo_exists else "does not exist yet"
            branch = "" if self.branch_exists or not self.repo_exists else f" (no branch {self.revision!r} yet)"
            unchanged = sum(c.action == "unchanged" for c in self.changes)
            found = [
                f"dataset repo {self.repo_id}: {state}{branch}; {len(self.uploads)} file(s) to upload, "
                f"{len(self.deletions)} to delete, {unchanged} unchanged"
            ]
            if stays_private:
                found.append(
                    "visibility: the repo is private and stays private (make it public on the Hub if intended)"
                )
            return found
        lines = [
            f"dataset repo {self.repo_id}: "
            + ("exists" if self.repo_exists else f"would be created (private={bool(self.private)})")
            + f", branch {self.revision!r}"
            + ("" if self.branch_exists or not self.repo_exists else " would be created")
        ]
        if self.make_private:
            lines.append("visibility: would make the repo private (hf.private: true)")
        elif stays_private:
            lines.append("visibility: the repo is private and stays private (make it public on the Hub if intended)")
        lines += [f"upload {c.path} ({c.action}, {c.size} bytes)" for c in self.uploads]
        lines += [f"delete {c.path}" for c in self.deletions]
        unchanged = sum(c.action == "unchanged" for c in self.changes)
        lines.append(f"unchanged: {unchanged} file(s)")
        if not self.changed:
            lines.append("no changes: no commit")
        if self.tag:
            conflict = self.tag_conflict()
            if conflict:
                lines.append(f"tag: ERROR {conflict}")
            elif self.tag_commit:
                lines.append(f"tag {self.tag!r}: already on the head commit")
            else:
                lines.append(f"tag {self.tag!r}: would be created on the {'new' if self.changed else 'head'} commit")
        return lines


@dataclass
class PublishResult:
    """What a publish did (written as JSON by the CLI; holds no secret)."""

    repo_id: str
    revision: str
    commit: str
    tag: str | None
    url: str
    created_repo: bool
    committed: bool
    uploaded: list[str]
    deleted: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class LocalFile:
    """A file of the folder that a publish uploads."""

    path: Path
    sha256: str


def _refuse(path: Path, problem: str) -> PublishError:
    return PublishError(
        f"{path}: {problem}; the dataset folder is not a consistent build, nothing was published "
        "(re-run the dataset build: snakemake, or density-engine dataset build/card)"
    )


def local_files(folder: str | Path) -> dict[str, LocalFile]:
    """The files a publish uploads (README.md, provenance.json, data/**/*.parquet) keyed by POSIX relative path, after
    checking that they are one consistent build.

    Refuses (:class:`PublishError` naming the file) unless the shards under ``data/`` are exactly those listed in
    provenance.json with the same sha256, and README.md records the sha256 of that provenance.json: a stale card, a
    missing or half-written shard, or a shard of another build must never be published (the publish deletes remote
    ``data/**`` files that are not in the folder).
    """
    from density_engine.dataset.card import PROVENANCE_DIGEST_PATTERN

    folder = Path(folder)
    readme, provenance_path = folder / "README.md", folder / "provenance.json"
    for path in (readme, provenance_path):
        if not path.is_file():
            raise PublishError(f"{path}: missing; build the dataset first (density-engine dataset build)")
    record = provenance_path.read_bytes()
    try:
        provenance = json.loads(record)
        listed = {
            shard["path"]: shard["sha256"] for model in provenance["models"].values() for shard in model["shards"]
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _refuse(provenance_path, f"not a dataset provenance record ({exc!r})") from exc
    recorded = PROVENANCE_DIGEST_PATTERN.search(readme.read_text(encoding="utf-8", errors="replace"))
    if recorded is None or recorded.group(1) != hashlib.sha256(record).hexdigest():
        raise _refuse(readme, f"does not belong to {provenance_path.name} (its recorded sha256 differs)")
    present = {p.relative_to(folder).as_posix(): p for p in sorted((folder / "data").rglob("*.parquet"))}
    for relative in sorted(set(listed) - set(present)):
        raise _refuse(folder / relative, f"listed in {provenance_path.name} but missing")
    for relative in sorted(set(present) - set(listed)):
        raise _refuse(present[relative], f"not listed in {provenance_path.name} (it would be published)")
    if not listed:
        raise PublishError(f"{folder}: no data/<model>/*.parquet shards to publish")
    files = {
        "README.md": LocalFile(readme, hashlib.sha256(readme.read_bytes()).hexdigest()),
        "provenance.json": LocalFile(provenance_path, hashlib.sha256(record).hexdigest()),
    }
    for relative, path in present.items():
        digest = file_sha256(path)
        if digest != listed[relative]:
            raise _refuse(path, f"sha256 {digest[:12]} differs from {provenance_path.name} ({listed[relative][:12]})")
        files[relative] = LocalFile(path, digest)
    return files


def _token_from_env() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def make_api(token: str | None, endpoint: str | None = None) -> Any:
    """An ``HfApi`` for ``endpoint`` (default: ``HF_ENDPOINT`` or huggingface.co) and the token (none: anonymous)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token if token else False)


def plan_publish(
    api: Any,
    folder: str | Path,
    repo_id: str,
    revision: str = "main",
    tag: str | None = None,
    private: bool | None = None,
) -> PublishPlan:
    """Compare the folder with the remote branch (read-only calls only)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    files = local_files(folder)
    repo_exists, branch_exists, head, remote_private = True, True, None, None
    remote: dict[str, Any] = {}
    try:
        info = api.repo_info(repo_id, repo_type="dataset", revision=revision)
        head, remote_private = info.sha, info.private
    except RevisionNotFoundError:
        branch_exists = False
        info = api.repo_info(repo_id, repo_type="dataset")
        head, remote_private = info.sha, info.private
    except RepositoryNotFoundError:
        repo_exists = branch_exists = False
    if repo_exists:
        # A new branch starts at the default branch's head, so compare against that.
        for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=head, recursive=True):
            if hasattr(entry, "blob_id"):
                remote[entry.path] = entry
    tag_commit = None
    if repo_exists and tag:
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
        tag_commit = next((t.target_commit for t in refs.tags if t.name == tag), None)
    changes: list[FileChange] = []
    for path_in_repo, local in files.items():
        entry = remote.get(path_in_repo)
        if entry is None:
            action = "new"
        else:
            lfs = getattr(entry, "lfs", None)  # LFS/Xet files are compared by sha256, regular ones by git blob id
            same = local.sha256 == lfs.sha256 if lfs else git_blob_oid(local.path.read_bytes()) == entry.blob_id
            action = "unchanged" if same else "changed"
        changes.append(FileChange(path_in_repo, action, local.path.stat().st_size))
    for path_in_repo in sorted(remote):
        if path_in_repo.startswith("data/") and path_in_repo not in files:
            changes.append(FileChange(path_in_repo, "delete"))
    return PublishPlan(
        repo_id=repo_id,
        revision=revision,
        repo_exists=repo_exists,
        branch_exists=branch_exists,
        head=head,
        private=private,
        remote_private=remote_private,
        tag=tag,
        tag_commit=tag_commit,
        changes=changes,
    )


def publish_dataset(
    folder: str | Path,
    repo_id: str,
    *,
    revision: str = "main",
    tag: str | None = None,
    private: bool | None = None,
    dry_run: bool = False,
    endpoint: str | None = None,
    commit_message: str | None = None,
    echo: Callable[[str], None] = logger.info,
) -> PublishResult | PublishPlan:
    """Publish ``folder`` to the dataset repo ``repo_id``; with ``dry_run`` return the plan and change nothing.

    Raises :class:`PublishError` for a missing token (unless dry-run), a token that cannot write the repo, a tag that
    already names another commit, or a missing/empty dataset folder.
    """
    # huggingface_hub.errors.HTTPError is httpx's base class: HTTP error answers and transport errors alike.
    from huggingface_hub.errors import HTTPError

    _check_online()
    token = _token_from_env()
    if token is None and not dry_run:
        raise PublishError(f"no Hugging Face token: set {TOKEN_ENV} to a token with write access to {repo_id}")
    api = make_api(token, endpoint)
    try:
        plan = plan_publish(api, folder, repo_id, revision=revision, tag=tag, private=private)
    except (HTTPError, OSError) as exc:  # OSError: connection errors, OfflineModeIsEnabled
        raise PublishError(f"cannot read dataset repo {repo_id} at {api.endpoint}: {_short(exc)}") from None
    for line in plan.describe(dry_run):
        echo(("dry run: " if dry_run else "") + line)
    conflict = plan.tag_conflict()
    if conflict:
        raise PublishError(conflict)
    if dry_run:
        return plan
    try:
        return _apply(api, folder, plan, commit_message, echo)
    except HTTPError as exc:
        if _status(exc) == 412:
            raise PublishError(
                f"branch {plan.revision!r} of dataset repo {repo_id} moved since it was compared with the folder (its "
                f"head was {str(plan.head)[:12]}; another commit landed meanwhile): nothing was committed or tagged; "
                "re-run the publish to compare against the new head"
            ) from exc
        if _status(exc) in (401, 403):
            raise PublishError(
                f"the token in {TOKEN_ENV} cannot write to dataset repo {repo_id} (HTTP {_status(exc)}): {_short(exc)}"
            ) from exc
        raise PublishError(f"publishing to dataset repo {repo_id} failed: {_short(exc)}") from exc
    except OSError as exc:  # the connection broke off mid-way
        raise PublishError(f"publishing to dataset repo {repo_id} failed: {_short(exc)}") from None


def _check_online() -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise PublishError("publishing needs the Hugging Face Hub, but HF_HUB_OFFLINE is set: unset it and run again")


def check_publish_access(endpoint: str | None = None) -> str:
    """Before any publish job starts: the Hub is not switched off (``HF_HUB_OFFLINE``), ``HF_TOKEN`` is set, and the
    Hub at ``endpoint`` accepts it (``whoami``). Returns the account name; :class:`PublishError` (one line) otherwise.
    The token is never part of a message."""
    from huggingface_hub.errors import HTTPError

    _check_online()
    token = _token_from_env()
    if token is None:
        raise PublishError(f"no Hugging Face token: set {TOKEN_ENV} to a token with write access to the dataset repo")
    api = make_api(token, endpoint)
    try:
        return str(api.whoami().get("name", "?"))
    except HTTPError as exc:
        if _status(exc) == 401:
            raise PublishError(
                f"the Hub at {api.endpoint} does not accept the token in {TOKEN_ENV} (HTTP 401)"
            ) from None
        raise PublishError(f"cannot reach the Hugging Face Hub at {api.endpoint}: {_short(exc)}") from None
    except OSError as exc:
        raise PublishError(f"cannot reach the Hugging Face Hub at {api.endpoint}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _apply(
    api: Any, folder: str | Path, plan: PublishPlan, commit_message: str | None, echo: Callable[[str], None]
) -> PublishResult:
    repo_id, revision = plan.repo_id, plan.revision
    created = False
    if not plan.repo_exists:
        api.create_repo(repo_id, repo_type="dataset", private=bool(plan.private), exist_ok=True)
        created = True
        echo(f"created dataset repo {repo_id} (private={bool(plan.private)})")
    elif plan.make_private:
        api.update_repo_settings(repo_id, repo_type="dataset", private=True)
        echo(f"made dataset repo {repo_id} private")
    if not plan.branch_exists and revision != "main":
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        echo(f"created branch {revision!r}")
    head = plan.head
    if created or plan.changed:
        message = commit_message or (f"Publish dataset {plan.tag}" if plan.tag else "Publish dataset")
        # parent_commit: the deletions, the uploads and the tag were decided on plan.head; if another commit landed on
        # the branch since, the Hub refuses the (first) commit with HTTP 412 and nothing is published.
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(folder),
            revision=revision,
            parent_commit=plan.head if plan.repo_exists else None,
            allow_patterns=list(UPLOAD_PATTERNS),
            delete_patterns=list(DELETE_PATTERNS),
            commit_message=message,
            commit_description=f"{len(plan.uploads)} file(s) added or changed, {len(plan.deletions)} deleted",
        )
        head = commit.oid
    committed = head != plan.head
    if committed:
        for change in plan.uploads:
            echo(f"uploaded {change.path} ({change.action}, {change.size} bytes)")
        for change in plan.deletions:
            echo(f"deleted {change.path}")
    echo(f"{'committed' if committed else 'no changes, no commit'}: {repo_id}@{revision} is {head}")
    if plan.tag and plan.tag_commit is None:
        # the commit this publish made (or verified as identical to the folder), not whatever the branch points at now
        api.create_tag(repo_id, repo_type="dataset", tag=plan.tag, revision=head, tag_message=f"Release {plan.tag}")
        echo(f"tagged {head[:12]} as {plan.tag!r}")
    return PublishResult(
        repo_id=repo_id,
        revision=revision,
        commit=head,
        tag=plan.tag,
        url=f"{api.endpoint}/datasets/{repo_id}",
        created_repo=created,
        committed=committed,
        uploaded=[c.path for c in plan.uploads] if committed else [],
        deleted=[c.path for c in plan.deletions] if committed else [],
    )
