"""Teach localstripe the parts of today's PaymentIntent API that dicomportal sends (docs/payments.md).

localstripe speaks a 2017 dialect: its confirm refuses every parameter (``off_session``,
``return_url``, ``payment_method``), and it asks for 3-D Secure on every charge of an
authenticating test card, even a merchant-initiated one on a card saved for that purpose. Real
Stripe (API 2026-10-28) behaves as its testing guide says (https://docs.stripe.com/testing#regulatory-cards):

- ``4000002500003155`` needs authentication on-session; once saved with a SetupIntent for
  ``usage=off_session``, an ``off_session=true`` charge goes through without the customer.
- ``4000002760003184`` (and the other authenticating cards) always need authentication: an
  ``off_session=true`` charge is declined with ``authentication_required``, the PaymentIntent goes
  back to ``requires_payment_method``, and the customer must confirm that same PaymentIntent
  on-session (https://docs.stripe.com/payments/save-and-reuse#charge-saved-payment-method).
- ``confirm`` takes ``payment_method`` (confirm with the saved card) and ``return_url``; cards
  never redirect, so the URL is accepted and not used.
- PaymentIntents and SetupIntents take ``automatic_payment_methods`` (the pinned API removed
  ``payment_method_types``); only cards exist here, so it changes nothing else.

:func:`install` patches localstripe's classes in place (before ``localstripe.server`` builds its
routes); the demo, ``dicomportal stripe-server`` and the tests all run localstripe through it.
"""

from __future__ import annotations

from typing import Any

# Cards that need 3-D Secure on-session but not off-session once set up (Stripe's testing guide).
EXEMPT_ONCE_SET_UP = frozenset({"4000002500003155"})

AUTHENTICATION_REQUIRED = "Your card was declined. This transaction requires authentication."


def install(resources: Any) -> None:
    """Patch ``localstripe.resources`` so PaymentIntents confirm as today's Stripe does."""
    intent_class = resources.PaymentIntent
    stock_confirm = intent_class._confirm
    stock_error = intent_class.last_payment_error

    def confirm(self: Any, on_failure_now: Any) -> None:
        self._dp_authentication_required = False
        card = resources.PaymentMethod._api_retrieve(self.payment_method)
        if not (getattr(self, "_dp_off_session", False) and card._requires_authentication()):
            stock_confirm(self, on_failure_now)
            return
        if card._card_number in EXEMPT_ONCE_SET_UP and _saved_for_off_session(resources, card.id):
            self._create_charge(on_failure_now=on_failure_now)
            return
        self._dp_authentication_required = True
        self._dp_declined_payment_method = self.payment_method
        self.payment_method = None
        resources.schedule_webhook(resources.Event("payment_intent.payment_failed", self))
        raise resources.UserError(
            402,
            AUTHENTICATION_REQUIRED,
            {"code": "authentication_required", "decline_code": "authentication_required"},
        )

    def last_payment_error(self: Any) -> Any:
        if getattr(self, "_dp_authentication_required", False):
            return {
                "type": "card_error",
                "code": "authentication_required",
                "decline_code": "authentication_required",
                "message": AUTHENTICATION_REQUIRED,
                "payment_method": {"id": getattr(self, "_dp_declined_payment_method", None)},
            }
        return stock_error.fget(self)

    stock_create = intent_class._api_create.__func__

    def api_create(
        cls: Any, /, confirm: Any = None, off_session: Any = None, return_url: Any = None, **data: Any
    ) -> Any:
        off = resources.try_convert_to_bool(off_session)
        if resources.try_convert_to_bool(confirm) is not True:
            return stock_create(cls, confirm=confirm, off_session=off_session, **data)
        obj = stock_create(cls, confirm=False, **data)
        obj._dp_off_session = off is True
        obj._confirm(on_failure_now=obj._report_failure)
        return obj

    def api_confirm(
        cls: Any,
        /,
        id: Any,
        payment_method: Any = None,
        off_session: Any = None,
        return_url: Any = None,
        **kwargs: Any,
    ) -> Any:
        if kwargs:
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        if not (isinstance(id, str) and id.startswith("pi_")):
            raise resources.UserError(400, "Bad request")
        obj = cls._api_retrieve(id)
        if payment_method is not None:
            if obj.status not in ("requires_payment_method", "requires_confirmation"):
                raise resources.UserError(400, "Bad request")
            resources.PaymentMethod._api_retrieve(payment_method)  # 404 if unknown
            obj.payment_method = payment_method
            obj.latest_charge = None
            obj._authentication_failed = False
            obj._dp_authentication_required = False
        if obj.status != "requires_confirmation":
            raise resources.UserError(400, "Bad request")
        obj._dp_off_session = resources.try_convert_to_bool(off_session) is True
        obj._confirm(on_failure_now=obj._report_failure)
        return obj

    for kind in (intent_class, resources.SetupIntent):
        kind.__init__ = _taking_automatic_payment_methods(resources, kind.__init__)
    intent_class._confirm = confirm
    intent_class.last_payment_error = property(last_payment_error)
    intent_class._api_create = classmethod(api_create)
    intent_class._api_confirm = classmethod(api_confirm)
    route = "/v1/payment_intents/{id}/confirm"
    resources.extra_apis[:] = [
        (method, url, intent_class._api_confirm if url == route else func)
        for method, url, func in resources.extra_apis
    ]


def _saved_for_off_session(resources: Any, payment_method_id: str) -> bool:
    """True when a succeeded SetupIntent with ``usage=off_session`` saved this card."""
    return any(
        isinstance(obj, resources.SetupIntent)
        and obj.payment_method == payment_method_id
        and obj.usage == "off_session"
        and obj.status == "succeeded"
        for obj in dict.values(resources.store)
    )


def _taking_automatic_payment_methods(resources: Any, stock_init: Any) -> Any:
    """``__init__`` that accepts ``automatic_payment_methods`` as Stripe's API defines it."""

    def init(self: Any, *args: Any, automatic_payment_methods: Any = None, **kwargs: Any) -> None:
        if automatic_payment_methods is not None:
            settings = automatic_payment_methods
            if not (
                isinstance(settings, dict)
                and set(settings) <= {"enabled", "allow_redirects"}
                and resources.try_convert_to_bool(settings.get("enabled")) is True
                and settings.get("allow_redirects", "always") in ("always", "never")
            ):
                raise resources.UserError(400, "Bad request")
        stock_init(self, *args, **kwargs)

    return init
