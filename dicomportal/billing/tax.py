"""Every tax rule in one place: VAT number formats, the EU reverse charge, rates by country.

Rates come from configuration (``TAX_RATES``: country -> basis points, 0 when absent). An EU
business with a valid VAT number of its own member state, other than the seller's, pays 0% and its
invoice carries the reverse-charge mention. Greece's VAT numbers start with ``EL``, not ``GR``.
VAT numbers are checked locally with python-stdnum (format and check digits; no VIES call).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stdnum.eu import vat

from dicomportal.models import BillingProfile

REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Council Directive 2006/112/EC)."
)


@dataclass(frozen=True)
class TaxDecision:
    """The rate an invoice is taxed at, and the mention it must carry (reverse charge)."""

    rate_bp: int
    note: str | None = None


def is_eu_country(country: str) -> bool:
    """True for an EU member state's ISO code."""
    return country.lower() in vat.MEMBER_STATES


def vat_prefix(country: str) -> str:
    """The prefix of a member state's VAT numbers (``EL`` for Greece, else the ISO code)."""
    return "EL" if country.upper() == "GR" else country.upper()


def eu_vat_number(country: str, tax_id: str) -> str:
    """``tax_id`` as a compact EU VAT number of ``country`` (the country prefix added if missing).

    :raises ValueError: with a message for the customer when it is not a valid VAT number there.
    """
    prefix = vat_prefix(country)
    number = re.sub(r"[\s.\-/]", "", tax_id).upper()
    if not number[:2].isalpha():
        number = prefix + number
    if not vat.is_valid(number):
        raise ValueError(f"Enter a valid EU VAT number, for example {prefix}123456789.")
    if number[:2] != prefix:
        raise ValueError("That VAT number is from another country than your billing address.")
    return str(vat.compact(number))


def tax_id_type(country: str, tax_id: str | None) -> str | None:
    """What kind of tax ID the customer gave: ``eu_vat`` in an EU member state, else unknown."""
    return "eu_vat" if tax_id and is_eu_country(country) else None


def tax_for(profile: BillingProfile | None, config: dict[str, Any]) -> TaxDecision:
    """The tax for a customer: their country's rate, or 0% with the mention for an EU business
    in another member state than the seller (reverse charge)."""
    if profile is None:
        return TaxDecision(0)
    country = profile.country.upper()
    seller = str(config.get("SELLER_COUNTRY", "")).upper()
    if _is_eu_business_abroad(profile, country, seller):
        return TaxDecision(0, REVERSE_CHARGE_NOTE)
    return TaxDecision(int(config.get("TAX_RATES", {}).get(country, 0)))


def _is_eu_business_abroad(profile: BillingProfile, country: str, seller: str) -> bool:
    if not profile.tax_id or not is_eu_country(country) or country == seller:
        return False
    number = vat.compact(profile.tax_id)
    return bool(vat.is_valid(number)) and number[:2].upper() == vat_prefix(country)
