"""Offer queries for a job's needs, the market's back-off when nothing matches, and the "no capacity" message.

The query of a rent is the user's ``--vast-offer-query`` plus clauses from the job's resources (``num_gpus``,
``cpu_ram``, ``disk_space``) and the price cap (``dph_total<=--vast-max-price``). When no offer matches, the market of
that query is searched again with exponential back-off (jobs wait meanwhile; waiting never fails a job) until
``--vast-offer-wait`` has passed without any offer and without a pool host that could serve the job; then the job fails
with :func:`no_capacity_message`, which says how many offers match with fewer filters, so the user knows which one to
loosen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class JobNeeds:
    """Resources one submission needs from a host."""

    gpus: int = 1
    mem_mb: int | None = None
    disk_gb: float | None = None


def bid_of(offer: Any, bid_factor: float) -> float:
    """The bid ($/h, without storage) of an interruptible rent: ``bid_factor`` × the offer's ``min_bid``."""
    raw = offer.raw or {}
    return float(raw.get("min_bid") or raw.get("dph_base") or offer.dph_total or 0.0) * bid_factor


def bid_price(offer: Any, bid_factor: float) -> float:
    """$/h of an interruptible rent: the bid plus the storage share of the offer's price (an interruptible search
    prices offers at ``min_bid`` + storage)."""
    raw = offer.raw or {}
    total = float(offer.dph_total or 0.0)
    storage = max(0.0, total - float(raw.get("min_bid") or total))
    return bid_of(offer, bid_factor) + storage


@dataclass(frozen=True)
class QueryParts:
    """The pieces of a rent's offer query (joined by :attr:`full`)."""

    base: str
    resources: str
    price: str

    @property
    def full(self) -> str:
        """The query sent to the search."""
        return " ".join(part for part in (self.base, self.resources, self.price) if part)


def query_parts(base_query: str, needs: JobNeeds, *, disk_gb: float, max_price: float | None) -> QueryParts:
    """The user's query, the job's resource clauses and the price cap (see the module docstring)."""
    clauses = [f"num_gpus>={max(1, needs.gpus)}"]
    if needs.mem_mb:
        clauses.append(f"cpu_ram>={needs.mem_mb / 1000.0:g}")  # the grammar takes GB (it multiplies by 1000)
    clauses.append(f"disk_space>={max(disk_gb, needs.disk_gb or 0.0):g}")
    price = f"dph_total<={max_price:g}" if max_price is not None else ""
    return QueryParts(base_query.strip(), " ".join(clauses), price)


@dataclass
class MarketState:
    """Back-off of one query's market: when to search again and since when nothing matched."""

    empty_since: float | None = None
    next_search: float = 0.0
    delay: float = 0.0
    searches: int = 0
    exhausted: bool = False
    """``--vast-offer-wait`` passed with nothing: the next acquisition searches once and fails at once if empty."""


@dataclass
class Market:
    """Back-off bookkeeping per query (thread-safe); the searching itself is done by the pool."""

    wait: float
    backoff_base: float = 5.0
    backoff_cap: float = 120.0
    states: dict[str, MarketState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def may_search(self, query: str, now: float) -> bool:
        """True when the back-off of ``query`` allows a search now."""
        with self._lock:
            state = self.states.get(query)
            return state is None or now >= state.next_search

    def found(self, query: str) -> None:
        """Offers matched: the market of this query is open again."""
        with self._lock:
            self.states.pop(query, None)

    def empty(self, query: str, now: float) -> MarketState:
        """Nothing matched (or every match vanished or is avoided): back off."""
        with self._lock:
            state = self.states.setdefault(query, MarketState(empty_since=now))
            state.searches += 1
            state.delay = self.backoff_base if state.delay <= 0 else min(self.backoff_cap, state.delay * 2)
            state.next_search = now + state.delay
            if state.empty_since is not None and now - state.empty_since >= self.wait:
                state.exhausted = True
            return state

    def state(self, query: str) -> MarketState | None:
        """The back-off state of a query (None: offers matched at the last search)."""
        with self._lock:
            return self.states.get(query)


def no_capacity_message(
    parts: QueryParts, counts: dict[str, int | None], waited: float, searches: int, avoided: int
) -> str:
    """The one clear message of a job that found no offer for ``--vast-offer-wait``: the query, how long, and how many
    offers match without the price cap, without the job's resource clauses, and with the base query alone."""

    def count(key: str) -> str:
        value = counts.get(key)
        return "?" if value is None else str(value)

    lines = [
        f"no Vast offer matched the query {parts.full!r} for {waited / 60:.1f} min ({searches} searches)",
        f"offers matching without the price cap ({parts.price or 'none'}): {count('no_price')}; "
        f"without the job's resource clauses ({parts.resources}): {count('no_resources')}; "
        f"with the base query alone ({parts.base or 'empty'}): {count('base')}",
    ]
    if avoided:
        lines.append(f"{avoided} matching machine(s) are avoided after failures in this run")
    lines.append("loosen --vast-offer-query, raise --vast-max-price or lower the job's resources, or wait longer "
                 "with --vast-offer-wait")  # fmt: skip
    return "; ".join(lines)


def counts_for(search: Any, parts: QueryParts) -> dict[str, int | None]:
    """How many offers match with fewer filters (three searches; ``search(query) -> list``; errors give None)."""
    variants = {
        "no_price": " ".join(p for p in (parts.base, parts.resources) if p),
        "no_resources": " ".join(p for p in (parts.base, parts.price) if p),
        "base": parts.base,
    }
    counts: dict[str, int | None] = {}
    for key, query in variants.items():
        try:
            counts[key] = len(search(query))
        except Exception:
            counts[key] = None
    return counts
