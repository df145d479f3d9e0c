"""Pricing: the ASE's fees per asset and the exchange rates between assets (no HTTP here:
operation modules call these services and map their refusals).

- `fees`: fees per asset and side, `fee_for`, and `fee_minor`, the fee on an amount;
- `rates`: the static rate table, a provider's rates over HTTP, and `rates_for`.
"""

from opase.pricing.fees import Fee, ceil_div, fee_for, fee_minor, list_fees, set_fee
from opase.pricing.rates import (
    ExchangeRatesUnavailable,
    RatesProvider,
    rates_for,
    set_static_rates,
    static_rates,
)

__all__ = [
    "ExchangeRatesUnavailable",
    "Fee",
    "RatesProvider",
    "ceil_div",
    "fee_for",
    "fee_minor",
    "list_fees",
    "rates_for",
    "set_fee",
    "set_static_rates",
    "static_rates",
]
