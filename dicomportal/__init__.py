"""dicomportal: a self-hosted subscription and billing portal for a DICOM-viewer business."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from flask import Flask, Response, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from dicomportal import extensions
from dicomportal.config import is_test_mode, load_config
from dicomportal.extensions import babel, csrf, db, htmx, limiter, login_manager, migrate

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Where ``templates``, ``static`` or ``migrations`` are: inside the installed package (a wheel)
    or at the top of the source checkout (development and editable installs)."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


def create_app(config: dict[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """Build the WSGI app; ``config`` overrides the environment (tests use it)."""
    app = Flask(
        __name__,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
        instance_path=instance_path,
        instance_relative_config=True,
    )
    app.config.update(load_config(Path(app.instance_path)))
    if config:
        app.config.update(config)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Concurrent writers wait for SQLite's lock instead of failing at once.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
            "connect_args": {"timeout": 30},
        }
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_template_helpers(app)
    register_security_headers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from dicomportal import models
    from dicomportal.accounts import password_fingerprint

    db.init_app(app)
    migrate.init_app(app, db, directory=str(resource_dir("migrations")), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    babel.init_app(app)
    # Through the module: importing dicomportal.mail rebinds the package attribute ``mail``.
    extensions.mail.init_app(app)

    @login_manager.user_loader
    def load_user(session_id: str) -> models.User | None:
        user_id, _, fingerprint = session_id.partition(":")
        user = db.session.get(models.User, int(user_id)) if user_id.isdigit() else None
        if user is None or not hmac.compare_digest(fingerprint, password_fingerprint(user)):
            return None  # the password changed since this session logged in
        return user

    @login_manager.unauthorized_handler
    def unauthorized() -> Response:
        target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
        if getattr(request, "htmx", False):
            return Response(status=401, headers={"HX-Redirect": target})
        flash("Please log in to continue.", "info")
        return redirect(target)  # type: ignore[return-value]


def register_blueprints(app: Flask) -> None:
    from dicomportal.views import account, auth, billing, dev, help, plans, studies, webhooks

    for module in (auth, plans, help, account, billing, studies, webhooks, dev):
        app.register_blueprint(module.bp)


def register_errorhandlers(app: Flask) -> None:
    def render_error(code: int, title: str, message: str) -> tuple[str, int]:
        if getattr(request, "htmx", False):
            return render_template("_error_fragment.html", title=title, message=message), code
        return render_template("error.html", code=code, title=title, message=message), code

    @app.errorhandler(404)
    def not_found(_e: Exception) -> tuple[str, int]:
        return render_error(404, "Page not found", "We could not find that page.")

    @app.errorhandler(429)
    def too_many(_e: Exception) -> tuple[str, int]:
        return render_error(
            429, "Too many attempts", "Too many attempts. Please wait a minute and try again."
        )

    @app.errorhandler(CSRFError)
    def csrf_error(_e: Exception) -> tuple[str, int]:
        return render_error(400, "Form expired", "The form expired. Please reload the page and try again.")

    @app.errorhandler(500)
    def server_error(_e: Exception) -> tuple[str, int]:
        db.session.rollback()
        return render_error(500, "Something went wrong", "Nothing was changed. Please try again.")


def register_template_helpers(app: Flask) -> None:
    from dicomportal.formatting import format_money

    app.jinja_env.filters["money"] = format_money

    @app.context_processor
    def inject_globals() -> dict[str, Any]:
        return {"test_mode": is_test_mode(app.config), "demo_mode": app.config["DEMO_MODE"]}


def stripe_js_origin(app: Flask) -> str:
    """The origin Stripe.js is loaded from: localstripe's in test mode, Stripe's otherwise."""
    return app.config["STRIPE_API_BASE"] or "https://js.stripe.com"


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        stripe_origin = stripe_js_origin(app)
        api_origin = app.config["STRIPE_API_BASE"] or "https://api.stripe.com"
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; "
            f"script-src 'self' {stripe_origin}; "
            f"frame-src 'self' {stripe_origin} https://hooks.stripe.com; "
            f"connect-src 'self' {api_origin}; "
            "img-src 'self' data:; style-src 'self'; object-src 'none'; "
            "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if getattr(request, "htmx", None) is not None:
            response.vary.add("HX-Request")
        return response


def register_commands(app: Flask) -> None:
    from dicomportal.cli import register

    register(app)
