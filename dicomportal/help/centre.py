"""The help centre's articles: loaded from ``articles/*.md``, rendered once, searched in memory.

An article is a Markdown file with a small front matter::

    ---
    title: How to subscribe
    summary: One sentence for the article list.
    order: 10
    keywords: sign up, subscribe, demo
    related: choosing-a-plan, billing-and-renewals      (optional)
    ---
    ## First heading
    ...

The file name is the slug (``/help/how-to-subscribe``). No flask.request here: views ask this
module for articles and search results, and render them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import markdown
from markupsafe import Markup, escape

ARTICLES_DIR = Path(__file__).resolve().parent / "articles"
REQUIRED_FIELDS = ("title", "summary", "order", "keywords")
# A query word found in the title counts more than one found in the keywords, and so on.
FIELD_WEIGHTS = (("title", 8), ("keywords", 4), ("summary", 2), ("body", 1))
MAX_QUERY_WORDS = 8
MAX_QUERY_LENGTH = 200
SNIPPET_BEFORE, SNIPPET_AFTER = 60, 170
RELATED_LIMIT = 3

_FRONT_MATTER = re.compile(r"\A---\n(?P<meta>.*?)\n---\n(?P<body>.*)\Z", re.DOTALL)
_RAW_HTML = re.compile(r"<[A-Za-z/!?]")
_H1 = re.compile(r"^#(?!#)", re.MULTILINE)
_HEADING_TAGS = frozenset({"h2", "h3", "h4"})
_BLOCK_TAGS = _HEADING_TAGS | {"p", "li", "tr", "td", "th", "ul", "ol", "table", "br"}


class ArticleError(ValueError):
    """A help article file is malformed (missing front matter, raw HTML, unknown related slug)."""


class ArticleNotFound(LookupError):
    """No help article has this slug."""


@dataclass(frozen=True)
class Article:
    """One help article, rendered."""

    slug: str
    title: str
    summary: str
    order: int
    keywords: tuple[str, ...]
    related_slugs: tuple[str, ...]
    html: Markup
    text: str  # the body as plain text: what search matches and snippets quote

    def field(self, name: str) -> str:
        """The searchable text of ``name`` (title, keywords, summary or body)."""
        if name == "keywords":
            return ", ".join(self.keywords)
        return self.text if name == "body" else str(getattr(self, name))


@dataclass(frozen=True)
class SearchResult:
    """An article that matched a query, with its title and a snippet highlighted (safe HTML)."""

    article: Article
    title: Markup
    snippet: Markup


@dataclass(frozen=True)
class Query:
    """A parsed search query: lower-case words, the last one matched as a prefix."""

    words: tuple[str, ...]

    @classmethod
    def parse(cls, raw: str) -> Query:
        """Split ``raw`` into distinct words (letters and digits), at most MAX_QUERY_WORDS."""
        words = re.findall(r"\w+", raw[:MAX_QUERY_LENGTH].lower())
        return cls(tuple(dict.fromkeys(words))[:MAX_QUERY_WORDS])

    def patterns(self) -> list[re.Pattern[str]]:
        """One pattern per word: whole words with simple endings ("refund" finds "refunds"),
        and any word starting with the last one, so results appear while the customer types."""
        found = []
        for i, word in enumerate(self.words):
            ending = r"\w*" if i == len(self.words) - 1 else r"(?:s|es|d|ed|ing)?(?!\w)"
            found.append(re.compile(rf"(?<!\w){re.escape(word)}{ending}", re.IGNORECASE))
        return found

    def highlighter(self) -> re.Pattern[str]:
        """All words in one pattern, longest first so the widest match wins."""
        parts = sorted((p.pattern for p in self.patterns()), key=len, reverse=True)
        return re.compile("|".join(parts), re.IGNORECASE)


class _TextExtractor(HTMLParser):
    """Plain text of rendered HTML, with a space between blocks so words never run together."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        # A heading reads as the start of a sentence in a snippet, not as part of the next one.
        self.parts.append(" — " if tag in _HEADING_TAGS else " " if tag in _BLOCK_TAGS else "")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def text(self) -> str:
        return " ".join("".join(self.parts).split())


def render_markdown(source: str) -> Markup:
    """Our articles' Markdown as HTML; any raw HTML in the source comes out escaped, never live."""
    md = markdown.Markdown(
        extensions=["toc", "tables", "sane_lists", "smarty"],
        extension_configs={"toc": {"toc_depth": "2-3"}},
    )
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return Markup(md.convert(source))


def plain_text(html: str) -> str:
    """The visible text of ``html``, whitespace collapsed."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return extractor.text()


def parse_article(slug: str, source: str) -> Article:
    """Build an Article from one file's text.

    :raises ArticleError: no front matter, a missing field, a level-1 heading or raw HTML.
    """
    match = _FRONT_MATTER.match(source.replace("\r\n", "\n"))
    if not match:
        raise ArticleError(f"{slug}: the file must start with a '---' front matter block")
    meta = _parse_meta(slug, match["meta"])
    body = match["body"]
    if _RAW_HTML.search(body) or _H1.search(body):
        raise ArticleError(f"{slug}: no raw HTML and no '# ' heading (the title is the h1)")
    html = render_markdown(body)
    return Article(
        slug=slug,
        title=meta["title"],
        summary=meta["summary"],
        order=int(meta["order"]),
        keywords=_split_list(meta["keywords"]),
        related_slugs=_split_list(meta.get("related", "")),
        html=html,
        text=plain_text(html),
    )


def _parse_meta(slug: str, block: str) -> dict[str, str]:
    meta: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            raise ArticleError(f"{slug}: front matter line without 'key: value': {line!r}")
        meta[key.strip().lower()] = value.strip()
    missing = [name for name in REQUIRED_FIELDS if not meta.get(name)]
    if missing:
        raise ArticleError(f"{slug}: front matter lacks {', '.join(missing)}")
    if not meta["order"].isdigit():
        raise ArticleError(f"{slug}: order must be a whole number")
    return meta


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def load_articles(directory: Path = ARTICLES_DIR) -> list[Article]:
    """Every ``*.md`` article in ``directory``.

    :raises ArticleError: a file is malformed.
    """
    return [parse_article(path.stem, path.read_text(encoding="utf-8")) for path in directory.glob("*.md")]


class HelpCentre:
    """The articles in reading order, looked up by slug and searched in memory."""

    def __init__(self, articles: Iterable[Article]) -> None:
        self.articles = tuple(sorted(articles, key=lambda a: (a.order, a.title)))
        self._by_slug = {article.slug: article for article in self.articles}
        for article in self.articles:
            unknown = set(article.related_slugs) - self._by_slug.keys()
            if unknown:
                raise ArticleError(f"{article.slug}: related articles not found: {sorted(unknown)}")

    def get(self, slug: str) -> Article:
        """The article called ``slug``.

        :raises ArticleNotFound: no such article.
        """
        try:
            return self._by_slug[slug]
        except KeyError:
            raise ArticleNotFound(slug) from None

    def related(self, article: Article) -> list[Article]:
        """The articles its front matter names, else those sharing the most keywords."""
        if article.related_slugs:
            return [self._by_slug[slug] for slug in article.related_slugs]
        mine = set(article.keywords)
        others = [a for a in self.articles if a is not article and mine & set(a.keywords)]
        others.sort(key=lambda a: len(mine & set(a.keywords)), reverse=True)
        return others[:RELATED_LIMIT]

    def search(self, raw_query: str) -> list[SearchResult]:
        """Articles matching every word of ``raw_query``, best first; all articles for an empty query."""
        if not raw_query.strip():
            return [SearchResult(a, escape(a.title), escape(a.summary)) for a in self.articles]
        query = Query.parse(raw_query)
        if not query.words:
            return []
        scored = [(_score(article, query), article) for article in self.articles]
        ranked = sorted(((s, a) for s, a in scored if s), key=lambda pair: (-pair[0], pair[1].order))
        mark = query.highlighter()
        return [SearchResult(a, highlight(a.title, mark), snippet(a, query)) for _, a in ranked]


def _score(article: Article, query: Query) -> int:
    """0 unless every word matches somewhere; else each word's best field weight, plus a small
    bonus per mention in the body so the article that talks most about it wins a tie."""
    total = 0
    for pattern in query.patterns():
        weights = [weight for name, weight in FIELD_WEIGHTS if pattern.search(article.field(name))]
        if not weights:
            return 0
        total += 10 * max(weights) + min(len(pattern.findall(article.text)), 5)
    return total


def highlight(text: str, pattern: re.Pattern[str]) -> Markup:
    """``text`` escaped, with each match of ``pattern`` wrapped in <mark>.

    Each piece is escaped on its own before it is wrapped, so neither the article nor the query
    can inject markup, and a match can never land inside an entity like ``&amp;``.
    """
    pieces: list[Markup] = []
    position = 0
    for match in pattern.finditer(text):
        pieces.append(escape(text[position : match.start()]))
        pieces.append(Markup("<mark>%s</mark>") % match.group())
        position = match.end()
    pieces.append(escape(text[position:]))
    return Markup("").join(pieces)


def snippet(article: Article, query: Query) -> Markup:
    """A short extract of the body around the densest cluster of query words, highlighted;
    the summary when the words only appear in the title or keywords."""
    text = article.text
    hits = [(m.start(), i) for i, p in enumerate(query.patterns()) for m in p.finditer(text)]
    if not hits:
        return highlight(article.summary, query.highlighter())
    # A word counts for a window only if it starts well inside it, so it is not trimmed away.
    reach = SNIPPET_AFTER - 30
    best = max(sorted(hits), key=lambda hit: len({i for s, i in hits if hit[0] <= s < hit[0] + reach}))[0]
    start, end = _word_bounds(text, best - SNIPPET_BEFORE, best + SNIPPET_AFTER, keep=best)
    extract = highlight(text[start:end].strip(), query.highlighter())
    return Markup("%s%s%s") % ("… " if start > 0 else "", extract, " …" if end < len(text) else "")


def _word_bounds(text: str, start: int, end: int, keep: int) -> tuple[int, int]:
    """``start``..``end`` clipped to ``text`` and moved inwards to spaces so no word is cut in half,
    never past ``keep`` (the match the snippet is about)."""
    start, end = max(0, start), min(len(text), end)
    if start > 0:
        space = text.find(" ", start, keep)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", keep, end)
        end = space if space != -1 else end
    return start, end


@functools.cache
def help_centre() -> HelpCentre:
    """The shipped articles, loaded, rendered and indexed once per process."""
    return HelpCentre(load_articles())
