"""The help centre: articles for every billing question, searchable as you type and without JavaScript."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from dicomportal.help import Article, ArticleError, help_centre, parse_article, render_markdown

REQUIRED_TOPICS = {
    "how-to-subscribe": "How to subscribe",
    "accepted-payment-methods": "Accepted payment methods",
    "billing-and-renewals": "How billing and renewals work",
    "managing-your-subscription": "Change your plan or billing interval",
    "invoices-and-billing-details": "Invoices, billing address and VAT",
    "pause-or-cancel": "Pause or cancel your subscription",
    "security-and-data-protection": "Security and data protection",
    "failed-or-duplicate-payments": "Failed payments, duplicate charges and refunds",
    "reset-your-password": "Resetting your password",
}
ALL_SLUGS = [article.slug for article in help_centre().articles]


@pytest.fixture
def client(web_client: FlaskClient) -> FlaskClient:
    """These pages read no database: one run, not one per database (see ``web_app``)."""
    return web_client


def result_slugs(html: str) -> list[str]:
    """The articles a results list links to, in order."""
    return re.findall(r'<h3><a href="/help/([\w-]+)">', html)


@pytest.mark.parametrize(("slug", "title"), REQUIRED_TOPICS.items())
def test_every_required_topic_has_an_article_linked_from_the_help_centre(
    client: FlaskClient, slug: str, title: str
) -> None:
    index = client.get("/help/").get_data(as_text=True)
    assert f'href="/help/{slug}"' in index
    page = client.get(f"/help/{slug}")
    assert page.status_code == 200
    assert f"<h1>{title}</h1>" in page.get_data(as_text=True)


def test_help_centre_lists_every_article_in_reading_order_with_its_summary(client: FlaskClient) -> None:
    html = client.get("/help/").get_data(as_text=True)
    assert result_slugs(html) == ALL_SLUGS
    assert ALL_SLUGS[0] == "how-to-subscribe"
    assert "Pick a plan, create your account and pay by card." in html


def test_help_without_trailing_slash_leads_to_the_help_centre(client: FlaskClient) -> None:
    response = client.get("/help?q=refund", follow_redirects=True)
    assert response.status_code == 200
    assert "failed-or-duplicate-payments" in response.get_data(as_text=True)


def test_search_for_refund_puts_the_failed_and_duplicate_payments_article_first_with_the_word_marked(
    client: FlaskClient,
) -> None:
    html = client.get("/help/?q=refund").get_data(as_text=True)
    assert result_slugs(html)[0] == "failed-or-duplicate-payments"
    assert "<mark>refund</mark>" in html
    assert re.search(r"\d+ articles match “refund”", html)


def test_search_for_cancel_finds_the_pause_and_cancel_article_first(client: FlaskClient) -> None:
    html = client.get("/help/?q=Cancel").get_data(as_text=True)
    assert result_slugs(html)[0] == "pause-or-cancel"
    assert "<mark>cancel</mark>" in html.lower()


@pytest.mark.parametrize(
    ("typed", "expected_first"),
    [
        ("refu", "failed-or-duplicate-payments"),
        ("invo", "invoices-and-billing-details"),
        ("passw", "reset-your-password"),
    ],
)
def test_search_matches_the_last_word_as_it_is_being_typed(
    client: FlaskClient, typed: str, expected_first: str
) -> None:
    html = client.get(f"/help/?q={typed}").get_data(as_text=True)
    assert result_slugs(html)[0] == expected_first
    assert re.search(rf"<mark>{typed}\w*</mark>", html, re.IGNORECASE)


def test_search_needs_every_word_to_match(client: FlaskClient) -> None:
    both = result_slugs(client.get("/help/?q=vat reverse").get_data(as_text=True))
    assert both == ["invoices-and-billing-details"]
    assert result_slugs(client.get("/help/?q=invoice xyzzy").get_data(as_text=True)) == []


def test_search_ranks_a_title_match_above_a_mention_in_the_text(client: FlaskClient) -> None:
    slugs = result_slugs(client.get("/help/?q=password").get_data(as_text=True))
    assert slugs[0] == "reset-your-password"
    assert "security-and-data-protection" in slugs[1:]


def test_search_with_no_match_suggests_other_words_and_support(client: FlaskClient) -> None:
    html = client.get("/help/?q=xyzzy").get_data(as_text=True)
    assert "No articles match “xyzzy”" in html
    for word in ("invoice", "cancel", "refund"):
        assert f'href="/help/?q={word}"' in html
    assert 'href="mailto:' in html


def test_html_in_the_search_query_is_shown_as_text_never_run(client: FlaskClient) -> None:
    html = client.get("/help/?q=<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    matching = client.get('/help/?q=refund "><img src=x onerror=alert(1)>').get_data(as_text=True)
    assert "<img src=x" not in matching


def test_htmx_search_returns_only_the_results_partial(client: FlaskClient) -> None:
    response = client.get("/help/?q=invoice", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="search-results"')
    assert "<html" not in html and "<form" not in html
    assert "invoices-and-billing-details" in html
    assert "HX-Request" in response.headers["Vary"]
    assert "HX-Request" in client.get("/help/?q=invoice").headers["Vary"]


def test_history_restore_gets_the_full_page(client: FlaskClient) -> None:
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    assert "<html" in client.get("/help/?q=invoice", headers=headers).get_data(as_text=True)


def test_search_form_is_labelled_works_without_javascript_and_announces_results(client: FlaskClient) -> None:
    html = client.get("/help/").get_data(as_text=True)
    assert re.search(r'<form method="get" action="/help/"', html)
    assert '<label for="help-q"' in html and 'id="help-q" name="q"' in html
    assert 'hx-trigger="input changed delay:250ms, search"' in html
    assert re.search(r'aria-live="polite">\s*<section id="search-results"', html)


def test_unknown_article_is_a_404(client: FlaskClient) -> None:
    response = client.get("/help/no-such-article")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


@pytest.mark.parametrize("slug", ALL_SLUGS)
def test_article_renders_cleanly_with_related_articles_and_a_way_back(client: FlaskClient, slug: str) -> None:
    html = client.get(f"/help/{slug}").get_data(as_text=True)
    assert "**" not in html and "##" not in html and "](" not in html
    assert "Related articles" in html
    assert re.search(r'<li><a href="/help/[\w-]+">', html)
    assert 'href="/help/">← All help articles' in html


@pytest.mark.parametrize("article", help_centre().articles, ids=ALL_SLUGS)
def test_article_links_lead_to_existing_articles(article: Article) -> None:
    for target in re.findall(r'<a href="([^"]+)"', article.html):
        assert target.split("#")[0] in ALL_SLUGS, f"{article.slug} links to {target}"


@pytest.mark.parametrize("article", help_centre().articles, ids=ALL_SLUGS)
def test_article_is_short_enough_to_scan(article: Article) -> None:
    assert 150 <= len(article.text.split()) <= 400
    assert "<h2" in article.html


def test_no_article_claims_a_free_trial() -> None:
    for article in help_centre().articles:
        for sentence in re.split(r"(?<=[.!?])\s+", article.text):
            if "trial" in sentence.lower():
                negated = re.search(r"\b(no|not|never)\b|n\u2019t", sentence, re.IGNORECASE)
                assert negated, (article.slug, sentence)


@pytest.mark.parametrize(
    ("slug", "fact"),
    [
        ("choosing-a-plan", "$199"),
        ("choosing-a-plan", "up to 50%"),
        ("storage-add-ons-and-overage", "$10 a month for each 100 GB"),
        ("storage-add-ons-and-overage", "$0.50 each"),
        ("pause-or-cancel", "12 weeks"),
        ("pause-or-cancel", "kept for 30 days"),
        ("failed-or-duplicate-payments", "1, 3 and 7 days"),
        ("reset-your-password", "1 hour"),
        ("accepted-payment-methods", "never reaches our servers"),
        ("invoices-and-billing-details", "reverse charge"),
    ],
)
def test_articles_state_the_business_rules(slug: str, fact: str) -> None:
    assert fact in help_centre().get(slug).text


def test_raw_html_in_an_article_file_is_refused_and_never_rendered_live() -> None:
    with pytest.raises(ArticleError):
        parse_article("bad", "---\ntitle: T\nsummary: S\norder: 1\nkeywords: k\n---\n<script>x</script>\n")
    with pytest.raises(ArticleError):
        parse_article("no-front-matter", "## Just a heading\n")
    assert "<b>" not in render_markdown("a <b>bold</b> claim")
