"""A typed, synchronous Vast.ai REST client (``requests``; no ``vastai`` dependency).

Covers the endpoints an orchestrator needs (docs/vast-client.md, reference vast-api.md §5.1): offer search, rent,
show one instance, list instances (v1 keyset pages), destroy, label, account and per-instance SSH keys, container
logs and the current user. Behaviour worth knowing:

* errors are typed: :class:`AuthError` (401/403, no key), :class:`OfferUnavailable` (404/410 ``no_such_ask`` on
  rent), :class:`RateLimited` (429 after all retries, or the daily search quota), :class:`InstanceGone`
  (``{"instances": null}``, 404, ``no_such_instance``), all subclasses of :class:`VastError`; a 200 with
  ``"success": false`` is an error too;
* 429/5xx and connection errors are retried with capped exponential back-off and jitter, honouring ``Retry-After``;
  renting is not blindly retried after an ambiguous failure (5xx/timeout): the client looks the label up instead, so a
  rent that did happen is never duplicated or lost;
* a per-endpoint minimum interval (Vast's documented thresholds, :data:`DEFAULT_MIN_INTERVALS`, scalable) spaces
  requests out before the server has to answer 429;
* the API key is sent only as ``Authorization: Bearer``; it never appears in logs, ``repr`` or exception messages.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import requests

from snakemake_executor_plugin_vast.query import search_body

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://console.vast.ai"
DEFAULT_RUNTYPE = "ssh_direc ssh_proxy"  # sic: Vast's spelling; direct SSH plus the proxy as a fallback
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
GONE_STATUSES = frozenset({"destroyed", "terminated"})

# Minimum seconds between two requests to one endpoint (method + path template), from Vast's OpenAPI 429 examples.
DEFAULT_MIN_INTERVALS: dict[tuple[str, str], float] = {
    ("PUT", "/api/v0/asks/{id}/"): 4.5,
    ("GET", "/api/v0/instances/{id}/"): 2.0,
    ("GET", "/api/v1/instances/"): 1.0,
    ("DELETE", "/api/v0/instances/{id}/"): 3.0,
    ("PUT", "/api/v0/instances/{id}/"): 1.0,
    ("POST", "/api/v0/ssh/"): 1.0,
    ("POST", "/api/v0/instances/{id}/ssh/"): 1.0,
    ("DELETE", "/api/v0/instances/{id}/ssh/{id}/"): 2.0,
    ("PUT", "/api/v0/instances/request_logs/{id}/"): 1.0,
    ("POST", "/api/v0/bundles/"): 1.0,
}


# ----------------------------------------------------------------------------------------------------------- errors
class VastError(Exception):
    """A failed Vast.ai API call. ``status`` (HTTP status or None), ``error`` and ``msg`` (from the body)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        msg: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.msg = msg
        self.method = method
        self.path = path


class AuthError(VastError):
    """The API key is missing, wrong or lacks the permission (401/403)."""


class OfferUnavailable(VastError):
    """The offer was taken or vanished between search and rent (404 ``no_such_ask`` / 410): try the next offer."""


class RateLimited(VastError):
    """Still answered 429 after all retries, or the daily search quota is used up."""


class InstanceGone(VastError):
    """The instance does not exist (any more): destroyed, never existed, or not ours."""


# ------------------------------------------------------------------------------------------------------ data types
def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _opt_float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value).strip()


@dataclass(frozen=True)
class Offer:
    """One rentable offer from ``POST /api/v0/bundles/`` (the full JSON row is kept in ``raw``)."""

    id: int
    machine_id: int | None
    gpu_name: str
    num_gpus: int
    dph_total: float
    reliability: float | None
    inet_down: float | None
    cuda_max_good: float | None
    direct_port_count: int | None
    geolocation: str | None
    gpu_ram: float | None = None
    cpu_ram: float | None = None
    disk_space: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Offer:
        """Build from an API row; raises VastError when ``id`` is missing."""
        offer_id = _opt_int(row.get("id", row.get("ask_contract_id")))
        if offer_id is None:
            raise VastError(f"offer without an id in search results: keys {sorted(row)[:20]}")
        return cls(
            id=offer_id,
            machine_id=_opt_int(row.get("machine_id")),
            gpu_name=str(row.get("gpu_name") or ""),
            num_gpus=_opt_int(row.get("num_gpus")) or 0,
            dph_total=_opt_float(row.get("dph_total")) or 0.0,
            reliability=_opt_float(row.get("reliability", row.get("reliability2"))),
            inet_down=_opt_float(row.get("inet_down")),
            cuda_max_good=_opt_float(row.get("cuda_max_good")),
            direct_port_count=_opt_int(row.get("direct_port_count")),
            geolocation=_opt_str(row.get("geolocation")),
            gpu_ram=_opt_float(row.get("gpu_ram")),
            cpu_ram=_opt_float(row.get("cpu_ram")),
            disk_space=_opt_float(row.get("disk_space")),
            raw=dict(row),
        )


@dataclass(frozen=True)
class SshEndpoint:
    """Where to SSH into an instance: ``direct`` (public IP + mapped port 22) or ``proxy`` (Vast's ssh gateway)."""

    host: str
    port: int
    kind: Literal["direct", "proxy"]


def ssh_endpoints(row: Mapping[str, Any]) -> tuple[SshEndpoint, ...]:
    """Endpoints of an instance row, direct first: ``public_ipaddr`` + ``ports["22/tcp"][0]["HostPort"]``, then
    ``ssh_host``:``ssh_port``. Tolerates missing/None ``ports`` and trailing whitespace in the address."""
    endpoints: list[SshEndpoint] = []
    address = _opt_str(row.get("public_ipaddr"))
    ports = row.get("ports")
    if address and isinstance(ports, Mapping):
        mappings = ports.get("22/tcp")
        if isinstance(mappings, list) and mappings and isinstance(mappings[0], Mapping):
            port = _opt_int(mappings[0].get("HostPort"))
            if port:
                endpoints.append(SshEndpoint(address, port, "direct"))
    proxy_host, proxy_port = _opt_str(row.get("ssh_host")), _opt_int(row.get("ssh_port"))
    if proxy_host and proxy_port:
        endpoints.append(SshEndpoint(proxy_host, proxy_port, "proxy"))
    return tuple(endpoints)


@dataclass(frozen=True)
class Instance:
    """One rented instance (``GET /api/v0/instances/{id}/`` or a v1 list row; the full JSON row is in ``raw``).

    ``actual_status`` is None while provisioning, then e.g. ``loading``/``running``/``exited``/``offline``.
    """

    id: int
    label: str | None
    actual_status: str | None
    intended_status: str | None
    cur_state: str | None
    status_msg: str | None
    machine_id: int | None
    dph_total: float | None
    start_date: float | None
    endpoints: tuple[SshEndpoint, ...]
    gpu_name: str | None = None
    num_gpus: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Instance:
        """Build from an API row; raises VastError when ``id`` is missing."""
        instance_id = _opt_int(row.get("id"))
        if instance_id is None:
            raise VastError(f"instance row without an id: keys {sorted(row)[:20]}")
        return cls(
            id=instance_id,
            label=_opt_str(row.get("label")),
            actual_status=_opt_str(row.get("actual_status")),
            intended_status=_opt_str(row.get("intended_status")),
            cur_state=_opt_str(row.get("cur_state")),
            status_msg=_opt_str(row.get("status_msg")),
            machine_id=_opt_int(row.get("machine_id")),
            dph_total=_opt_float(row.get("dph_total")),
            start_date=_opt_float(row.get("start_date")),
            endpoints=ssh_endpoints(row),
            gpu_name=_opt_str(row.get("gpu_name")),
            num_gpus=_opt_int(row.get("num_gpus")),
            raw=dict(row),
        )

    @property
    def is_running(self) -> bool:
        """True when the container runs (SSH may still need a moment)."""
        return self.actual_status == "running"


# ------------------------------------------------------------------------------------------------------- API key
def _key_files() -> list[Path]:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(config_home) / "vastai" / "vast_api_key", Path.home() / ".vast_api_key"]


def resolve_api_key(explicit: str | None = None) -> str:
    """The API key: ``explicit`` → ``$VAST_API_KEY`` → ``$XDG_CONFIG_HOME/vastai/vast_api_key`` (default
    ``~/.config/vastai/vast_api_key``, written by ``vastai set api-key``) → ``~/.vast_api_key``. Raises AuthError
    naming the places it looked (never a key) when none is set."""
    if explicit and explicit.strip():
        return explicit.strip()
    from_env = os.environ.get("VAST_API_KEY", "").strip()
    if from_env:
        return from_env
    for path in _key_files():
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text
    places = ", ".join(str(path) for path in _key_files())
    raise AuthError(f"no Vast.ai API key: pass --vast-api-key / --api-key, set VAST_API_KEY, or write it to {places}")


# -------------------------------------------------------------------------------------------------------- client
class _Secret:
    """Holds the API key so that ``repr``/``vars`` of the client never show it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


def endpoint_template(method: str, path: str) -> tuple[str, str]:
    """``("GET", "/api/v0/instances/{id}/")`` for ``GET /api/v0/instances/123/``: the rate-limit key."""
    path = path.split("?", 1)[0]
    if not path.endswith("/"):
        path += "/"
    return method.upper(), _ID_SEGMENT.sub("/{id}", path)


class VastClient:
    """Synchronous Vast.ai REST client; thread-safe (one shared instance per process is the intended use).

    ``max_retries`` extra attempts on 429/5xx/connection errors, waiting ``min(backoff_cap, backoff_base * 2**n)``
    with equal jitter (or ``Retry-After`` when the server sends it). ``min_intervals`` overrides the per-endpoint
    thresholds (keys as :func:`endpoint_template`); ``interval_scale`` multiplies them all (0 disables throttling).
    ``sleep``, ``clock`` and ``rng`` are injectable so tests never wait for real.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 30.0,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        min_intervals: Mapping[tuple[str, str], float] | None = None,
        interval_scale: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        session: requests.Session | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise AuthError("empty Vast.ai API key")
        self.__api_key = _Secret(api_key.strip())
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.min_intervals = dict(DEFAULT_MIN_INTERVALS if min_intervals is None else min_intervals)
        self.interval_scale = interval_scale
        self._sleep, self._clock, self._rng = sleep, clock, rng
        self._session = session or requests.Session()
        self._session.trust_env = False  # never pick up .netrc credentials or proxies for the API
        self._throttle_lock = threading.Lock()
        self._next_allowed: dict[tuple[str, str], float] = {}
        self.request_count = 0

    def __repr__(self) -> str:
        return f"VastClient(base_url={self.base_url!r}, api_key=<hidden>)"

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> VastClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ plumbing
    def _mask(self, text: str) -> str:
        """``text`` with every occurrence of the API key replaced by ``***``."""
        return text.replace(self.__api_key.value, "***") if text else text

    def _throttle(self, key: tuple[str, str], extra_delay: float = 0.0) -> None:
        interval = self.min_intervals.get(key, 0.0) * self.interval_scale
        with self._throttle_lock:
            now = self._clock()
            start = max(now, self._next_allowed.get(key, now) + extra_delay)
            self._next_allowed[key] = start + interval
        if start > now:
            self._sleep(start - now)

    def _push_back(self, key: tuple[str, str], delay: float) -> None:
        """After a 429/5xx, make every thread wait ``delay`` before the next request to this endpoint."""
        with self._throttle_lock:
            now = self._clock()
            self._next_allowed[key] = max(self._next_allowed.get(key, now), now + delay)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.backoff_cap, max(0.0, float(retry_after)))
            except ValueError:
                pass
        ceiling = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return ceiling / 2 + self._rng() * ceiling / 2

    @staticmethod
    def _body(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return response.text

    def _error(self, response: requests.Response, method: str, path: str) -> VastError:
        body = self._body(response)
        error = body.get("error") if isinstance(body, Mapping) else None
        msg = (body.get("msg") or body.get("message") or body.get("detail")) if isinstance(body, Mapping) else None
        error = None if error is None else self._mask(str(error))
        msg = None if msg is None else self._mask(str(msg))
        detail = msg or error or (body if isinstance(body, str) else json.dumps(body))
        detail = self._mask(str(detail))[:500]
        status = response.status_code
        text = f"Vast.ai {method} {path} failed: HTTP {status}: {detail}"
        kwargs: dict[str, Any] = {"status": status, "error": error, "msg": msg, "method": method, "path": path}
        marker = f"{error or ''} {msg or ''} {body if isinstance(body, str) else ''}"
        if status in (401, 403) or error == "auth_error":
            return AuthError(text + " (check the API key)", **kwargs)
        if status == 429:
            return RateLimited(text, **kwargs)
        if "/asks/" in path and (status in (404, 410) or "no_such_ask" in marker):
            return OfferUnavailable(text, **kwargs)
        if "/instances/" in path and (
            status == 404 or any(word in marker for word in ("no_such_instance", "not_found", "invalid_id"))
        ):
            return InstanceGone(text, **kwargs)
        return VastError(text, **kwargs)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry_ambiguous: bool = True,
    ) -> Any:
        """Send one API call with throttling and retries; return the decoded JSON body or raise a VastError.

        ``retry_ambiguous=False`` (renting) retries only answers that certainly did nothing (429); a 5xx or a lost
        connection is raised at once with ``status`` set (None for connection errors) so the caller can check.
        """
        key = endpoint_template(method, path)
        url = self.base_url + path
        last_error: VastError | None = None
        for attempt in range(self.max_retries + 1):
            self._throttle(key)
            started = self._clock()
            self.request_count += 1
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {self.__api_key.value}", "Accept": "application/json"},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                last_error = VastError(
                    f"Vast.ai {method} {path}: connection failed: {self._mask(str(exc))[:300]}",
                    method=method,
                    path=path,
                )
                if not retry_ambiguous or attempt == self.max_retries:
                    raise last_error from None
                delay = self._backoff(attempt, None)
                logger.warning("%s %s: %s; retry %d/%d in %.1f s", method, path, type(exc).__name__, attempt + 1,
                               self.max_retries, delay)  # fmt: skip
                self._push_back(key, delay)
                continue
            logger.debug("%s %s -> %d (%.2f s)", method, path, response.status_code, self._clock() - started)
            if response.status_code < 400:
                body = self._body(response)
                if isinstance(body, Mapping) and body.get("success") is False:
                    raise self._error(response, method, path)
                return body
            error = self._error(response, method, path)
            body = self._body(response)
            quota = isinstance(body, Mapping) and body.get("error") == "search_quota_exceeded"
            retryable = response.status_code in RETRY_STATUSES and not quota
            if response.status_code != 429 and not retry_ambiguous:
                retryable = False
            if not retryable or attempt == self.max_retries:
                raise error
            last_error = error
            delay = self._backoff(attempt, response.headers.get("Retry-After"))
            logger.warning("%s %s: HTTP %d; retry %d/%d in %.1f s", method, path, response.status_code, attempt + 1,
                           self.max_retries, delay)  # fmt: skip
            self._push_back(key, delay)
        raise last_error or VastError(f"Vast.ai {method} {path} failed", method=method, path=path)  # pragma: no cover

    # ------------------------------------------------------------------------------------------------- offers
    def search_offers(
        self,
        query: str | Mapping[str, Any] | None = "",
        *,
        order: str = "dph_total",
        limit: int | None = 10,
        disk_gb: float = 20.0,
        defaults: bool = True,
        offer_type: str = "on-demand",
    ) -> list[Offer]:
        """Offers matching a ``vastai search offers`` query (e.g. ``"gpu_name=RTX_4090 num_gpus=1 dph<0.5"``).

        ``defaults`` adds ``verified=true external=false rentable=true rented=false`` as the CLI does (override them
        with e.g. ``verified=any``); ``disk_gb`` is sent as ``allocated_storage`` so ``dph_total`` includes storage.
        """
        body = search_body(query, order=order, limit=limit, disk_gb=disk_gb, offer_type=offer_type, defaults=defaults)
        answer = self._request("POST", "/api/v0/bundles/", json_body=body)
        rows = answer.get("offers") if isinstance(answer, Mapping) else None
        if not isinstance(rows, list):
            raise VastError(f"unexpected search answer (no 'offers' list): {self._mask(str(answer))[:200]}")
        return [Offer.from_json(row) for row in rows]

    # ---------------------------------------------------------------------------------------------- instances
    def create_instance(
        self,
        offer_id: int,
        *,
        image: str,
        disk_gb: float,
        label: str,
        onstart: str = "",
        env: Mapping[str, str] | None = None,
        runtype: str = DEFAULT_RUNTYPE,
        cancel_unavail: bool | None = None,
        bid_price: float | None = None,
    ) -> int:
        """Rent an offer; return the new instance id. Raises OfferUnavailable when the offer is gone (try the next).

        ``bid_price`` ($/h) rents it as an interruptible instance (it is stopped when outbid); ``cancel_unavail``
        defaults to True for on-demand rents and False for bids, as Vast's own default.

        Use a unique ``label`` per rent: after an ambiguous failure (5xx, lost connection) the client looks for an
        instance with exactly this label and returns it instead of renting twice or losing track of a paid instance.
        """
        if len(onstart) > 4048:
            raise ValueError(f"onstart script is {len(onstart)} characters; Vast accepts at most 4048")
        body = {
            "client_id": "me",
            "image": image,
            "env": dict(env or {}),
            "price": None if bid_price is None else round(float(bid_price), 6),
            "disk": float(disk_gb),
            "label": label,
            "onstart": onstart or None,
            "runtype": runtype,
            "cancel_unavail": (bid_price is None) if cancel_unavail is None else cancel_unavail,
            "force": False,
            "image_login": None,
        }
        path = f"/api/v0/asks/{int(offer_id)}/"
        try:
            answer = self._request("PUT", path, json_body=body, retry_ambiguous=False)
        except (OfferUnavailable, AuthError, RateLimited):
            raise
        except VastError as exc:
            if exc.status is not None and exc.status < 500:
                raise
            logger.warning("rent of offer %s ended ambiguously (%s); looking up label %r", offer_id, exc, label)
            matches = [inst for inst in self.list_instances(label_prefix=label) if inst.label == label]
            if len(matches) == 1:
                return matches[0].id
            if matches:
                ids = [m.id for m in matches]
                raise VastError(
                    f"rent of offer {offer_id} failed ambiguously and label {label!r} matches instances {ids}; "
                    "destroy them with `snakemake-vast cleanup --all-runs` or in the Vast console"
                ) from exc
            raise
        instance_id = _opt_int(answer.get("new_contract")) if isinstance(answer, Mapping) else None
        if instance_id is None:
            raise VastError(f"rent of offer {offer_id}: answer has no new_contract: {self._mask(str(answer))[:200]}")
        logger.info("rented offer %s as instance %s (label %s)", offer_id, instance_id, label)
        return instance_id

    def get_instance(self, instance_id: int) -> Instance:
        """Current state of one instance; raises InstanceGone when it does not exist (any more)."""
        path = f"/api/v0/instances/{int(instance_id)}/"
        answer = self._request("GET", path)
        row = answer.get("instances") if isinstance(answer, Mapping) else None
        if isinstance(row, list):  # Vast's own QA tool sees a one-element list
            row = row[0] if row else None
        if not isinstance(row, Mapping) or _opt_int(row.get("id")) != int(instance_id):
            raise InstanceGone(f"instance {instance_id} does not exist (any more)", method="GET", path=path)
        instance = Instance.from_json(row)
        if instance.actual_status in GONE_STATUSES or instance.intended_status in GONE_STATUSES:
            raise InstanceGone(f"instance {instance_id} is {instance.actual_status or instance.intended_status}")
        if instance.is_running and row.get("ports") is None and "direc" in str(row.get("image_runtype") or ""):
            # the by-id route may omit port mappings: take them from the v1 list row
            listed = self._list_pages({"id": {"eq": int(instance_id)}})
            if listed and listed[0].get("ports"):
                instance = Instance.from_json({**row, "ports": listed[0]["ports"]})
        return instance

    def _list_pages(self, select_filters: Mapping[str, Any], page_size: int = 25) -> list[Mapping[str, Any]]:
        rows: list[Mapping[str, Any]] = []
        token: str | None = None
        seen_tokens: set[str] = set()
        while True:
            params: dict[str, Any] = {
                "select_filters": json.dumps(dict(select_filters)),
                "order_by": json.dumps([{"col": "id", "dir": "asc"}]),
                "limit": max(1, min(25, page_size)),
            }
            if token:
                params["after_token"] = token
            answer = self._request("GET", "/api/v1/instances/", params=params)
            page = answer.get("instances") if isinstance(answer, Mapping) else None
            if page is None:
                page = []
            if not isinstance(page, list):
                raise VastError(f"unexpected instance list page: {self._mask(str(answer))[:200]}")
            rows.extend(row for row in page if isinstance(row, Mapping))
            token = answer.get("next_token") if isinstance(answer, Mapping) else None
            if not token or not page:
                return rows
            if token in seen_tokens:
                raise VastError("instance list pagination repeats a next_token; giving up to avoid looping")
            seen_tokens.add(token)

    def list_instances(self, *, label_prefix: str | None = None, page_size: int = 25) -> list[Instance]:
        """All live instances of the account (every v1 page), optionally only labels starting with ``label_prefix``."""
        instances = [Instance.from_json(row) for row in self._list_pages({}, page_size)]
        if label_prefix is not None:
            instances = [inst for inst in instances if (inst.label or "").startswith(label_prefix)]
        return [inst for inst in instances if inst.actual_status not in GONE_STATUSES]

    def destroy_instance(self, instance_id: int) -> bool:
        """Destroy an instance (stops all billing). Returns True when it is destroyed now or was already gone."""
        try:
            self._request("DELETE", f"/api/v0/instances/{int(instance_id)}/", json_body={})
        except InstanceGone:
            logger.info("instance %s was already gone", instance_id)
            return True
        logger.info("destroyed instance %s", instance_id)
        return True

    def set_label(self, instance_id: int, label: str) -> None:
        """Set an instance's label (at most 1024 characters)."""
        if len(label) > 1024:
            raise ValueError("Vast labels are at most 1024 characters")
        self._request("PUT", f"/api/v0/instances/{int(instance_id)}/", json_body={"label": label})

    def set_state(self, instance_id: int, state: Literal["running", "stopped"]) -> None:
        """Stop (keeps disk, stops GPU billing) or start an instance."""
        self._request("PUT", f"/api/v0/instances/{int(instance_id)}/", json_body={"state": state})

    # ------------------------------------------------------------------------------------------------ ssh keys
    def add_account_ssh_key(self, public_key: str) -> int:
        """Register a public key on the account (new instances get it); returns the key id."""
        if not public_key.strip().startswith(("ssh-", "ecdsa-", "sk-")):
            raise ValueError("expected an OpenSSH public key line (ssh-ed25519 AAAA...), not a private key")
        answer = self._request("POST", "/api/v0/ssh/", json_body={"ssh_key": public_key.strip()})
        key = answer.get("key") if isinstance(answer, Mapping) else None
        key_id = _opt_int(key.get("id") if isinstance(key, Mapping) else (answer or {}).get("id"))
        if key_id is None:
            raise VastError(f"adding an SSH key returned no id: {self._mask(str(answer))[:200]}")
        return key_id

    def list_account_ssh_keys(self) -> list[dict[str, Any]]:
        """The account's SSH keys (``id``, ``public_key``, ...)."""
        answer = self._request("GET", "/api/v0/ssh/")
        rows = answer.get("keys", answer.get("ssh_keys")) if isinstance(answer, Mapping) else answer
        return [dict(row) for row in rows or [] if isinstance(row, Mapping)]

    def delete_account_ssh_key(self, key_id: int) -> None:
        """Remove an account SSH key (no error when it is already gone)."""
        try:
            self._request("DELETE", f"/api/v0/ssh/{int(key_id)}/")
        except VastError as exc:
            if exc.status != 404:
                raise

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        """Add a public key to one instance's ``authorized_keys``."""
        self._request("POST", f"/api/v0/instances/{int(instance_id)}/ssh/", json_body={"ssh_key": public_key.strip()})

    def detach_ssh_key(self, instance_id: int, key_id: int) -> None:
        """Remove an attached key from one instance."""
        self._request("DELETE", f"/api/v0/instances/{int(instance_id)}/ssh/{int(key_id)}/")

    # ----------------------------------------------------------------------------------------------- other
    def request_logs(self, instance_id: int, *, tail: int = 1000, attempts: int = 30, interval: float = 0.3) -> str:
        """The instance's container log (last ``tail`` lines). Vast uploads it to ``result_url``, which is polled
        without credentials (``attempts`` × ``interval``). Raises InstanceGone for unknown/destroyed instances."""
        answer = self._request("PUT", f"/api/v0/instances/request_logs/{int(instance_id)}/",
                               json_body={"tail": str(int(tail))})  # fmt: skip
        url = answer.get("result_url") if isinstance(answer, Mapping) else None
        if not url:
            raise VastError(f"log request for instance {instance_id} returned no result_url")
        for attempt in range(attempts):
            try:
                # a plain GET without the session: the URL is a storage bucket and must never see the API key
                response = requests.get(url, timeout=self.timeout)
            except requests.RequestException as exc:
                logger.debug("log fetch for %s: %s", instance_id, type(exc).__name__)
            else:
                if response.status_code == 200:
                    return response.text
            if attempt + 1 < attempts:
                self._sleep(interval)
        raise VastError(f"logs of instance {instance_id} not available after {attempts} polls")

    def current_user(self) -> dict[str, Any]:
        """The account (``id``, ``email``, ``credit``, ...): a cheap check that the key works."""
        answer = self._request("GET", "/api/v0/users/current")
        if not isinstance(answer, Mapping):
            raise VastError("unexpected answer from /api/v0/users/current")
        return dict(answer)


def destroy_all(client: VastClient, instance_ids: Iterable[int]) -> dict[int, str | None]:
    """Destroy several instances, continuing past failures: ``{id: None (ok) | error text}``."""
    outcome: dict[int, str | None] = {}
    for instance_id in instance_ids:
        try:
            client.destroy_instance(instance_id)
            outcome[instance_id] = None
        except VastError as exc:
            outcome[instance_id] = str(exc)
    return outcome
