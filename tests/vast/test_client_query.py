"""Offer queries in the `vastai search offers` grammar (reference vast-api.md §1.3, verified against vastai 1.9.1)."""

from __future__ import annotations

import pytest

from snakemake_executor_plugin_vast.query import DEFAULT_FILTERS, QueryError, parse_order, parse_query, search_body


def test_matches_vastai_output_for_the_reference_example() -> None:
    query = (
        "gpu_name=RTX_4090 num_gpus=1 reliability>0.98 dph<0.5 cuda_vers>=12.1 gpu_ram>=20 inet_down>200 "
        "geolocation in [US,CA]"
    )
    expected = {  # vastai 1.9.1 parse_query output recorded in vast-api.md §1.3 (plus the CLI's rented=false)
        "verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True}, "rented": {"eq": False},
        "gpu_name": {"eq": "RTX 4090"}, "num_gpus": {"eq": "1"}, "reliability": {"gt": "0.98"},
        "dph_total": {"lt": "0.5"}, "cuda_max_good": {"gte": "12.1"}, "gpu_ram": {"gte": 20000.0},
        "inet_down": {"gt": "200"}, "geolocation": {"in": ["US", "CA"]},
    }  # fmt: skip
    assert parse_query(query) == expected


def test_wildcard_removes_a_default_and_ops_merge_per_field() -> None:
    parsed = parse_query("verified=any dph>=0.1 dph<=0.9 num_gpus!=2 gpu_name notin [A100_SXM4,H100]")
    assert "verified" not in parsed
    assert parsed["dph_total"] == {"gte": "0.1", "lte": "0.9"}
    assert parsed["num_gpus"] == {"neq": "2"}
    assert parsed["gpu_name"] == {"notin": ["A100 SXM4", "H100"]}


def test_booleans_units_and_no_defaults() -> None:
    parsed = parse_query("rentable=false cpu_ram>=32 duration>=2 static_ip=true", defaults=False)
    assert parsed == {
        "rentable": {"eq": False},
        "cpu_ram": {"gte": 32000.0},
        "duration": {"gte": 2 * 86400.0},
        "static_ip": {"eq": True},
    }
    assert parse_query("", defaults=True) == DEFAULT_FILTERS
    assert parse_query(None, defaults=False) == {}


@pytest.mark.parametrize(
    ("query", "named"),
    [("num_gpus 1", "num_gpus"), ("gpu_ram>=lots", "gpu_ram"), ("dph>0.5 verified<any", "verified"), ("x=", "x")],
)
def test_bad_queries_name_the_field(query: str, named: str) -> None:
    with pytest.raises(QueryError, match=named):
        parse_query(query)


def test_order_and_full_body() -> None:
    assert parse_order("dph_total") == [["dph_total", "asc"]]
    assert parse_order("score-,dph+") == [["score", "desc"], ["dph_total", "asc"]]
    body = search_body("num_gpus=2", order="dph", limit=5, disk_gb=40)
    assert body["num_gpus"] == {"eq": "2"}
    assert (body["order"], body["type"], body["limit"], body["allocated_storage"]) == (
        [["dph_total", "asc"]],
        "on-demand",
        5,
        40.0,
    )
    assert search_body({"num_gpus": {"gte": 1}}, defaults=False)["num_gpus"] == {"gte": 1}
