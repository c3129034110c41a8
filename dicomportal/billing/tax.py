"""Every tax rule in one place: VAT number formats, the EU reverse charge, rates by country.

Rates come from configuration (``TAX_RATES``: country -> basis points; a country not listed pays
the ``"default"`` entry, 0 without one). An EU business with a valid VAT number of its own member
state, other than the seller's, pays 0% and its invoice carries the reverse-charge mention.
Greece's VAT numbers start with ``EL``, not ``GR``.
Tax IDs are checked locally with python-stdnum (format and check digits; no VIES call): EU VAT,
UK VAT, Swiss UID, US EIN, Canadian BN and Australian ABN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stdnum.au import abn as au_abn
from stdnum.ca import bn as ca_bn
from stdnum.ch import uid as ch_uid
from stdnum.eu import vat
from stdnum.gb import vat as gb_vat
from stdnum.us import ein as us_ein

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


@dataclass(frozen=True)
class _TaxIdRule:
    kind: str  # Stripe's name for the type: gb_vat, ch_uid, ...
    module: Any  # the python-stdnum module that checks it
    label: str
    example: str
    prefix: str = ""  # written before the compact number (UK VAT: GB980780684); else stdnum's format


# Outside the EU: the numbers python-stdnum checks locally (format and check digits, no registry).
TAX_ID_RULES = {
    "GB": _TaxIdRule("gb_vat", gb_vat, "UK VAT number", "GB980780684", prefix="GB"),
    "CH": _TaxIdRule("ch_uid", ch_uid, "Swiss UID", "CHE-100.155.212"),
    "US": _TaxIdRule("us_ein", us_ein, "US EIN", "12-3456789"),
    "CA": _TaxIdRule("ca_bn", ca_bn, "Canadian business number", "123456782"),
    "AU": _TaxIdRule("au_abn", au_abn, "Australian ABN", "83 914 571 673"),
}


def normalized_tax_id(country: str, tax_id: str) -> str:
    """``tax_id`` checked for ``country`` and written the standard way (EU VAT: compact with its
    prefix; UK VAT, Swiss UID, US EIN, Canadian BN, Australian ABN: python-stdnum's format). Other
    countries' numbers are kept as typed.

    :raises ValueError: with a message for the customer when it is not a valid number there.
    """
    country = country.upper()
    if is_eu_country(country):
        return eu_vat_number(country, tax_id)
    rule = TAX_ID_RULES.get(country)
    if rule is None:
        return tax_id.strip()
    if not rule.module.is_valid(tax_id):
        raise ValueError(f"Enter a valid {rule.label}, for example {rule.example}.")
    if rule.prefix:
        return rule.prefix + str(rule.module.compact(tax_id)).removeprefix(rule.prefix)
    write = getattr(rule.module, "format", rule.module.compact)  # Canada's BN has no format()
    return str(write(tax_id))


def tax_id_type(country: str, tax_id: str | None) -> str | None:
    """What kind of tax ID the customer gave (``eu_vat``, ``gb_vat``, ``ch_uid``, ``us_ein``,
    ``ca_bn``, ``au_abn``), or None when there is none or its kind is not one we check."""
    if not tax_id:
        return None
    if is_eu_country(country):
        return "eu_vat"
    rule = TAX_ID_RULES.get(country.upper())
    return rule.kind if rule else None


def tax_for(profile: BillingProfile | None, config: dict[str, Any]) -> TaxDecision:
    """The tax for a customer: their country's rate, or 0% with the mention for an EU business
    in another member state than the seller (reverse charge)."""
    if profile is None:
        return TaxDecision(0)
    country = profile.country.upper()
    seller = str(config.get("SELLER_COUNTRY", "")).upper()
    if _is_eu_business_abroad(profile, country, seller):
        return TaxDecision(0, REVERSE_CHARGE_NOTE)
    rates = config.get("TAX_RATES", {})
    return TaxDecision(int(rates.get(country, rates.get("default", 0))))


def _is_eu_business_abroad(profile: BillingProfile, country: str, seller: str) -> bool:
    if not profile.tax_id or not is_eu_country(country) or country == seller:
        return False
    number = vat.compact(profile.tax_id)
    return bool(vat.is_valid(number)) and number[:2].upper() == vat_prefix(country)
