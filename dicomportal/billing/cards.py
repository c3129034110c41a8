"""Customers and saved cards at Stripe, mirrored in our database (brand, last 4, expiry only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from dicomportal import clock
from dicomportal.billing import audit, gateway
from dicomportal.billing.errors import PaymentSetupFailed
from dicomportal.billing.installation import idempotency_key
from dicomportal.extensions import db
from dicomportal.models import PaymentMethod, User

# How long the card form keeps offering the same SetupIntent. Stripe does not expire an open
# one, but a day bounds how long one client secret lives in pages and browser histories.
SETUP_REUSE_WINDOW = timedelta(days=1)


def ensure_customer(user: User) -> str:
    """The user's Stripe Customer id, created on first need (committed).

    Every attempt for this user sends the same Idempotency-Key, so an answer lost on the way back
    (a timeout, a crash) is answered again with the same Customer: never a second one. Two requests
    racing here get the same Customer too (or, while the first is in flight, a "try again").
    """
    if user.stripe_customer_id:
        return user.stripe_customer_id
    customer_id = gateway.create_customer(
        user.email, user.name, user.id, idempotency_key=idempotency_key("customer", user.id)
    )
    result = db.session.execute(
        update(User)
        .where(User.id == user.id, User.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )
    db.session.commit()
    if cast(CursorResult[Any], result).rowcount == 0:
        db.session.refresh(user)
    return user.stripe_customer_id or customer_id


def start_card_setup(user: User) -> gateway.SetupIntentInfo:
    """A SetupIntent the browser confirms with Stripe.js; the card number never reaches us.

    The one offered last is offered again while it is open (no card confirmed on it yet), is this
    customer's and is younger than SETUP_REUSE_WINDOW, so reloading the card page does not create
    a SetupIntent at Stripe each time. A new one is remembered on the user row (committed).
    """
    customer_id = ensure_customer(user)
    reusable = _open_setup_intent(user, customer_id)
    if reusable is not None:
        return reusable
    # One key per SetupIntent the customer is offered: a lost answer is answered again with the
    # same SetupIntent; the next one follows a different previous id, so gets a different key.
    key = idempotency_key("setup-intent", user.id, "after", user.card_setup_intent_id or "none")
    setup = gateway.create_setup_intent(customer_id, idempotency_key=key)
    user.card_setup_intent_id, user.card_setup_started_at = setup.id, clock.now()
    db.session.commit()
    return setup


def _open_setup_intent(user: User, customer_id: str) -> gateway.SetupIntentInfo | None:
    started = user.card_setup_started_at
    if not user.card_setup_intent_id or started is None or clock.now() - started >= SETUP_REUSE_WINDOW:
        return None
    setup = gateway.find_setup_intent(user.card_setup_intent_id)  # re-read: Stripe knows its state
    if setup is None or setup.customer != customer_id or setup.status != "requires_payment_method":
        return None
    return setup


def verified_setup(user: User, setup_intent_id: str) -> gateway.SetupIntentInfo:
    """Re-read a SetupIntent the browser says it confirmed, and check it is this customer's and done.

    :raises PaymentSetupFailed: it is someone else's, unfinished, or has no card.
    """
    if not setup_intent_id.startswith("seti_"):
        raise PaymentSetupFailed("We could not confirm your card. Please enter it again.")
    setup = gateway.retrieve_setup_intent(setup_intent_id)
    if setup.customer != user.stripe_customer_id or setup.status != "succeeded" or not setup.payment_method:
        raise PaymentSetupFailed(
            "Your card was not confirmed (3-D Secure not completed?). Nothing was charged."
        )
    return setup


def save_default_card(user: User, payment_method_id: str) -> PaymentMethod:
    """Attach the card to the customer and make it the one renewals are charged to (not committed).

    :raises CardDeclined: Stripe refused the card.
    """
    existing = db.session.scalar(
        select(PaymentMethod).where(PaymentMethod.stripe_payment_method_id == payment_method_id)
    )
    card: PaymentMethod
    if existing is not None and existing.user_id == user.id and existing.detached_at is None:
        card = existing
    else:
        details = gateway.attach_card(payment_method_id, user.stripe_customer_id or "")
        card = PaymentMethod(
            user_id=user.id,
            stripe_payment_method_id=details.id,
            brand=details.brand,
            last4=details.last4,
            exp_month=details.exp_month,
            exp_year=details.exp_year,
        )
        db.session.add(card)
    db.session.execute(update(PaymentMethod).where(PaymentMethod.user_id == user.id).values(is_default=False))
    card.is_default = True
    db.session.flush()
    audit.record("card.saved", user.id, card, brand=card.brand, last4=card.last4)
    return card


def cards_of(user_id: int) -> list[PaymentMethod]:
    """The customer's saved cards, default first."""
    query = (
        select(PaymentMethod)
        .where(PaymentMethod.user_id == user_id, PaymentMethod.detached_at.is_(None))
        .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at.desc())
    )
    return list(db.session.scalars(query))


def is_our_customer(customer_id: str) -> bool:
    """True when one of our users is this Stripe customer."""
    return db.session.scalar(select(User.id).where(User.stripe_customer_id == customer_id)) is not None


def forget_customer(customer_id: str) -> None:
    """Stripe deleted the customer: their cards are gone too (committed by the caller)."""
    user = db.session.scalar(select(User).where(User.stripe_customer_id == customer_id))
    if user is None:
        return
    now = clock.now()
    for card in cards_of(user.id):
        card.detached_at, card.is_default = now, False
    user.stripe_customer_id = None
    audit.record("stripe.customer_deleted", user.id, user, customer=customer_id)


def refresh_from_stripe(payment_method_id: str) -> PaymentMethod | None:
    """Bring our mirror of a saved card in step with Stripe (committed): brand, last 4 and expiry
    refreshed (the bank may have sent a new expiry), or marked detached when Stripe no longer has
    it on our customer. A detached default card is not replaced by another: which card renewals
    are charged to is the customer's choice, and the dashboard tells them there is none.
    Returns the card, or None when it is not one we mirror."""
    card = db.session.scalar(
        select(PaymentMethod).where(PaymentMethod.stripe_payment_method_id == payment_method_id)
    )
    if card is None or card.detached_at is not None:
        return card
    customer_id = db.session.scalar(select(User.stripe_customer_id).where(User.id == card.user_id))
    db.session.rollback()  # no transaction held while Stripe answers
    at_stripe = gateway.find_card(payment_method_id)
    card = db.session.get_one(PaymentMethod, card.id, populate_existing=True)
    if at_stripe is None or at_stripe.customer is None or at_stripe.customer != customer_id:
        was_default = card.is_default
        card.detached_at, card.is_default = clock.now(), False
        audit.record(
            "card.detached_at_stripe",
            card.user_id,
            card,
            brand=card.brand,
            last4=card.last4,
            was_default=was_default,
        )
    else:
        new = at_stripe.card
        changed = (card.brand, card.last4, card.exp_month, card.exp_year) != (
            new.brand,
            new.last4,
            new.exp_month,
            new.exp_year,
        )
        if changed:
            card.brand, card.last4, card.exp_month, card.exp_year = (
                new.brand,
                new.last4,
                new.exp_month,
                new.exp_year,
            )
            audit.record(
                "card.updated_at_stripe",
                card.user_id,
                card,
                brand=card.brand,
                last4=card.last4,
                exp=f"{card.exp_month:02d}/{card.exp_year}",
            )
    db.session.commit()
    return card
