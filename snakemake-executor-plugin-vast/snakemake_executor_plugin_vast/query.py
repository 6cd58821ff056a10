"""Offer queries in the ``vastai search offers`` grammar (same parsing and defaults as ``vastai`` 1.9.1).

Grammar (CLI help): ``query = comparison comparison ...``, ``comparison = field op value``, ``op`` one of
``<, <=, ==, =, !=, >=, >, in, notin`` (also the word forms ``lt lte gt gte eq neq noteq "not eq" nin "not in"``),
``value = bool | int | float | string | any | [v0, v1, ...]``. In string values ``_`` stands for a space
(``gpu_name=RTX_4090``). ``field=any`` (or ``?``/``*``) removes a filter, e.g. a default. Numbers stay strings, as the
CLI sends them (the API compares them numerically), except ``cpu_ram``, ``gpu_ram``, ``gpu_total_ram`` (GB → MB,
×1000) and ``duration`` (days → seconds) which are converted to floats. Aliases: ``dph``→``dph_total``, ``cuda_vers``→
``cuda_max_good``, ``dlperf_usd``, ``flops_usd``, ``display_active``. Unknown fields are kept and logged as a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

OFFER_FIELDS = frozenset(
    {
        "bw_nvlink", "compute_cap", "cpu_arch", "cpu_cores", "cpu_cores_effective", "cpu_ghz", "cpu_ram",
        "cuda_max_good", "datacenter", "direct_port_count", "driver_version", "disk_bw", "disk_space", "dlperf",
        "dlperf_per_dphtotal", "dph_total", "duration", "external", "flops_per_dphtotal", "gpu_arch",
        "gpu_display_active", "gpu_frac", "gpu_mem_bw", "gpu_name", "gpu_ram", "gpu_total_ram", "gpu_max_power",
        "gpu_max_temp", "has_avx", "host_id", "id", "inet_down", "inet_down_cost", "inet_up", "inet_up_cost",
        "machine_id", "min_bid", "mobo_name", "num_gpus", "pci_gen", "pcie_bw", "reliability", "rentable", "rented",
        "storage_cost", "static_ip", "total_flops", "ubuntu_version", "verification", "verified", "vms_enabled",
        "geolocation", "cluster_id",
    }
)  # fmt: skip

OFFER_ALIASES = {
    "cuda_vers": "cuda_max_good",
    "display_active": "gpu_display_active",
    "dlperf_usd": "dlperf_per_dphtotal",
    "dph": "dph_total",
    "flops_usd": "flops_per_dphtotal",
}

OFFER_MULTIPLIERS = {"cpu_ram": 1000.0, "gpu_ram": 1000.0, "gpu_total_ram": 1000.0, "duration": 24.0 * 60.0 * 60.0}

# What ``vastai search offers`` adds unless ``--no-default``; the CLI also hides rented offers.
DEFAULT_FILTERS: dict[str, dict[str, Any]] = {
    "verified": {"eq": True},
    "external": {"eq": False},
    "rentable": {"eq": True},
    "rented": {"eq": False},
}

OPERATORS = {
    ">=": "gte", ">": "gt", "gt": "gt", "gte": "gte",
    "<=": "lte", "<": "lt", "lt": "lt", "lte": "lte",
    "!=": "neq", "==": "eq", "=": "eq", "eq": "eq", "neq": "neq", "noteq": "neq", "not eq": "neq",
    "notin": "notin", "not in": "notin", "nin": "notin", "in": "in",
}  # fmt: skip

_COMPARISON = re.compile(
    r"([a-zA-Z0-9_]+)( *[=><!]+| +(?:[lg]te?|nin|neq|eq|not ?eq|not ?in|in) )?( *)(\[[^\]]+\]|\"[^\"]+\"|[^ ]+)?( *)"
)
_WILDCARDS = ("?", "*", "any")


class QueryError(ValueError):
    """A query string that does not follow the ``vastai search offers`` grammar; the message names the part."""


def _convert(value: str) -> Any:
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    if value in ("None", "null"):
        return None
    return value


def parse_query(query: str | None, defaults: bool = True) -> dict[str, dict[str, Any]]:
    """Parse a ``vastai search offers`` query into the JSON filter body of ``POST /api/v0/bundles/``.

    >>> parse_query("gpu_name=RTX_4090 num_gpus=1 dph<0.5 gpu_ram>=20", defaults=False)
    {'gpu_name': {'eq': 'RTX 4090'}, 'num_gpus': {'eq': '1'}, 'dph_total': {'lt': '0.5'}, 'gpu_ram': {'gte': 20000.0}}
    """
    result: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULT_FILTERS.items()} if defaults else {}
    text = (query or "").strip()
    if not text:
        return result
    matches = _COMPARISON.findall(text)
    consumed = "".join("".join(groups) for groups in matches)
    if consumed != text:
        raise QueryError(
            f"offer query: could not parse {text!r} (consumed only {consumed!r}); quote values with spaces"
        )
    for raw_field, raw_op, _, raw_value, _ in matches:
        field = OFFER_ALIASES.get(raw_field, raw_field)
        op_text = raw_op.strip()
        op = OPERATORS.get(op_text)
        if not op:
            raise QueryError(f"offer query: missing or unknown operator {op_text!r} after field {raw_field!r}")
        value_text = raw_value.strip(",[]")
        if not value_text:
            raise QueryError(f"offer query: no value for field {raw_field!r}")
        if field not in OFFER_FIELDS:
            logger.warning("offer query: unrecognised field %r (sent anyway)", field)
        if value_text in _WILDCARDS:
            if op != "eq":
                raise QueryError(f"offer query: wildcard {value_text!r} only works with '=' (field {raw_field!r})")
            result.pop(field, None)
            continue
        value: Any
        if op in ("in", "notin"):
            value = [item.strip().replace("_", " ").strip('"') for item in value_text.split(",") if item.strip()]
            if not value:
                raise QueryError(f"offer query: empty list for field {raw_field!r}")
        else:
            value = value_text.replace("_", " ").strip('"')
        if field in OFFER_MULTIPLIERS:
            try:
                value = float(value) * OFFER_MULTIPLIERS[field]
            except (TypeError, ValueError):
                raise QueryError(f"offer query: field {raw_field!r} needs a number, got {value_text!r}") from None
        elif isinstance(value, str):
            value = _convert(value)
        else:
            value = [_convert(item) for item in value]
        result.setdefault(field, {})[op] = value
    return result


def parse_order(order: str | None) -> list[list[str]]:
    """``"dph_total"`` → ``[["dph_total", "asc"]]``; ``"score-"`` → ``[["score", "desc"]]``; comma-separated list."""
    pairs: list[list[str]] = []
    for name in (order or "").split(","):
        name = name.strip()
        if not name:
            continue
        direction = "asc"
        field = name
        if name.strip("-") != name:
            direction, field = "desc", name.strip("-")
        if name.strip("+") != name:
            direction, field = "asc", name.strip("+")
        pairs.append([OFFER_ALIASES.get(field, field), direction])
    return pairs


def search_body(
    query: str | Mapping[str, Any] | None,
    *,
    order: str = "dph_total",
    limit: int | None = 10,
    disk_gb: float = 20.0,
    offer_type: str = "on-demand",
    defaults: bool = True,
) -> dict[str, Any]:
    """The complete ``POST /api/v0/bundles/`` body: filters + ``order``, ``type``, ``limit``, ``allocated_storage``.

    A mapping ``query`` is taken as an already-parsed filter object (defaults are still added under it).
    """
    if isinstance(query, Mapping):
        body: dict[str, Any] = {k: dict(v) for k, v in DEFAULT_FILTERS.items()} if defaults else {}
        body.update({key: dict(value) if isinstance(value, Mapping) else value for key, value in query.items()})
    else:
        body = dict(parse_query(query, defaults=defaults))
    body["order"] = parse_order(order)
    body["type"] = offer_type
    if limit is not None:
        body["limit"] = int(limit)
    body["allocated_storage"] = float(disk_gb)
    return body
