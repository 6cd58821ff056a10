"""Pytest fixtures for real-sshd hosts and the fake Vast.ai server.

Import them into a ``conftest.py``::

    from tests.fake_vast.fixtures import fake_vast, ssh_keypair, sshd_factory, sshd_host  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.fake_vast.server import FakeVast, running_fake
from tests.fake_vast.sshd import (
    REQUIRE_SSH_ENV,
    SshdHost,
    generate_keypair,
    ssh_tests_required,
    sshd_unavailable_reason,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SshKeyPair:
    """A test client key: ``private_path`` (0600, no passphrase) and its ``public_key`` line."""

    private_path: Path
    public_key: str


def require_sshd() -> None:
    """Skip the calling test with a clear message when real sshd tests cannot run on this machine; on CI (``CI`` set)
    or with ``DENSITY_ENGINE_REQUIRE_SSH=1`` fail it instead, so the SSH tests can never silently skip there."""
    reason = sshd_unavailable_reason()
    if reason is None:
        return
    if ssh_tests_required():
        pytest.fail(f"real-sshd tests are required here (CI or {REQUIRE_SSH_ENV}=1) but {reason}", pytrace=False)
    pytest.skip(reason)


def controller_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    """Folders of the controller side that fake hosts must not see: pytest's base temp folder (the controllers'
    working directories) and the repository checkout (see ``SshdHost.hide_paths``)."""
    return (tmp_path_factory.getbasetemp(), REPO_ROOT)


@pytest.fixture(scope="session")
def ssh_keypair(tmp_path_factory: pytest.TempPathFactory) -> SshKeyPair:
    """One ed25519 client key for the whole test session."""
    require_sshd()
    private = tmp_path_factory.mktemp("client-key") / "id_ed25519"
    return SshKeyPair(private, generate_keypair(private))


@pytest.fixture
def sshd_factory(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, ssh_keypair: SshKeyPair
) -> Iterator[Callable[..., SshdHost]]:
    """Start sshd hosts: ``factory(name="h1", start=True, **SshdHost kwargs)``; all are killed at teardown."""
    hosts: list[SshdHost] = []

    def factory(name: str | None = None, *, start: bool = True, **kwargs: object) -> SshdHost:
        kwargs.setdefault("authorized_keys", [ssh_keypair.public_key])
        kwargs.setdefault("key_path", ssh_keypair.private_path)
        kwargs.setdefault("hide_paths", controller_paths(tmp_path_factory))
        host = SshdHost(tmp_path / (name or f"host-{len(hosts)}"), **kwargs)  # type: ignore[arg-type]
        hosts.append(host)
        if start:
            host.start()
        return host

    yield factory
    for host in hosts:
        host.kill()


@pytest.fixture
def sshd_host(sshd_factory: Callable[..., SshdHost]) -> SshdHost:
    """A running sshd host: ``.host``, ``.port``, ``.user``, ``.key_path``, ``.inst_dir``, ``.workspace_dir``."""
    return sshd_factory("sshd-host")


class FakeVastHandle(NamedTuple):
    """What the ``fake_vast`` fixture yields: unpack as ``base_url, fake, api_key``."""

    base_url: str
    fake: FakeVast
    api_key: str


@pytest.fixture
def fake_vast(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeVastHandle]:
    """A running fake Vast.ai API (real HTTP on 127.0.0.1) whose instances are real sshd hosts; closed at teardown.

    Adjust timing before renting via ``fake.t_null`` / ``fake.t_loading`` (defaults 0.2 s / 0.5 s). The hosts do not
    see the controller's folders (pytest's base temp folder, the checkout): see ``SshdHost.hide_paths``.
    """
    require_sshd()
    with running_fake(tmp_path / "fake-vast", hide_paths=controller_paths(tmp_path_factory)) as fake:
        yield FakeVastHandle(fake.base_url, fake, fake.api_key)
