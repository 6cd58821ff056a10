"""Vast.ai layer: REST client and offer queries (``client``, ``query``); SSH, host pool and job runner build on them."""

from density_engine.vast.client import (
    DEFAULT_API_URL,
    AuthError,
    Instance,
    InstanceGone,
    Offer,
    OfferUnavailable,
    RateLimited,
    SshEndpoint,
    VastClient,
    VastError,
    resolve_api_key,
)
from density_engine.vast.query import QueryError, parse_query

__all__ = [
    "DEFAULT_API_URL",
    "AuthError",
    "Instance",
    "InstanceGone",
    "Offer",
    "OfferUnavailable",
    "QueryError",
    "RateLimited",
    "SshEndpoint",
    "VastClient",
    "VastError",
    "parse_query",
    "resolve_api_key",
]
