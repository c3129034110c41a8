"""The customer's billing: invoices and their PDFs, payment methods, billing details, and the card
renewals are charged to ("update card and pay now", the link in dunning emails)."""

from __future__ import annotations

from flask import Blueprint

from dicomportal.billing.errors import GatewayUnavailable
from dicomportal.views.payments import service_unavailable

bp = Blueprint("billing", __name__, url_prefix="/billing")
bp.register_error_handler(GatewayUnavailable, service_unavailable)

# The routes, each module adding its own to ``bp``.
from dicomportal.views.billing import card, details, invoices, methods  # noqa: E402, F401
