"""A strict Stripe for the tests: an HTTP proxy in front of localstripe that refuses, as Stripe does,
what localstripe lets through (docs/localstripe.md#what-it-does-not-do).

Only secret-key API requests (``Authorization: Bearer sk_...``, what the app's SDK sends) are judged;
everything else passes through unchanged: the fake Stripe.js (``GET /js.stripe.com/v3/``), what it
posts from the browser with the publishable key in a JSON body, CORS preflights, and localstripe's
``/_config/...`` endpoints. Each secret-key request is checked against, in this order:

1. **Parameters** (:func:`parameter_problem`): every route the app calls is mapped in :data:`ROUTES`
   to the pinned SDK's own request type in ``stripe/params/`` (generated from Stripe's OpenAPI spec).
   A name the type does not define -> 400 ``parameter_unknown``; a required one missing -> 400
   ``parameter_missing``. A secret-key route with no mapping is refused too, so nothing slips
   through unchecked: add its line to :data:`ROUTES`.
2. **Idempotency-Key on creates** (:meth:`StrictStripe._missing_key`): a project rule, not Stripe's.
3. **return_url on confirm** (:func:`needs_return_url`).
4. **Idempotent replay** (:meth:`StrictStripe._idempotent`): a key reused with other parameters ->
   400 ``idempotency_error``; the same key with the same parameters -> the first response again.

Every secret-key request is recorded (:class:`Seen`); tests read them through :class:`StrictView`
(the ``strict_stripe`` fixture). A test that gets a refusal it did not announce with
``strict_stripe.expect_refusals()`` fails at teardown (tests/conftest.py): a refused charge surfaces
in the app as a failed payment, which a test asserting "the invoice is in dunning" would otherwise
take for a decline.

Debugging (CI never sets it): ``STRICT_STRIPE=0`` turns every check and the replay off: the proxy
relays and records only, to tell a relaying problem from a rule. ``STRICT_STRIPE=report`` judges
every request but relays it anyway (no replay either), so one run lists everything the app would
have had refused, each failing its test at teardown, without a refusal changing what follows.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import os
import re
import threading
import types
import typing
import urllib.parse
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import stripe
from stripe import _request_options
from typing_extensions import is_typeddict

# --- routes: (method, path) -> the SDK's request type ------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # "/v1/customers/{id}/tax_ids"
    params: str  # a class in stripe.params: "PaymentIntentConfirmParams", "radar.EarlyFraudWarningListParams"
    creates: bool = False  # a POST to a collection: makes a new object

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(self.pattern)))


# Every (method, path) the app calls. The type named is the one the SDK's v1 service method takes
# (e.g. stripe/_payment_intent_service.py: confirm(..., params: "PaymentIntentConfirmParams")).
ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/customers", "CustomerCreateParams", creates=True),
    Route("GET", "/v1/customers", "CustomerListParams"),
    Route("GET", "/v1/customers/{id}", "CustomerRetrieveParams"),
    Route("POST", "/v1/customers/{id}", "CustomerUpdateParams"),
    Route("DELETE", "/v1/customers/{id}", "CustomerDeleteParams"),
    Route("POST", "/v1/customers/{id}/tax_ids", "CustomerTaxIdCreateParams", creates=True),
    Route("GET", "/v1/customers/{id}/tax_ids", "CustomerTaxIdListParams"),
    Route("DELETE", "/v1/customers/{id}/tax_ids/{tax_id}", "CustomerTaxIdDeleteParams"),
    Route("POST", "/v1/payment_methods", "PaymentMethodCreateParams", creates=True),
    Route("GET", "/v1/payment_methods", "PaymentMethodListParams"),
    Route("GET", "/v1/payment_methods/{id}", "PaymentMethodRetrieveParams"),
    Route("POST", "/v1/payment_methods/{id}/attach", "PaymentMethodAttachParams"),
    Route("POST", "/v1/payment_methods/{id}/detach", "PaymentMethodDetachParams"),
    Route("POST", "/v1/setup_intents", "SetupIntentCreateParams", creates=True),
    Route("GET", "/v1/setup_intents", "SetupIntentListParams"),
    Route("GET", "/v1/setup_intents/{id}", "SetupIntentRetrieveParams"),
    Route("POST", "/v1/setup_intents/{id}/confirm", "SetupIntentConfirmParams"),
    Route("POST", "/v1/payment_intents", "PaymentIntentCreateParams", creates=True),
    Route("GET", "/v1/payment_intents", "PaymentIntentListParams"),
    Route("GET", "/v1/payment_intents/{id}", "PaymentIntentRetrieveParams"),
    Route("POST", "/v1/payment_intents/{id}/confirm", "PaymentIntentConfirmParams"),
    Route("POST", "/v1/payment_intents/{id}/cancel", "PaymentIntentCancelParams"),
    Route("POST", "/v1/refunds", "RefundCreateParams", creates=True),
    Route("GET", "/v1/refunds", "RefundListParams"),
    Route("GET", "/v1/refunds/{id}", "RefundRetrieveParams"),
    Route("GET", "/v1/charges", "ChargeListParams"),
    Route("GET", "/v1/charges/{id}", "ChargeRetrieveParams"),
    Route("GET", "/v1/disputes", "DisputeListParams"),
    Route("GET", "/v1/disputes/{id}", "DisputeRetrieveParams"),
    Route("POST", "/v1/disputes/{id}", "DisputeUpdateParams"),
    Route("POST", "/v1/disputes/{id}/close", "DisputeCloseParams"),
    Route("GET", "/v1/webhook_endpoints", "WebhookEndpointListParams"),
    Route("GET", "/v1/radar/early_fraud_warnings", "radar.EarlyFraudWarningListParams"),
    Route("GET", "/v1/radar/early_fraud_warnings/{id}", "radar.EarlyFraudWarningRetrieveParams"),
)


def route_for(method: str, path: str) -> Route | None:
    """The mapped route of a request, or None."""
    return next((r for r in ROUTES if r.method == method and r.regex.fullmatch(path)), None)


@cache
def params_type(name: str) -> Any:
    """The TypedDict named in a :class:`Route`, imported from its module in ``stripe/params/``."""
    package, _, cls = name.rpartition(".")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()
    module = importlib.import_module(f"stripe.params.{package + '.' if package else ''}_{snake}")
    return getattr(module, cls)


# --- form bodies and query strings --------------------------------------------------------------


def decode_form(encoded: str) -> dict[str, Any]:
    """``a[b]=c&a[d][0]=x&e[]=y`` (how the SDK encodes params) ->
    ``{"a": {"b": "c", "d": ["x"]}, "e": ["y"]}``."""
    root: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(encoded, keep_blank_values=True):
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [key]
        node = root
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            if parts[i + 1] == "":  # "e[]=y": the next free index
                parts[i + 1] = str(len(child))
            node = child
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


# --- rule 1: parameters -------------------------------------------------------------------------

# RequestOptions' keys (api_key, idempotency_key, headers, ...) are options, never sent as params.
_OPTION_KEYS = frozenset(_request_options.RequestOptions.__annotations__)
_TYPE_NAMES = {**vars(_request_options), "StripeContext": stripe.StripeContext}


@dataclass(frozen=True)
class Refusal:
    """What Stripe would answer instead of doing the request."""

    rule: str  # "parameters", "idempotency_key", "return_url", "idempotency", "unmapped"
    status: int
    error: dict[str, Any]  # the body's "error" object

    @property
    def body(self) -> bytes:
        return json.dumps({"error": self.error}).encode()


@cache
def _hints(typed_dict: Any) -> dict[str, Any]:
    return typing.get_type_hints(typed_dict, include_extras=True, localns=_TYPE_NAMES)


def _members(hint: Any) -> list[Any]:
    """The alternatives a hint allows, without NotRequired/Required/Annotated wrappers."""
    while typing.get_origin(hint) in (typing.NotRequired, typing.Required, typing.Annotated):
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(hint) for m in _members(arg)]
    return [hint]


def _accepts_any_mapping(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return hint is Any or (isinstance(origin, type) and not is_typeddict(origin) and issubclass(origin, dict))


def parameter_problem(params: dict[str, Any], typed_dict: Any, where: str = "") -> tuple[str, str] | None:
    """The first (code, param) that Stripe would refuse in ``params``, judged by the SDK's type:
    ``("parameter_unknown", "a[b]")`` or ``("parameter_missing", "amount")``; None when all is known.

    Nested objects are checked where the hint is a TypedDict (``automatic_payment_methods``); under
    a ``Dict`` (``metadata``) anything goes. Values are not type-checked: only names.
    """
    hints = _hints(typed_dict)
    for key, value in params.items():
        name = f"{where}[{key}]" if where else key
        if key not in hints or (not where and key in _OPTION_KEYS):
            return ("parameter_unknown", name)
        found = _value_problem(value, hints[key], name)
        if found:
            return found
    for key in sorted(typed_dict.__required_keys__ - _OPTION_KEYS):
        if key not in params:
            return ("parameter_missing", f"{where}[{key}]" if where else key)
    return None


def _value_problem(value: Any, hint: Any, where: str) -> tuple[str, str] | None:
    members = _members(hint)
    if isinstance(value, dict):
        if any(_accepts_any_mapping(m) for m in members):
            return None
        found: tuple[str, str] | None = None
        for member in (m for m in members if is_typeddict(m)):
            problem = parameter_problem(value, member, where)
            if problem is None:
                return None
            found = found or problem
        return found  # None when only scalars are allowed: a wrong type, not an unknown name
    if isinstance(value, list):
        for member in members:
            if typing.get_origin(member) is list:
                (element,) = typing.get_args(member)
                for i, item in enumerate(value):
                    problem = _value_problem(item, element, f"{where}[{i}]")
                    if problem:
                        return problem
    return None


PAYMENT_METHOD_TYPES_GONE_CODE = "payment_method_types_no_longer_supported"
# Paraphrased (Stripe's exact sentence is not in its changelog; the code is):
# https://docs.stripe.com/changelog/endive/2026-09-30/removes-the-payment-method-types-parameter-from-payment-intents-and-setup-intents
PAYMENT_METHOD_TYPES_GONE = (
    "`payment_method_types` is no longer supported on this API version. Use dynamic payment methods, "
    "`excluded_payment_method_types` or `allowed_payment_method_types` instead."
)


def parameter_refusal(route: Route, params: dict[str, Any]) -> Refusal | None:
    """Stripe refuses unknown and missing parameters with 400 (since API 2011-06-21:
    https://docs.stripe.com/changelog/2011-06-21/exceptions-unrecognized-api-parameters), codes from
    https://docs.stripe.com/error-codes/parameter-unknown and .../parameter-missing; wording as Stripe
    sends it ("Received unknown parameter: x", "Missing required param: x.")."""
    problem = parameter_problem(params, params_type(route.params))
    if problem is None:
        return None
    code, param = problem
    if param == "payment_method_types" and route.pattern.startswith(
        ("/v1/payment_intents", "/v1/setup_intents")
    ):
        return Refusal(
            "parameters",
            400,
            _error(PAYMENT_METHOD_TYPES_GONE, code=PAYMENT_METHOD_TYPES_GONE_CODE, param=param),
        )
    if code == "parameter_unknown":
        message = f"Received unknown parameter: {param}"
    else:
        message = f"Missing required param: {param}."
    return Refusal("parameters", 400, _error(message, code=code, param=param))


def _error(
    message: str, *, code: str | None = None, param: str | None = None, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if code in ("parameter_unknown", "parameter_missing"):
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return error


# --- rule 3: return_url -------------------------------------------------------------------------

RETURN_URL_MESSAGE = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically accept "
    "the payment methods enabled in the Dashboard, some of which may require a full page redirect to "
    "succeed. If you do not want to accept redirect-based payment methods, set "
    "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to "
    "`never` when creating Setup Intents and Payment Intents."
)


def allows_redirects(create_params: dict[str, Any]) -> bool:
    """Whether a PaymentIntent created with these params may use redirect-based payment methods.

    Since API 2023-08-16 an intent has automatic payment methods, redirects allowed, unless told
    otherwise (https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods): by
    ``automatic_payment_methods[allow_redirects]=never``, or by naming its payment method types.
    On the pinned API (2026-10-28.endive) that is ``allowed_payment_method_types`` (added in
    https://docs.stripe.com/changelog/dahlia/2026-07-29/allowed-payment-method-types-parameter,
    mutually exclusive with ``automatic_payment_methods``); ``payment_method_types`` is refused
    since 2026-09-30 (:data:`PAYMENT_METHOD_TYPES_GONE`). Our reading: a list of cards only
    cannot redirect; any other type might.
    """
    for name in ("allowed_payment_method_types", "payment_method_types"):
        if name in create_params:
            listed = create_params[name]
            return not (isinstance(listed, list) and listed and set(listed) <= {"card"})
    automatic = create_params.get("automatic_payment_methods")
    return not (isinstance(automatic, dict) and automatic.get("allow_redirects") == "never")


def needs_return_url(redirects_allowed: bool, confirm_params: dict[str, Any]) -> bool:
    """Changelog 2023-08-16 (https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods):
    "When confirming a PaymentIntent, you're now required to provide a `return_url`, unless
    `off_session=true`", for intents that allow redirects; see also
    https://docs.stripe.com/upgrades/manage-payment-methods. ``off_session`` may also be
    ``one_off``/``recurring`` (PaymentIntentConfirmParams)."""
    off_session = str(confirm_params.get("off_session", "")).lower() in ("true", "one_off", "recurring")
    return redirects_allowed and not confirm_params.get("return_url") and not off_session


# --- what the proxy saw -------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One secret-key request and what the proxy did with it."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int
    rule: str | None = None  # the rule that refused it; None when it reached localstripe or was replayed
    message: str | None = None
    replayed: bool = False
    relayed: bool = False  # STRICT_STRIPE=report: would have been refused, went through anyway

    @property
    def refused(self) -> bool:
        return self.rule is not None


@dataclass
class _Kept:
    """An idempotency key's first request and, once answered, its response."""

    fingerprint: str
    answered: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)
# The key stripe-python invents for every POST that has none (stripe/_api_requestor.py,
# _generate_idempotency_key): random hex in UUID layout. Such a key protects nothing after a crash.
_SDK_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UPSTREAMS: dict[str, str] = {}
# STRICT_STRIPE=1 (the default, CI), =report, =0 (see the module's docstring)
MODES = {"1": "refuse", "report": "report", "0": "off"}


def upstream_of(api_base: str) -> str:
    """localstripe's own address behind a proxy's ``api_base`` (``api_base`` itself if it is none):
    for test helpers that act as Stripe.js or the Dashboard would, not as the app."""
    return _UPSTREAMS.get(api_base.rstrip("/"), api_base)


class StrictStripe:
    """The proxy: ``with StrictStripe(localstripe_base) as proxy: proxy.api_base``."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", mode: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        parsed = urllib.parse.urlsplit(self.upstream)
        self._upstream_host, self._upstream_port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.mode = mode or MODES.get(os.environ.get("STRICT_STRIPE", "1"), "refuse")
        self.log: list[Seen] = []
        self._lock = threading.Lock()
        self._keys: dict[str, _Kept] = {}
        self._redirects: dict[str, bool] = {}  # PaymentIntent id -> allows redirects (rule 3)
        self._server = ThreadingHTTPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.api_base = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="strict-stripe", daemon=True)

    def __enter__(self) -> StrictStripe:
        self._thread.start()
        _UPSTREAMS[self.api_base] = self.upstream
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        _UPSTREAMS.pop(self.api_base, None)
        self._server.shutdown()
        self._server.server_close()

    def forget_keys(self) -> None:
        """Forget every idempotency key, as Stripe does once a key is 24 hours old. Nothing calls this
        between tests on purpose: the session is one Stripe account, as staging, the demo and a
        restored backup share one, so two databases' keys must not collide
        (docs/localstripe.md#how-the-tests-make-it-strict)."""
        with self._lock:
            self._keys.clear()

    def view(self) -> StrictView:
        """The requests from now on, for one test."""
        return StrictView(self)

    # -- one secret-key request --

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Judge, forward (or replay) and record one secret-key request."""
        path, _, query = target.partition("?")
        is_form = "x-www-form-urlencoded" in headers.get("content-type", "")
        params = decode_form(body.decode() if method == "POST" and is_form else query)
        key = headers.get("idempotency-key")
        refusal = self._judge(method, path, params, key) if self.mode != "off" else None
        if refusal is not None and self.mode == "report":
            answer = self._forward(method, target, headers, body)
            self._remember_intent(method, path, params, answer)
            self._record(
                Seen(
                    method, path, params, key, answer[0], refusal.rule, refusal.error["message"], relayed=True
                )
            )
            return answer
        if refusal is not None:
            self._record(
                Seen(method, path, params, key, refusal.status, refusal.rule, refusal.error["message"])
            )
            return refusal.status, [("Content-Type", "application/json")], refusal.body
        if self.mode == "refuse" and method == "POST" and key:
            return self._idempotent(method, target, path, params, key, headers, body)
        answer = self._forward(method, target, headers, body)
        self._remember_intent(method, path, params, answer)
        self._record(Seen(method, path, params, key, answer[0]))
        return answer

    def _judge(self, method: str, path: str, params: dict[str, Any], key: str | None) -> Refusal | None:
        route = route_for(method, path)
        if route is None:
            message = (
                f"strict_stripe: no parameter types mapped for {method} {path}; add a Route for it to "
                "ROUTES in tests/helpers/strict_stripe.py (the SDK's params class for that call)."
            )
            return Refusal("unmapped", 400, _error(message, code="strict_stripe_unmapped_route"))
        return (
            parameter_refusal(route, params)
            or self._missing_key(route, key)
            or self._return_url(path, params)
        )

    @staticmethod
    def _missing_key(route: Route, key: str | None) -> Refusal | None:
        """Project rule (docs/architecture.md#6-charging-safely), not Stripe's: every create carries an
        Idempotency-Key of ours, derived from our own row, so a retry after a crash finds the object
        instead of making a second (https://docs.stripe.com/api/idempotent_requests). The SDK puts a
        random key on every POST that has none; that one is refused too: it is lost in a crash."""
        if not route.creates or (key and not _SDK_KEY.fullmatch(key)):
            return None
        what = "no Idempotency-Key" if not key else f"only the SDK's own random Idempotency-Key ({key})"
        message = (
            f"strict_stripe: {route.method} {route.pattern} creates an object but carries {what}. "
            "Pass options={'idempotency_key': ...} derived from the row it is for (e.g. payment-<id>), "
            "so that a retry after a crash gets the same object back (Stripe's docs: 'Idempotent requests')."
        )
        return Refusal("idempotency_key", 400, _error(message, code="strict_stripe_idempotency_key_missing"))

    def _return_url(self, path: str, params: dict[str, Any]) -> Refusal | None:
        """Rule of API 2023-08-16 (https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods):
        see :func:`needs_return_url`. A create with ``confirm=true`` is judged by its own params; a
        confirm by how the proxy saw the intent created (intents made elsewhere are not judged)."""
        if path == "/v1/payment_intents":
            if str(params.get("confirm", "")).lower() != "true":
                return None
            redirects = allows_redirects(params)
        else:
            match = re.fullmatch(r"/v1/payment_intents/([^/]+)/confirm", path)
            if match is None:
                return None
            with self._lock:
                redirects = self._redirects.get(match.group(1), False)
        if not needs_return_url(redirects, params):
            return None
        return Refusal("return_url", 400, _error(RETURN_URL_MESSAGE))

    def _idempotent(
        self,
        method: str,
        target: str,
        path: str,
        params: dict[str, Any],
        key: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Stripe saves the status and body of a key's first request and answers every retry with
        the same key from it; a retry with other parameters is refused
        (https://docs.stripe.com/api/idempotent_requests; 409 for one still in progress:
        https://docs.stripe.com/api/errors). Keys are per proxy, as they are per Stripe account."""
        fingerprint = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
        with self._lock:
            kept = self._keys.get(key)
            first = kept is None
            if kept is None:
                kept = self._keys[key] = _Kept(fingerprint)
        if not first:
            return self._replay(kept, method, path, params, key, fingerprint)
        try:
            answer = self._forward(method, target, headers, body)
        except BaseException:
            with self._lock:
                del self._keys[key]  # never answered: Stripe saves nothing either
            kept.answered.set()
            raise
        kept.status, kept.headers, kept.body = answer
        kept.answered.set()
        self._remember_intent(method, path, params, answer)
        self._record(Seen(method, path, params, key, answer[0]))
        return answer

    def _replay(
        self, kept: _Kept, method: str, path: str, params: dict[str, Any], key: str, fingerprint: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if kept.fingerprint != fingerprint:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they were first "
                f"used with. Try using a key other than '{key}' if you meant to execute a different request."
            )
            refusal = Refusal("idempotency", 400, _error(message, kind="idempotency_error"))
        elif not kept.answered.is_set():
            message = (
                "There is currently another in-progress request using this Stripe API key and idempotency "
                "key. Please try again later."
            )
            refusal = Refusal("idempotency", 409, _error(message, kind="idempotency_error"))
        else:
            self._record(Seen(method, path, params, key, kept.status, replayed=True))
            return kept.status, [*kept.headers, ("Idempotent-Replayed", "true")], kept.body
        self._record(Seen(method, path, params, key, refusal.status, refusal.rule, refusal.error["message"]))
        return refusal.status, [("Content-Type", "application/json")], refusal.body

    def _remember_intent(
        self, method: str, path: str, params: dict[str, Any], answer: tuple[int, Any, bytes]
    ) -> None:
        if method != "POST" or path != "/v1/payment_intents" or answer[0] != 200:
            return
        try:
            intent_id = json.loads(answer[2])["id"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self._redirects[str(intent_id)] = allows_redirects(params)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.log.append(seen)

    # -- relaying --

    def _forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The request sent on to localstripe unchanged (a fresh connection each time: never resent)."""
        sent = {
            k: v
            for k, v in headers.items()
            if k not in _HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
        }
        connection = http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=60)
        try:
            connection.request(
                method,
                target,
                body=body if body or method in ("POST", "PUT", "PATCH") else None,
                headers=sent,
            )
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        kept = [
            (k, v)
            for k, v in response.getheaders()
            if k.lower() not in _HOP_BY_HOP | {"content-length", "date", "server"}
        ]
        return response.status, kept, data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, +40 ms each

    def _relay(self) -> None:
        proxy: StrictStripe = self.server.proxy  # type: ignore[attr-defined]
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self._body(headers)
        authorization = headers.get("authorization", "")
        try:
            if re.match(r"Bearer (sk|rk)_", authorization):
                status, sent_back, data = proxy.handle(self.command, self.path, headers, body)
            else:
                status, sent_back, data = proxy._forward(self.command, self.path, headers, body)
        except (OSError, http.client.HTTPException) as exc:
            error = _error(f"strict_stripe: localstripe did not answer ({exc!r})", kind="api_error")
            status, sent_back, data = (
                502,
                [("Content-Type", "application/json")],
                json.dumps({"error": error}).encode(),
            )
        self.send_response(status)
        for name, value in sent_back:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(headers.get("content-length") or 0))

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_HEAD = _relay

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StrictView:
    """One test's view of the proxy (the ``strict_stripe`` fixture)."""

    def __init__(self, proxy: StrictStripe) -> None:
        self.proxy = proxy
        self._start = len(proxy.log)
        self._expected: set[str] | None = set()  # rules a test announced; None: any

    @property
    def api_base(self) -> str:
        return self.proxy.api_base

    @property
    def upstream(self) -> str:
        """localstripe itself, past the proxy's rules."""
        return self.proxy.upstream

    @property
    def requests(self) -> list[Seen]:
        """Every secret-key request since this test began (or since :meth:`clear`), oldest first."""
        with self.proxy._lock:
            return self.proxy.log[self._start :]

    @property
    def refused(self) -> list[Seen]:
        return [seen for seen in self.requests if seen.refused]

    def clear(self) -> None:
        """Forget what was seen so far (idempotency keys stay: they are Stripe's, not the test's)."""
        with self.proxy._lock:
            self._start = len(self.proxy.log)

    def expect_refusals(self, *rules: str) -> None:
        """This test provokes refusals on purpose (of these rules; of any rule when none is named)."""
        if not rules:
            self._expected = None
        elif self._expected is not None:
            self._expected.update(rules)

    def unexpected_refusals(self) -> list[Seen]:
        if self._expected is None:
            return []
        return [seen for seen in self.refused if seen.rule not in self._expected]
