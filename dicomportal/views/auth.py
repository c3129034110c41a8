"""Sign up, log in, log out, and password reset by email. Rate-limited per IP on POST."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from dicomportal.accounts import (
    AccountError,
    InvalidResetToken,
    authenticate,
    create_user,
    end_session,
    request_password_reset,
    reset_password,
    start_session,
    user_for_reset_token,
)
from dicomportal.extensions import db, limiter
from dicomportal.mail import commit_and_deliver
from dicomportal.models import User
from dicomportal.views._htmx import redirect_after_post
from dicomportal.views.forms import render_form, show_error
from dicomportal.views.forms.accounts import ForgotPasswordForm, LoginForm, ResetPasswordForm, SignupForm

bp = Blueprint("auth", __name__, url_prefix="/auth")

# Only POSTs count, so looking at a form is never limited. Reset request and reset share a budget.
reset_limit = limiter.shared_limit("5 per 15 minutes", scope="password-reset", methods=["POST"])


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else ``None``: ``?next=`` must not be a way
    to send people to another site after they log in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in target):
        return None
    return target


def next_or_dashboard(target: str | None) -> str:
    """Where to go after logging in or signing up."""
    return safe_next(target) or url_for("account.dashboard")


def log_in(user: User, remember: bool = False) -> None:
    """Open a server-side login session for ``user`` and hand its token to this browser's cookies."""
    start_session(user, remember)
    db.session.commit()
    login_user(user, remember=remember)


def guests_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send a logged-in visitor on to ``next`` instead of showing a login or signup form."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user.is_authenticated and request.method == "GET":
            return redirect(next_or_dashboard(request.args.get("next")))
        return view(*args, **kwargs)

    return wrapper


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("5 per minute", methods=["POST"])
@guests_only
def login() -> Response | str:
    """Log in; a wrong email or password gets one generic message and the form again (200)."""
    form = LoginForm(next=request.args.get("next"))
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data, form.password.data)
        except AccountError as exc:
            show_error(form, exc)
        else:
            log_in(user, remember=bool(form.remember.data))
            return redirect_after_post(next_or_dashboard(form.next.data))
    return render_template("auth/login.html", form=form)


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
@guests_only
def signup() -> Response | tuple[str, int]:
    """Create an account, log it in and continue to ``next`` (e.g. the chosen plan)."""
    form = SignupForm(next=request.args.get("next"))
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data, form.password.data, form.name.data)
        except AccountError as exc:
            show_error(form, exc)
        else:
            commit_and_deliver()
            log_in(user)
            flash(f"Welcome to DICOM Portal, {user.name}! Your account is ready.", "success")
            return redirect_after_post(next_or_dashboard(form.next.data))
    return render_form("auth/signup.html", form)


@bp.post("/logout")
def logout() -> Response:
    """Log out (POST only, so a link or an image cannot log anyone out); the session ends on the
    server too, so a copy of the cookies taken before opens nothing."""
    end_session(getattr(current_user, "session_token", None))
    db.session.commit()
    logout_user()
    flash("You have logged out. See you soon.", "info")
    return redirect_after_post(url_for("plans.pricing"))


@bp.route("/forgot", methods=["GET", "POST"])
@reset_limit
def forgot() -> Response | tuple[str, int]:
    """Ask for a reset link; the answer never says whether the address has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        request_password_reset(form.email.data)
        commit_and_deliver()
        return redirect_after_post(url_for("auth.forgot_sent"))
    return render_form("auth/forgot.html", form)


@bp.get("/forgot/sent")
def forgot_sent() -> str:
    """The same "check your email" page for every address."""
    return render_template("auth/forgot_sent.html")


@bp.route("/reset/<token>", methods=["GET", "POST"])
@reset_limit
def reset(token: str) -> Response | tuple[str, int]:
    """Choose a new password from an emailed link; success logs the customer in."""
    max_age = int(current_app.config["PASSWORD_RESET_MAX_AGE"])
    user_for_reset_token(token, max_age)  # a bad link gets the 400 page before any form
    form = ResetPasswordForm()
    if form.validate_on_submit():
        user = reset_password(token, form.password.data, max_age)
        commit_and_deliver()
        log_in(user)
        flash("Your new password is set and you are logged in.", "success")
        return redirect_after_post(url_for("account.dashboard"))
    return render_form("auth/reset.html", form)


@bp.errorhandler(InvalidResetToken)
def invalid_reset_token(exc: InvalidResetToken) -> tuple[str, int]:
    """Expired, used or tampered reset links: say so and offer a new one; nothing changed."""
    return render_template("auth/reset_invalid.html", message=str(exc)), 400
