"""A fake Hugging Face Hub: a real HTTP server on 127.0.0.1 with the repos kept on disk.

It answers what huggingface_hub 2.4.0 calls (``create_repo``, ``upload_folder`` on the classic LFS path, i.e. with
Xet disabled, ``create_tag``, ``list_repo_tree``, ``list_repo_refs``, ``update_repo_settings``) and what
``datasets.load_dataset`` / ``HfFileSystem`` read (``resolve`` with ``Range``, ``tree``, ``paths-info``), following the
endpoint specification in shared/reference/hf-hub.md §7. File contents live under ``<root>/objects/<sha256>``, repo
state (commits, branches, tags, visibility) in ``<root>/state.json``, so a new server on the same folder sees the same
repos.

Tokens: ``write_tokens`` may write, ``read_tokens`` may only read (writes, preupload included, get 403); no token → 401
on writes, and private repos are invisible (404 RepoNotFound) without a known token. A commit whose ``parentCommit``
is not the branch head gets 412 (hf-hub.md §7.2).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".npy", ".npz", ".safetensors", ".zst", ".gz")
LFS_SIZE = 10 * 1024 * 1024


def git_blob_oid(data: bytes) -> str:
    """git's object id of a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer text of an object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubError(Exception):
    """An HTTP error answer."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class FakeHub:
    """The server. ``with FakeHub(root) as hub: HfApi(endpoint=hub.endpoint, token="hf_writer")``."""

    def __init__(
        self,
        root: str | Path,
        write_tokens: Iterable[str] = ("hf_writer",),
        read_tokens: Iterable[str] = ("hf_reader",),
        xet_local_cas: str | Path | None = None,
        read_token_passes: Iterable[str] = (),
    ) -> None:
        self.root = Path(root)
        # Write steps ("preupload", "lfs" batch) that let a read-only token through, so that a test can see the 403 at
        # a later step (the commit); the Hub refuses read-only tokens at the first write step.
        self.read_token_passes = set(read_token_passes)
        # With a folder here, the Xet write-token endpoint hands out ``local://<folder>`` (hf_xet's disk-backed CAS),
        # so the default Xet pipeline of upload_folder runs offline; such files are recorded by sha256 and size only.
        self.xet_local_cas = Path(xet_local_cas) if xet_local_cas else None
        self.objects = self.root / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.state_path = self.root / "state.json"
        self.write_tokens, self.read_tokens = set(write_tokens), set(read_tokens)
        self.lock = threading.RLock()
        self.repos: dict[str, dict[str, Any]] = (
            json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        )
        self.requests: list[dict[str, Any]] = []
        self.commit_headers: list[dict[str, Any]] = []  # the header line of every commit request, refused ones too
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-hub", daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # ---- inspection helpers for tests ----------------------------------------------------------------------------

    def lines(self) -> list[str]:
        """The request log as ``METHOD path?query -> status`` lines."""
        return [
            f"{r['method']} {r['path']}{'?' + r['query'] if r['query'] else ''} -> {r['status']}" for r in self.requests
        ]

    def count(self, method: str, fragment: str) -> int:
        """How many logged requests have this method and contain ``fragment`` in their path."""
        return sum(r["method"] == method and fragment in r["path"] for r in self.requests)

    def files(self, repo_id: str, rev: str = "main", repo_type: str = "dataset") -> dict[str, dict[str, Any]]:
        """Path → entry of the files at ``rev``."""
        with self.lock:
            repo = self._repo(repo_type, repo_id)
            return dict(repo["commits"][self._resolve(repo, rev)]["files"])

    def read(self, repo_id: str, path: str, rev: str = "main", repo_type: str = "dataset") -> bytes:
        """The bytes of a file at ``rev``."""
        return (self.objects / self.files(repo_id, rev, repo_type)[path]["sha256"]).read_bytes()

    def commits(self, repo_id: str, repo_type: str = "dataset") -> dict[str, dict[str, Any]]:
        """All commits of a repo (oid → {parent, files, message, operations})."""
        with self.lock:
            return dict(self._repo(repo_type, repo_id)["commits"])

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "dataset") -> str:
        """The commit a branch points at."""
        with self.lock:
            return self._repo(repo_type, repo_id)["branches"][branch]

    def tags(self, repo_id: str, repo_type: str = "dataset") -> dict[str, str]:
        """Tag → commit."""
        with self.lock:
            return dict(self._repo(repo_type, repo_id)["tags"])

    def is_private(self, repo_id: str, repo_type: str = "dataset") -> bool:
        """The repo's visibility."""
        with self.lock:
            return bool(self._repo(repo_type, repo_id)["private"])

    # ---- state -----------------------------------------------------------------------------------------------------

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.repos, sort_keys=True))
        tmp.replace(self.state_path)

    def _store(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.objects / digest
        if not target.exists():
            tmp = target.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return digest

    @staticmethod
    def _key(repo_type: str, repo_id: str) -> str:
        return f"{repo_type}:{repo_id}"

    def _repo(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        repo = self.repos.get(self._key(repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _visible_repo(self, repo_type: str, repo_id: str, token: str | None) -> dict[str, Any]:
        repo = self._repo(repo_type, repo_id)
        if repo["private"] and token not in self.write_tokens | self.read_tokens:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _check_write(self, token: str | None) -> None:
        if token is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        if token not in self.write_tokens:
            raise HubError(403, "You don't have the rights to write to this repo (read-only token)")

    @staticmethod
    def _resolve(repo: dict[str, Any], rev: str) -> str:
        rev = unquote(rev)
        if rev in repo["branches"]:
            return repo["branches"][rev]
        if rev in repo["tags"]:
            return repo["tags"][rev]
        if len(rev) >= 7:
            matches = [oid for oid in repo["commits"] if oid.startswith(rev)]
            if len(matches) == 1:
                return matches[0]
        raise HubError(404, "Revision not found", "RevisionNotFound")

    def _new_commit(
        self, repo: dict[str, Any], parent: str | None, files: dict[str, Any], message: str, ops: list
    ) -> str:
        oid = hashlib.sha1(f"{parent}{time.time_ns()}{uuid.uuid4()}".encode()).hexdigest()
        repo["commits"][oid] = {"parent": parent, "files": files, "message": message, "operations": ops}
        return oid

    def _entry(self, data: bytes, lfs: bool) -> dict[str, Any]:
        digest = self._store(data)
        if lfs:
            return {
                "size": len(data),
                "lfs": True,
                "sha256": digest,
                "oid": git_blob_oid(lfs_pointer(digest, len(data))),
            }
        return {"size": len(data), "lfs": False, "sha256": digest, "oid": git_blob_oid(data)}

    def _url(self, repo_type: str, repo_id: str) -> str:
        prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
        return f"{self.endpoint}/{prefix}{repo_id}"

    # ---- endpoint implementations ----------------------------------------------------------------------------------

    def create_repo(self, body: dict[str, Any], token: str | None) -> tuple[int, Any]:
        self._check_write(token)
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or 'fake-user'}/{body['name']}"
        key = self._key(repo_type, repo_id)
        if key in self.repos:
            return 409, {"error": "You already created this repo", "url": self._url(repo_type, repo_id)}
        repo = {"private": body.get("visibility") == "private" or bool(body.get("private")), "commits": {}}
        repo["tags"] = {}
        oid = self._new_commit(repo, None, {".gitattributes": self._entry(GITATTRIBUTES, False)}, "initial commit", [])
        repo["branches"] = {"main": oid}
        self.repos[key] = repo
        self._save()
        return 200, {"url": self._url(repo_type, repo_id), "name": repo_id, "id": repo_id}

    def repo_info(self, repo_type: str, repo_id: str, rev: str, token: str | None) -> dict[str, Any]:
        repo = self._visible_repo(repo_type, repo_id, token)
        oid = self._resolve(repo, rev)
        files = repo["commits"][oid]["files"]
        return {
            "id": repo_id,
            "sha": oid,
            "private": repo["private"],
            "siblings": [{"rfilename": p} for p in sorted(files)],
        }

    def preupload(self, repo_type: str, repo_id: str, rev: str, body: dict[str, Any], token: str | None) -> Any:
        if not ("preupload" in self.read_token_passes and token in self.read_tokens):
            self._check_write(token)
        repo = self._visible_repo(repo_type, repo_id, token)
        head = self._resolve(repo, rev)
        files = repo["commits"][head]["files"]
        answer = []
        for item in body.get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = item["path"].endswith(LFS_SUFFIXES) or item.get("size", 0) > LFS_SIZE or b"\0" in sample
            remote = files.get(item["path"])
            remote_oid = None if remote is None else (remote["sha256"] if remote["lfs"] else remote["oid"])
            answer.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote_oid,
                }
            )
        return {"files": answer, "commitOid": head}

    def lfs_batch(self, body: dict[str, Any], token: str | None) -> Any:
        if body.get("operation") == "upload" and not ("lfs" in self.read_token_passes and token in self.read_tokens):
            self._check_write(token)
        objects = []
        for obj in body.get("objects", []):
            path = self.objects / obj["oid"]
            if path.is_file() and path.stat().st_size == obj["size"]:
                objects.append({"oid": obj["oid"], "size": obj["size"]})
            else:
                objects.append(
                    {
                        "oid": obj["oid"],
                        "size": obj["size"],
                        "actions": {
                            "upload": {"href": f"{self.endpoint}/_lfs/{obj['oid']}"},
                            "verify": {"href": f"{self.endpoint}/_lfs_verify"},
                        },
                    }
                )
        return {"transfer": "basic", "objects": objects}

    def commit(self, repo_type: str, repo_id: str, rev: str, raw: bytes, token: str | None) -> Any:
        self._check_write(token)
        repo = self._visible_repo(repo_type, repo_id, token)
        branch = unquote(rev)
        if branch not in repo["branches"]:
            raise HubError(404, "Revision not found", "RevisionNotFound")
        head = repo["branches"][branch]
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        header = lines[0]["value"]
        self.commit_headers.append(dict(header))
        parent = header.get("parentCommit")
        if parent and not head.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo["commits"][head]["files"])
        ops: list[list[str]] = []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = self._entry(base64.b64decode(value["content"]), False)
                ops.append(["add", value["path"]])
            elif key == "lfsFile":
                stored = self.objects / value["oid"]
                xet = not stored.is_file() and self.xet_local_cas is not None and "size" in value
                if not stored.is_file() and not xet:
                    raise HubError(422, f"LFS object {value['oid']} missing for {value['path']}")
                size = value["size"] if xet else stored.stat().st_size
                files[value["path"]] = {
                    "size": size,
                    "lfs": True,
                    "sha256": value["oid"],
                    "oid": git_blob_oid(lfs_pointer(value["oid"], size)),
                    "xet": xet,
                }
                ops.append(["add", value["path"]])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
                ops.append(["delete", value["path"]])
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
                    ops.append(["delete", path])
            else:
                raise HubError(400, f"unsupported commit operation {key!r}")
        oid = self._new_commit(repo, head, files, header.get("summary", ""), ops)
        repo["branches"][branch] = oid
        self._save()
        return {
            "commitUrl": f"{self._url(repo_type, repo_id)}/commit/{oid}",
            "commitOid": oid,
            "pullRequestUrl": None,
            "success": True,
        }

    @staticmethod
    def _tree_entry(path: str, entry: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "file", "path": path, "size": entry["size"], "oid": entry["oid"]}
        if entry["lfs"]:
            pointer = lfs_pointer(entry["sha256"], entry["size"])
            item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": len(pointer)}
        return item

    def tree(self, repo_type: str, repo_id: str, rev: str, path: str, recursive: bool, token: str | None) -> Any:
        repo = self._visible_repo(repo_type, repo_id, token)
        files = repo["commits"][self._resolve(repo, rev)]["files"]
        path = path.strip("/")
        prefix = f"{path}/" if path else ""
        if path and path in files:
            return [self._tree_entry(path, files[path])]
        below = {p: e for p, e in files.items() if p.startswith(prefix)}
        if path and not below:
            raise HubError(404, "Entry not found", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for file_path, entry in sorted(below.items()):
            rest = file_path[len(prefix) :].split("/")
            if recursive:
                for depth in range(1, len(rest)):
                    folder = prefix + "/".join(rest[:depth])
                    entries.setdefault(folder, self._folder_entry(folder))
                entries[file_path] = self._tree_entry(file_path, entry)
            elif len(rest) == 1:
                entries[file_path] = self._tree_entry(file_path, entry)
            else:
                folder = prefix + rest[0]
                entries.setdefault(folder, self._folder_entry(folder))
        return list(entries.values())

    @staticmethod
    def _folder_entry(path: str) -> dict[str, Any]:
        return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}

    def paths_info(self, repo_type: str, repo_id: str, rev: str, paths: list[str], token: str | None) -> Any:
        repo = self._visible_repo(repo_type, repo_id, token)
        files = repo["commits"][self._resolve(repo, rev)]["files"]
        answer = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                answer.append(self._tree_entry(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                answer.append(self._folder_entry(path))
        return answer

    def create_ref(self, kind: str, repo_type: str, repo_id: str, rev: str, body: dict, token: str | None) -> Any:
        self._check_write(token)
        repo = self._visible_repo(repo_type, repo_id, token)
        if kind == "tag":
            name = body["tag"]
            if name in repo["tags"]:
                raise HubError(409, "Tag already exists")
            repo["tags"][name] = self._resolve(repo, rev)
        else:
            name = unquote(rev)
            if name in repo["branches"]:
                raise HubError(409, "Branch already exists")
            repo["branches"][name] = self._resolve(repo, body.get("startingPoint") or "main")
        self._save()
        return {}

    def refs(self, repo_type: str, repo_id: str, token: str | None) -> Any:
        repo = self._visible_repo(repo_type, repo_id, token)

        def refs_of(kind: str, mapping: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": c} for n, c in sorted(mapping.items())]

        return {
            "branches": refs_of("heads", repo["branches"]),
            "tags": refs_of("tags", repo["tags"]),
            "converts": [],
            "pullRequests": [],
        }

    def settings(self, repo_type: str, repo_id: str, body: dict[str, Any], token: str | None) -> Any:
        self._check_write(token)
        repo = self._visible_repo(repo_type, repo_id, token)
        if "visibility" in body:
            repo["private"] = body["visibility"] == "private"
        elif "private" in body:
            repo["private"] = bool(body["private"])
        self._save()
        return {}


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            auth = self.headers.get("Authorization") or ""
            token = auth[7:] if auth.startswith("Bearer ") else None
            record = {
                "method": method,
                "path": url.path,
                "query": url.query,
                "auth": auth[:12],
                "range": self.headers.get("Range"),
                "body_length": len(body),
            }
            try:
                with hub.lock:
                    status, payload, headers = self._route(method, url.path, parse_qs(url.query), body, token)
            except HubError as exc:
                status, headers = exc.status, {"X-Error-Code": exc.code} if exc.code else {}
                payload = {"error": exc.message}
            except Exception as exc:  # a bug in the fake: answer 500 so the client fails loudly
                status, payload, headers = 500, {"error": repr(exc)}, {}
            record["status"] = status
            hub.requests.append(record)
            if isinstance(payload, bytes):
                data = payload
                headers.setdefault("Content-Type", "application/octet-stream")
            else:
                data = json.dumps(payload).encode()
                headers.setdefault("Content-Type", "application/json")
            length_header = headers.pop("_length", str(len(data)))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", length_header)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def _route(
            self, method: str, path: str, query: dict[str, list[str]], body: bytes, token: str | None
        ) -> tuple[int, Any, dict[str, str]]:
            parts = [unquote(p) for p in path.strip("/").split("/")]

            def json_body() -> dict[str, Any]:
                return json.loads(body or b"{}")

            if path == "/api/repos/create" and method == "POST":
                status, payload = hub.create_repo(json_body(), token)
                return status, payload, {}
            if path == "/api/validate-yaml" and method == "POST":
                content = json_body().get("content", "")
                if content.startswith("---"):
                    try:
                        yaml.safe_load(content.split("---", 2)[1])
                    except yaml.YAMLError as exc:
                        return 400, {"errors": [{"message": str(exc)}], "warnings": []}, {}
                return 200, {"errors": [], "warnings": []}, {}
            if path == "/api/whoami-v2":
                self_check = token in hub.write_tokens | hub.read_tokens
                if not self_check:
                    raise HubError(401, "Invalid credentials in Authorization header")
                return 200, {"type": "user", "name": "fake-user", "auth": {"type": "access_token"}}, {}
            if path.startswith("/_lfs/") and method == "PUT":
                self_oid = parts[1]
                if hashlib.sha256(body).hexdigest() != self_oid:
                    raise HubError(400, "sha256 mismatch")
                hub._store(body)
                return 200, b"", {}
            if path == "/_lfs_verify" and method == "POST":
                obj = json_body()
                stored = hub.objects / obj["oid"]
                if stored.is_file() and stored.stat().st_size == obj["size"]:
                    return 200, {}, {}
                raise HubError(404, "object not found")
            if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets", "spaces"):
                return self._api(method, parts, query, body, token, json_body)
            if path.endswith(".git/info/lfs/objects/batch") and method == "POST":
                return 200, hub.lfs_batch(json_body(), token), {"Content-Type": "application/vnd.git-lfs+json"}
            if "resolve" in parts and method in ("GET", "HEAD"):
                return self._resolve_file(method, parts, token)
            raise HubError(404, f"fake hub: unsupported {method} {path}")

        def _api(self, method, parts, query, body, token, json_body):  # type: ignore[no-untyped-def]
            repo_type = parts[1][:-1]
            repo_id = f"{parts[2]}/{parts[3]}"
            rest = parts[4:]
            if not rest and method == "GET":
                return 200, hub.repo_info(repo_type, repo_id, "main", token), {}
            action = rest[0] if rest else ""
            rev = "/".join(rest[1:]) or "main"
            if action == "revision" and method == "GET":
                return 200, hub.repo_info(repo_type, repo_id, rev, token), {}
            if action == "xet-write-token" and method == "GET" and hub.xet_local_cas is not None:
                hub._check_write(token)
                hub._visible_repo(repo_type, repo_id, token)
                cas = {"casUrl": f"local://{hub.xet_local_cas}", "accessToken": "fake", "exp": int(time.time()) + 3600}
                return 200, cas, {}
            if action == "preupload" and method == "POST":
                return 200, hub.preupload(repo_type, repo_id, rev, json_body(), token), {}
            if action == "commit" and method == "POST":
                return 200, hub.commit(repo_type, repo_id, rev, body, token), {}
            if action == "tree" and method == "GET":
                tree_rev, tree_path = rest[1], "/".join(rest[2:])
                recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
                return 200, hub.tree(repo_type, repo_id, tree_rev, tree_path, recursive, token), {}
            if action == "paths-info" and method == "POST":
                paths = parse_qs(body.decode()).get("paths", [])
                return 200, hub.paths_info(repo_type, repo_id, rev, paths, token), {}
            if action in ("tag", "branch") and method == "POST":
                return 200, hub.create_ref(action, repo_type, repo_id, rev, json_body(), token), {}
            if action == "refs" and method == "GET":
                return 200, hub.refs(repo_type, repo_id, token), {}
            if action == "settings" and method == "PUT":
                return 200, hub.settings(repo_type, repo_id, json_body(), token), {}
            raise HubError(404, f"fake hub: unsupported {method} /api/{'/'.join(parts[1:])}")

        def _resolve_file(self, method, parts, token):  # type: ignore[no-untyped-def]
            at = parts.index("resolve")
            prefix = parts[:at]
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(prefix[0], "model")
            repo_id = "/".join(prefix[1:] if repo_type != "model" else prefix)
            repo = hub._visible_repo(repo_type, repo_id, token)
            oid = hub._resolve(repo, parts[at + 1])
            file_path = "/".join(parts[at + 2 :])
            entry = repo["commits"][oid]["files"].get(file_path)
            if entry is None:
                raise HubError(404, "Entry not found", "EntryNotFound")
            data = (hub.objects / entry["sha256"]).read_bytes()
            etag = entry["sha256"] if entry["lfs"] else entry["oid"]
            headers = {
                "X-Repo-Commit": oid,
                "ETag": f'"{etag}"',
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            if entry["lfs"]:
                headers["X-Linked-Etag"] = f'"{etag}"'
                headers["X-Linked-Size"] = str(len(data))
            status = 200
            byte_range = self.headers.get("Range")
            if byte_range and byte_range.startswith("bytes="):
                start_text, end_text = byte_range[6:].split("-", 1)
                if start_text == "":
                    start, end = max(0, len(data) - int(end_text)), len(data) - 1
                else:
                    start = int(start_text)
                    end = min(int(end_text), len(data) - 1) if end_text else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start : end + 1], 206
            if method == "HEAD":
                headers["_length"] = str(len(data))
                return status, b"", headers
            return status, data, headers

    return Handler
