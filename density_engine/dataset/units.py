"""What the numbers of each model's rows mean: the unit of the return values and of the horizon (used by the dataset
card's units section and by the field metadata of the shards, so both say the same)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelUnits:
    """Units of one model's rows: ``values`` (quantiles, mean, std), ``horizon``, and the card's paragraph."""

    values: str
    horizon: str
    card: str


_ROUGH_CARD = (
    "`quantiles`, `mean` and `std` are log-returns X_h = log(S_h / S_0) over h × `dt` years: the variance parameters "
    "({variance}) are annualised variances, so no rescaling is needed. There is no drift (zero rates and dividends: "
    "e^X is a martingale), so the mean is negative, E[X_h] = −½ ∫ E[V_t] dt. A horizon of h is h model steps of `dt` "
    "years (`dt` = 1/252: h trading days). `skew` and `kurt` are unitless."
)

UNITS: dict[str, ModelUnits] = {
    "gjrgarch_normalized": ModelUnits(
        values="units of the returns' unconditional standard deviation (the model has unconditional variance 1); "
        "multiply by the asset's daily volatility for log-returns",
        horizon="number of returns (one model step = one return; trading days for daily returns)",
        card=(
            "`quantiles`, `mean` and `std` are in units of the returns' unconditional standard deviation: the model is "
            "normalised to unconditional variance 1 (omega = 1 − persistence), and X_h is the sum of h such "
            "unit-variance returns, not yet an asset's log-return. For an asset whose daily log-returns have "
            "unconditional volatility σ_d, multiply `quantiles`, `mean` and `std` by σ_d (e.g. 0.012 for 1.2 % a day, "
            "or σ_annual / √252); `skew` and `kurt` are unitless and stay as they are. `sigma0_sq` is the variance of "
            "the first return in the same units (1 = the long-run level). A horizon of h is h returns (h trading days "
            "for daily returns)."
        ),
    ),
    "rough_heston": ModelUnits(
        values="log-returns log(S_h / S_0) (annualised variance parameters, no rescaling)",
        horizon="model steps of dt years (column dt)",
        card=_ROUGH_CARD.format(variance="`v0`, `theta`"),
    ),
    "rough_bergomi": ModelUnits(
        values="log-returns log(S_h / S_0) (annualised variance parameters, no rescaling)",
        horizon="model steps of dt years (column dt)",
        card=_ROUGH_CARD.format(variance="`xi0`"),
    ),
}


def model_units(model: str) -> ModelUnits | None:
    """The units of a registered model (``None`` for an unknown one)."""
    return UNITS.get(model)
