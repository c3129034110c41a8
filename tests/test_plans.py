"""The pricing page: plans monthly or yearly, savings, add-ons and overage, the htmx toggle, the way in."""

from __future__ import annotations

import copy
import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.accounts import create_user, start_session
from dicomportal.billing.catalog import (
    active_overage_rates,
    addon_offers,
    load_catalog_file,
    offers,
    seed_catalog,
)
from dicomportal.billing.money import format_money
from dicomportal.extensions import db
from dicomportal.models import Interval
from tests.helpers.auth import AuthActions


def page_text(markup: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def plan_cards(markup: str) -> dict[str, str]:
    """The visible text of each plan card, by plan name."""
    cards = re.findall(r'<article class="plan-card.*?</article>', markup, re.S)
    return {page_text(re.search(r"<h3[^>]*>(.*?)</h3>", c, re.S).group(1)): page_text(c) for c in cards}


def subscribe_links(markup: str) -> dict[str, str]:
    """The href of each card's Subscribe button, by plan code."""
    found = re.findall(
        r'aria-labelledby="plan-([\w-]+)">.*?class="plan-cta[^"]*"\s+href="([^"]+)"', markup, re.S
    )
    return {code: html.unescape(href) for code, href in found}


def get_pricing(client: FlaskClient, interval: str | None = None, **headers: str) -> str:
    """The pricing page (or its htmx partial) for ``interval``, which must answer 200."""
    response = client.get("/plans/", query_string={"interval": interval} if interval else {}, headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_home_page_redirects_to_pricing(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/plans/"


def test_monthly_pricing_lists_the_four_plans_at_their_catalog_prices(client: FlaskClient) -> None:
    cards = plan_cards(get_pricing(client))

    expected = offers(Interval.MONTH)
    assert list(cards) == [o.plan.name for o in expected] == ["Patient", "Professional", "MD", "Surgical"]
    for offer in expected:
        card = cards[offer.plan.name]
        assert f"{format_money(offer.price.amount_cents)} / month" in card
        assert f"Billed {format_money(offer.price.amount_cents)} monthly" in card
        assert offer.plan.audience in card
    assert "$9 / month" in cards["Patient"]
    assert "Save" not in " ".join(cards.values())


def test_plan_cards_show_storage_credits_and_features(client: FlaskClient) -> None:
    cards = plan_cards(get_pricing(client))

    assert "1 TB cloud storage" in cards["Surgical"]
    assert "2,000 processing credits a month" in cards["Surgical"]
    assert "5 GB cloud storage" in cards["Patient"]
    assert "Multi-planar reconstruction (MPR)" in cards["MD"]
    # the storage line is printed once, from the plan's own figure
    assert cards["Patient"].count("cloud storage") == 1


def test_the_highlighted_plan_is_marked_most_popular_in_words(client: FlaskClient) -> None:
    cards = plan_cards(get_pricing(client))

    assert [name for name, text in cards.items() if "Most popular" in text] == ["Professional"]


def test_annual_pricing_shows_yearly_prices_monthly_equivalents_and_savings(client: FlaskClient) -> None:
    markup = get_pricing(client, "year")
    cards = plan_cards(markup)

    for offer in offers(Interval.YEAR):
        card = cards[offer.plan.name]
        yearly = format_money(offer.price.amount_cents)
        assert f"{yearly} / year" in card
        assert f"Billed {yearly} yearly" in card
        assert f"{format_money(offer.monthly_equivalent_cents)} a month" in card
        assert f"Save {offer.saving_percent}%" in card
    assert "$54 / year" in cards["Patient"]
    assert "$4.50 a month" in cards["Patient"]
    assert "Save 50%" in cards["Patient"]
    assert "Save 31%" in cards["Professional"]
    assert "Save up to 50%" in page_text(markup)


def test_interval_toggle_is_plain_links_enhanced_by_htmx(client: FlaskClient) -> None:
    markup = get_pricing(client)

    for interval in ("month", "year"):
        link = re.search(rf'<a id="interval-{interval}"[^>]*>', markup).group(0)
        assert f'href="/plans/?interval={interval}"' in link
        assert f'hx-get="/plans/?interval={interval}"' in link
        assert 'hx-target="#plan-cards"' in link and 'hx-push-url="true"' in link
    assert re.search(r'<a id="interval-month"[^>]*aria-current="page"', markup)
    assert not re.search(r'<a id="interval-year"[^>]*aria-current', markup)


def test_htmx_toggle_gets_only_the_plan_cards_with_the_toggle_state(client: FlaskClient) -> None:
    response = client.get("/plans/?interval=year", headers={"HX-Request": "true"})

    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body and "Add-ons and overage" not in body
    assert body.lstrip().startswith('<section id="plan-cards"')
    assert re.search(r'<a id="interval-year"[^>]*aria-current="page"', body)
    assert "$54 / year" in page_text(body)
    assert "HX-Request" in response.headers["Vary"]


def test_full_page_also_varies_on_hx_request(client: FlaskClient) -> None:
    response = client.get("/plans/")

    assert "<html" in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]


def test_htmx_history_restore_gets_the_whole_page(client: FlaskClient) -> None:
    markup = get_pricing(client, "year", **{"HX-Request": "true", "HX-History-Restore-Request": "true"})

    assert "<html" in markup and 'id="plan-cards"' in markup


def test_boosted_link_gets_the_whole_page(client: FlaskClient) -> None:
    markup = get_pricing(client, "year", **{"HX-Request": "true", "HX-Boosted": "true"})

    assert "<html" in markup and 'id="plan-cards"' in markup


def test_a_header_that_is_not_true_is_not_htmx(client: FlaskClient) -> None:
    markup = get_pricing(client, "year", **{"HX-Request": "false"})

    assert "<html" in markup and "$54 / year" in page_text(markup)


@pytest.mark.parametrize("interval", ["weekly", "YEAR", "", "<script>"])
def test_unknown_interval_shows_monthly_prices(client: FlaskClient, interval: str) -> None:
    markup = get_pricing(client, interval)

    assert "$9 / month" in plan_cards(markup)["Patient"]
    assert re.search(r'<a id="interval-month"[^>]*aria-current="page"', markup)


def test_add_ons_and_overage_are_listed_with_their_prices(client: FlaskClient) -> None:
    text = page_text(get_pricing(client))

    addons, rates = addon_offers(), active_overage_rates()
    assert addons and rates
    for addon in addons:
        assert addon.name in text and addon.description in text
        assert f"{format_money(addon.monthly_cents)} {format_money(addon.yearly_cents)}" in text
    for rate in rates:
        assert f"{format_money(rate.unit_amount_cents)} per {rate.name.lower()}" in text
    assert "Extra storage, 100 GB" in text and "$10 $96" in text
    assert "$0.50 per extra processing credit" in text
    assert "Only after we've told you and you've agreed; you can set a cap." in text


def test_terms_and_help_centre_link_are_on_the_page(client: FlaskClient) -> None:
    markup = get_pricing(client)

    assert "Prices in USD. Renews automatically. Cancel any time. No hidden fees." in page_text(markup)
    assert 'href="/help/">help centre</a>' in markup


def test_anonymous_visitor_signs_up_first_then_subscribes(client: FlaskClient) -> None:
    for interval in ("month", "year"):
        links = subscribe_links(get_pricing(client, interval))

        assert list(links) == ["patient", "professional", "md", "surgical"]
        href = urlsplit(links["md"])
        assert href.path == "/auth/signup"
        assert parse_qs(href.query)["next"] == [f"/checkout/md?interval={interval}"]


def test_signed_in_customer_goes_straight_to_subscribe(app: Flask, client: FlaskClient) -> None:
    user = create_user("pat@example.com", "correct horse battery", "Pat Lee")
    start_session(user)  # logged in without the login form
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True

    links = subscribe_links(get_pricing(client, "year"))

    assert links["surgical"] == "/checkout/surgical?interval=year"
    assert client.get(links["surgical"]).status_code == 200


def test_a_changed_price_shows_on_the_pricing_page(app: Flask, client: FlaskClient) -> None:
    data = copy.deepcopy(load_catalog_file())
    patient = next(p for p in data["plans"] if p["code"] == "patient")
    patient["prices"]["month"] = 1250
    seed_catalog(data)

    cards = plan_cards(get_pricing(client))

    assert "$12.50 / month" in cards["Patient"]
    assert "$9 / month" not in cards["Patient"]
    annual = get_pricing(client, "year")
    assert "Save 64%" in plan_cards(annual)["Patient"]  # $150 a year monthly, against $54
    assert "Save up to 64%" in page_text(annual)


def test_pricing_page_has_no_inline_styles_or_scripts(client: FlaskClient) -> None:
    markup = get_pricing(client)

    assert "style=" not in markup
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", markup)


# --- the pricing page from memory -------------------------------------------------------------------


def test_anonymous_visitors_get_the_pricing_page_from_memory_without_a_session_cookie(
    app: Flask, client: FlaskClient
) -> None:
    from sqlalchemy import event

    from dicomportal.extensions import db

    first = client.get("/plans/?interval=year")
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    again = client.get("/plans/?interval=year")

    assert again.get_data() == first.get_data() and again.status_code == 200
    assert statements == []  # the catalog revision was read a moment ago: no query at all
    assert "Set-Cookie" not in again.headers and "X-CSRFToken" not in again.get_data(as_text=True)


def test_a_catalog_change_shows_on_the_next_request_of_every_visitor(app: Flask, client: FlaskClient) -> None:
    from dicomportal.billing.catalog import load_catalog_file, seed_catalog

    assert "$29" in page_text(client.get("/plans/").get_data(as_text=True))
    data = load_catalog_file()
    next(p for p in data["plans"] if p["code"] == "professional")["prices"]["month"] = 3400
    assert seed_catalog(data) > 0

    text = page_text(client.get("/plans/").get_data(as_text=True))
    assert "$34" in text and "$29" not in text


def test_a_logged_in_visitor_gets_a_page_of_their_own(client: FlaskClient, auth: AuthActions) -> None:
    client.get("/plans/")  # an anonymous visitor fills the cache
    auth.signup()
    page = client.get("/plans/").get_data(as_text=True)
    assert "Log out" in page and "X-CSRFToken" not in page  # the logout form carries its own token
