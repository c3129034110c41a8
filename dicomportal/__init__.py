"""dicomportal: a self-hosted subscription and billing portal for a DICOM-viewer business."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from flask import Flask, Response, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from dicomportal.config import is_test_mode, load_config, private_sqlite_file, support_address
from dicomportal.deployment.safety import refuse_unsafe_settings
from dicomportal.extensions import csrf, db, limiter, login_manager, migrate

PACKAGE_DIR = Path(__file__).resolve().parent
LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def resource_dir(name: str) -> Path:
    """Where ``templates``, ``static`` or ``migrations`` are: inside the installed package (a wheel)
    or at the top of the source checkout (development and editable installs)."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


def create_app(
    config: dict[str, Any] | None = None, instance_path: str | None = None, *, refuse_unsafe: bool = True
) -> Flask:
    """Build the WSGI app; ``config`` overrides the environment (tests use it).

    :raises UnsafeSettings: a live Stripe key with a missing or published secret, demo keys or demo
        mode (see ``deployment/safety.py``), unless TESTING; ``refuse_unsafe=False`` is for
        ``dicomportal check``, which reports the same problems instead.
    """
    app = Flask(
        __name__,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
        instance_path=instance_path,
        instance_relative_config=True,
    )
    configure_logging()
    app.config.update(load_config(Path(app.instance_path)))
    if config:
        app.config.update(config)
    if refuse_unsafe:
        refuse_unsafe_settings(app.config)
    private_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path))
    engine_options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Concurrent writers wait for SQLite's lock instead of failing at once. A file needs no
        # liveness check before each use (that is for servers that drop idle connections).
        engine_options["connect_args"] = {"timeout": 30}
        engine_options["pool_pre_ping"] = False
    else:
        # The worker's Stripe pool uses a connection per step in flight, besides its own.
        engine_options.setdefault("pool_size", max(5, int(app.config["STRIPE_CONCURRENCY"]) + 2))
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    register_proxy_fix(app)
    register_extensions(app)
    register_blueprints(app)
    register_static_assets(app)
    register_errorhandlers(app)
    register_template_helpers(app)
    register_security_headers(app)
    register_commands(app)
    register_jobs()
    return app


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in WAL mode: readers never block the writer, and a commit costs one sync of the log
    instead of several of a rollback journal. ``synchronous=FULL`` keeps every commit durable
    through a power cut (a billing ledger must not forget a charge it recorded)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def configure_logging() -> None:
    """Make the app's own loggers (``dicomportal.*``: jobs, webhooks, mail) print INFO and above.

    When nothing configured logging yet (the demo, ``dicomportal worker``, gunicorn without
    ``--log-config``), one stderr handler goes on the root logger. A handler someone else set up
    (gunicorn's log config, pytest, a host's logging) is left alone; gunicorn's own loggers do not
    propagate to the root, so its lines are never doubled.
    """
    package = logging.getLogger(__name__)
    if package.level == logging.NOTSET:
        package.setLevel(logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)


def register_proxy_fix(app: Flask) -> None:
    """Trust ``TRUSTED_PROXY_HOPS`` reverse proxies for the client's address, scheme and host.

    ``request.remote_addr`` (the rate limits' key) and the ``REMOTE_ADDR`` gunicorn's access log
    prints become the client's. With 0 the X-Forwarded-* headers are ignored: anyone can send them.
    """
    hops = int(app.config["TRUSTED_PROXY_HOPS"])
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


def register_extensions(app: Flask) -> None:
    from dicomportal import mail, models
    from dicomportal.accounts import user_for_session
    from dicomportal.views._htmx import is_htmx

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=str(resource_dir("migrations")), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    limiter.init_app(app)
    mail.init_app(app)

    @login_manager.user_loader
    def load_user(session_token: str) -> models.User | None:
        # The cookies name a server-side login session: once it is ended (logout, password
        # change) or expired, a copy of them opens nothing.
        return user_for_session(session_token)

    @login_manager.unauthorized_handler
    def unauthorized() -> Response:
        target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
        if is_htmx():
            return Response(status=401, headers={"HX-Redirect": target})
        flash("Please log in to continue.", "info")
        return redirect(target)  # type: ignore[return-value]


def register_static_assets(app: Flask) -> None:
    """Static files under content-hashed names, cached for a year, compressed (WhiteNoise)."""
    from dicomportal.views._assets import register_static_assets as register

    register(app)


def register_blueprints(app: Flask) -> None:
    from dicomportal.views import (
        account,
        auth,
        billing,
        cancellation,
        checkout,
        dev,
        help,
        plans,
        redirects,
        studies,
        viewer,
        webhooks,
    )
    from dicomportal.views._routing import IdConverter

    # Before any route is added: every ``<int:...>`` in every blueprint is a bounded id.
    app.url_map.converters["int"] = IdConverter

    for module in (
        redirects,
        auth,
        plans,
        checkout,
        billing,
        cancellation,
        account,
        help,
        viewer,
        studies,
        webhooks,
        dev,
    ):
        app.register_blueprint(module.bp)


def register_errorhandlers(app: Flask) -> None:
    from dicomportal.views._htmx import is_htmx

    def render_error(code: int, title: str, message: str) -> tuple[str, int]:
        if is_htmx():
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

    @app.errorhandler(413)
    def too_large(_e: Exception) -> tuple[str, int]:
        return render_error(
            413, "Too large", "That was more than we accept in one request. Nothing was changed."
        )

    @app.errorhandler(CSRFError)
    def csrf_error(_e: Exception) -> tuple[str, int]:
        return render_error(400, "Form expired", "The form expired. Please reload the page and try again.")

    @app.errorhandler(500)
    def server_error(_e: Exception) -> tuple[str, int]:
        db.session.rollback()
        return render_error(500, "Something went wrong", "Nothing was changed. Please try again.")


def register_template_helpers(app: Flask) -> None:
    from dicomportal.billing.catalog import storage_label
    from dicomportal.billing.money import format_day, format_money

    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["dateformat"] = format_day
    app.jinja_env.filters["storage"] = storage_label  # 50 -> "50 GB", 1000 -> "1 TB"

    @app.context_processor
    def inject_globals() -> dict[str, Any]:
        return {
            "test_mode": is_test_mode(app.config),
            "demo_mode": app.config["DEMO_MODE"],
            "support_email": support_address(app.config),
        }


def stripe_js_origin(app: Flask) -> str:
    """The origin Stripe.js is loaded from: localstripe's in test mode, Stripe's otherwise."""
    return app.config["STRIPE_API_BASE"] or "https://js.stripe.com"


def register_security_headers(app: Flask) -> None:
    stripe_origin = stripe_js_origin(app)
    api_origin = app.config["STRIPE_API_BASE"] or "https://api.stripe.com"
    policy = (
        "default-src 'self'; "
        f"script-src 'self' {stripe_origin}; "
        f"frame-src 'self' {stripe_origin} https://hooks.stripe.com; "
        f"connect-src 'self' {api_origin}; "
        "img-src 'self' data:; style-src 'self'; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        # Any page may come in two shapes (page or htmx fragment): caches must keep them apart.
        response.vary.add("HX-Request")
        return response


def register_jobs() -> None:
    """Each domain's scheduled jobs register themselves with ``dicomportal.jobs`` when imported."""
    import dicomportal.accounts.jobs
    import dicomportal.billing.jobs
    import dicomportal.mail.jobs
    import dicomportal.studies.jobs  # noqa: F401


def register_commands(app: Flask) -> None:
    from dicomportal.cli import register

    register(app)
