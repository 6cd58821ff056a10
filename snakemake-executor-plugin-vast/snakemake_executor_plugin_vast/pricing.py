"""Pricing GPU-hours at current Vast offer prices, and the executor's start-up estimate check.

:func:`quote_gpu_hours` takes GPU-hours per GPU type (e.g. from a workflow's own throughput table) and returns, per
type, the cheapest $/GPU-hour among the offers that match the run's query (``--vast-offer-query``, the price cap, and
``gpu_name=<type>``), so ``cost = GPU-hours × $/GPU-hour``. Offers with several GPUs are priced per GPU; interruptible
rents at the bid (``bid_factor`` × ``min_bid``).

The executor reads an estimate at start: the JSON printed by ``--vast-estimate-command`` (contract below), or, without
that command, the jobs Snakemake is about to run (``runtime`` minutes × ``gpu`` per job, priced at the cheapest matching
GPU of any type). It prints the table and refuses to start when the expected cost exceeds ``--vast-budget``, unless
``--vast-allow-over-budget``. Estimate JSON contract (extra keys ignored)::

    {"models": {"<name>": {"gpu_hours": {"<gpu type>": float}, ...}, ...},
     "total": {"gpu_hours": {"<gpu type>": float}, "cpu_hours": float}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class EstimateError(ValueError):
    """An estimate that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Quote:
    """The price of one GPU type's share of the work."""

    gpu_type: str
    gpu_hours: float
    usd_per_gpu_hour: float | None
    """Cheapest matching $/GPU-hour (None: no matching offer now)."""
    offers: int
    """Matching offers found."""

    @property
    def cost_usd(self) -> float | None:
        """GPU-hours × $/GPU-hour (None without a price)."""
        return None if self.usd_per_gpu_hour is None else self.gpu_hours * self.usd_per_gpu_hour


def gpu_hours_of(estimate: Mapping[str, Any]) -> dict[str, float]:
    """GPU-hours per GPU type of an estimate (``total.gpu_hours``, else the sum over ``models``)."""
    if not isinstance(estimate, Mapping):
        raise EstimateError("the estimate is not a JSON object")
    total = estimate.get("total")
    hours = total.get("gpu_hours") if isinstance(total, Mapping) else None
    if hours is None:
        hours = {}
        for name, model in (estimate.get("models") or {}).items():
            if not isinstance(model, Mapping) or not isinstance(model.get("gpu_hours"), Mapping):
                raise EstimateError(f"model {name!r} of the estimate has no gpu_hours object")
            for gpu, value in model["gpu_hours"].items():
                hours[gpu] = hours.get(gpu, 0.0) + float(value)
    if not isinstance(hours, Mapping) or not hours:
        raise EstimateError("the estimate has no GPU-hours (total.gpu_hours or models.*.gpu_hours)")
    try:
        return {str(gpu): float(value) for gpu, value in hours.items()}
    except (TypeError, ValueError) as exc:
        raise EstimateError(f"GPU-hours must be numbers: {exc}") from None


def parse_estimate(text: str) -> dict[str, float]:
    """GPU-hours per GPU type from an estimate command's output (the last JSON object in it)."""
    start = text.find("{")
    if start < 0:
        raise EstimateError("no JSON object in the estimate output")
    try:
        data = json.loads(text[start:])
    except ValueError as exc:
        raise EstimateError(f"the estimate output is not JSON: {exc}") from None
    return gpu_hours_of(data)


def per_gpu_price(offer: Any, *, interruptible: bool = False, bid_factor: float = 1.25) -> float:
    """$/h per GPU of renting ``offer`` (the bid when interruptible; storage included)."""
    from snakemake_executor_plugin_vast.offers import bid_price

    total = bid_price(offer, bid_factor) if interruptible else float(offer.dph_total or 0.0)
    return total / max(1, int(offer.num_gpus or 1))


def gpu_matches(gpu_name: str, gpu_type: str) -> bool:
    """True when an offer's ``gpu_name`` is of ``gpu_type``: the same words from the start, case and ``_``/space
    insensitive (``A100`` matches ``A100 SXM4`` and ``A100 PCIE``; ``RTX_4090`` matches ``RTX 4090``, not
    ``RTX 4090D``). ``any``/``*`` matches every GPU."""
    wanted = gpu_type.replace("_", " ").split()
    if not wanted or gpu_type.strip() in ("any", "*"):
        return True
    have = gpu_name.replace("_", " ").split()
    return [w.lower() for w in have[: len(wanted)]] == [w.lower() for w in wanted]


def quote_gpu_hours(
    client: Any,
    base_query: str,
    gpu_hours: Mapping[str, float],
    *,
    max_price: float | None = None,
    disk_gb: float = 32.0,
    interruptible: bool = False,
    bid_factor: float = 1.25,
    limit: int = 500,
) -> list[Quote]:
    """Price GPU-hours per GPU type at the cheapest matching offers (see the module docstring): ONE search with the
    run's query and price cap, then per type the offers whose GPU is of that type (:func:`gpu_matches`)."""
    query = " ".join(c for c in (base_query.strip(), f"dph_total<={max_price:g}" if max_price is not None else "") if c)
    offers = client.search_offers(
        query, order="dph_total", limit=limit, disk_gb=disk_gb, offer_type="bid" if interruptible else "on-demand"
    )
    quotes = []
    for gpu_type, hours in gpu_hours.items():
        mine = [o for o in offers if gpu_matches(o.gpu_name or "", gpu_type)]
        prices = [per_gpu_price(o, interruptible=interruptible, bid_factor=bid_factor) for o in mine]
        quotes.append(Quote(gpu_type, float(hours), min(prices) if prices else None, len(mine)))
    return quotes


def expected_quote(quotes: list[Quote]) -> Quote | None:
    """The quote of the GPU type the pool would rent first (the cheapest $/GPU-hour among matching offers)."""
    priced = [q for q in quotes if q.usd_per_gpu_hour is not None]
    return min(priced, key=lambda q: q.usd_per_gpu_hour or 0.0) if priced else None


def format_quotes(quotes: list[Quote], budget: float | None, source: str) -> str:
    """The table the executor prints at start."""
    lines = [f"vast: cost estimate ({source}) at current offer prices:"]
    for q in quotes:
        price = "no matching offer" if q.usd_per_gpu_hour is None else f"${q.usd_per_gpu_hour:.4f}/GPU-h"
        cost = "-" if q.cost_usd is None else f"${q.cost_usd:.2f}"
        lines.append(f"  {q.gpu_type:<20} {q.gpu_hours:10.3f} GPU-h  {price:>22}  {cost:>10}  ({q.offers} offers)")
    chosen = expected_quote(quotes)
    if chosen is not None:
        lines.append(
            f"  expected: ${chosen.cost_usd:.2f} on {chosen.gpu_type} (the cheapest matching GPU)"
            + (f"; budget ${budget:g}" if budget is not None else "")
        )
    return "\n".join(lines)
