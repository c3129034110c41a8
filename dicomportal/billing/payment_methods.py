"""The customer's saved cards: add one, choose the default (what renewals are charged to), remove one.

The last card cannot be removed while a subscription is live (not ended): renewals and dunning
would have nothing to charge. A card that expires before the next renewal is worth a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update

from dicomportal import clock
from dicomportal.billing import audit, cards, gateway
from dicomportal.billing.errors import BillingError
from dicomportal.extensions import db
from dicomportal.models import PaymentMethod, Subscription, SubscriptionStatus, User


class CardRefused(BillingError):
    """The change asked for cannot be made to the customer's cards."""


@dataclass(frozen=True)
class Wallet:
    """What the payment methods page shows."""

    cards: list[PaymentMethod]
    next_renewal: datetime | None
    expiring_default: PaymentMethod | None  # the default card, when it expires before next_renewal

    @property
    def has_no_default(self) -> bool:
        """A renewal is coming and no card is the default (e.g. it was removed at Stripe)."""
        return self.next_renewal is not None and not any(card.is_default for card in self.cards)


def card_expires_at(card: PaymentMethod) -> datetime:
    """The first moment a card no longer works: cards are valid through their expiry month."""
    year, month = (card.exp_year + 1, 1) if card.exp_month == 12 else (card.exp_year, card.exp_month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _live_subscription(user_id: int) -> Subscription | None:
    query = select(Subscription).where(
        Subscription.user_id == user_id, Subscription.status != SubscriptionStatus.ENDED
    )
    found: Subscription | None = db.session.scalar(query)
    return found


def wallet(user_id: int) -> Wallet:
    """The customer's cards (default first) and whether the default runs out before renewal."""
    saved = cards.cards_of(user_id)
    subscription = _live_subscription(user_id)
    renews = None
    if subscription is not None and not subscription.ends_at_period_end:
        renews = subscription.pause_ends_at if subscription.is_paused else subscription.current_period_end
    default = next((c for c in saved if c.is_default), None)
    expiring = default if default and renews and card_expires_at(default) <= renews else None
    return Wallet(saved, renews, expiring)


def own_card(user_id: int, card_id: int) -> PaymentMethod | None:
    """One of the customer's saved cards; someone else's (or a removed one) is as good as missing."""
    card: PaymentMethod | None = db.session.get(PaymentMethod, card_id)
    if card is None or card.user_id != user_id or card.detached_at is not None:
        return None
    return card


def add_card(user: User, setup_intent_id: str) -> PaymentMethod:
    """Save the card Stripe.js confirmed on ``setup_intent_id`` (committed). It becomes the default
    only when the customer has no default card yet.

    :raises PaymentSetupFailed: the SetupIntent is not this customer's or not confirmed.
    :raises CardDeclined: Stripe refused the card.
    """
    setup = cards.verified_setup(user, setup_intent_id)
    previous = next((c for c in cards.cards_of(user.id) if c.is_default), None)
    card = cards.save_default_card(user, setup.payment_method or "")
    if previous is not None and previous.id != card.id:
        _set_default(user.id, previous)  # adding is not choosing: the default stays as it was
    db.session.commit()
    return card


def make_default(user: User, card_id: int) -> PaymentMethod:
    """Charge renewals to this card from now on (committed).

    :raises CardRefused: not one of the customer's cards.
    """
    card = own_card(user.id, card_id)
    if card is None:
        raise CardRefused("That card is not one of yours.")
    _set_default(user.id, card)
    audit.record("card.made_default", user.id, card, brand=card.brand, last4=card.last4)
    db.session.commit()
    return card


def _set_default(user_id: int, card: PaymentMethod) -> None:
    db.session.execute(update(PaymentMethod).where(PaymentMethod.user_id == user_id).values(is_default=False))
    db.session.refresh(card)
    card.is_default = True
    db.session.flush()


def remove_card(user: User, card_id: int) -> PaymentMethod:
    """Remove a card here and at Stripe (committed). When it was the default, the newest other card
    becomes the default.

    :raises CardRefused: not one of the customer's cards, or the last one while subscribed.
    """
    card = own_card(user.id, card_id)
    if card is None:
        raise CardRefused("That card is not one of yours.")
    others = [c for c in cards.cards_of(user.id) if c.id != card.id]
    if not others and _live_subscription(user.id) is not None:
        raise CardRefused(
            "This is the only card your subscription can be charged to. "
            "Add another card first, then remove this one."
        )
    gateway.detach_card(card.stripe_payment_method_id)
    was_default = card.is_default
    card.detached_at, card.is_default = clock.now(), False
    if was_default and others:
        _set_default(user.id, max(others, key=lambda c: (c.created_at, c.id)))
    audit.record("card.removed", user.id, card, brand=card.brand, last4=card.last4)
    db.session.commit()
    return card
