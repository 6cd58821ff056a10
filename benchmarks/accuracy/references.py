"""Load the stored reference tables (tests/models/data/*_quantiles.json) as interpolated CDFs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from density_engine.models.rough_heston_fourier import ReferenceCDF, table_levels

DATA = Path(__file__).resolve().parents[2] / "tests" / "models" / "data"
PUBLISHED_LEVELS = (np.arange(512) + 0.5) / 512


@dataclass
class ReferenceCase:
    name: str
    params: dict[str, float]
    days: int
    maturity: float
    cdf: ReferenceCDF
    quantiles: np.ndarray  # at the published levels
    accuracy: float  # stated accuracy of the reference in CDF


def load_cases(model: str) -> list[ReferenceCase]:
    payload = json.loads((DATA / f"{model}_quantiles.json").read_text())
    levels = np.asarray(payload.get("table_levels", table_levels()), dtype=float)
    cases = []
    for case in payload["cases"]:
        q = np.asarray(case["quantiles"], dtype=float)
        lv = levels
        if "table_levels" not in payload and model == "rough_bergomi":
            # files written before RB_TAIL_LEVELS: the 1e-6 and 1e-5 levels lie outside the evaluated range
            keep = (levels >= 1e-4) & (levels <= 1 - 1e-4)
            q, lv = q[keep], levels[keep]
        published = q[np.searchsorted(lv, PUBLISHED_LEVELS[0]) :][:512]
        accuracy = float(
            case.get("accuracy", max(case.get("check_max_abs_cdf", 0), case.get("interpolation_max_abs_cdf", 0)))
        )
        cases.append(
            ReferenceCase(
                case["name"],
                case["params"],
                int(case["days"]),
                float(case["maturity"]),
                ReferenceCDF(lv, q),
                published,
                accuracy,
            )
        )
    return cases


def sup_cdf_error(reference: ReferenceCDF, quantiles: np.ndarray) -> float:
    """max over the published levels of |F_ref(q_p) - p| (quantiles at the 512 published levels)."""
    return float(np.max(np.abs(reference(quantiles) - PUBLISHED_LEVELS)))
