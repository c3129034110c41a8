"""The ``dicomportal`` console script: Flask's CLI (run, db, shell) plus our own commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from dicomportal.models import Role


def main() -> None:
    """Entry point of the ``dicomportal`` console script."""
    from dicomportal import create_app

    FlaskGroup(create_app=lambda: create_app(), help="dicomportal: subscription and billing portal.")()


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Load the plan catalog from the package's data file (idempotent)."""
    from dicomportal.billing.catalog import seed_catalog

    changes = seed_catalog()
    click.echo(f"catalog seeded: {changes} change(s)")


@click.command("create-user")
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.CUSTOMER.value)
@click.password_option()
@with_appcontext
def create_user_command(email: str, name: str, role: str, password: str) -> None:
    """Create an account, e.g. ``dicomportal create-user --role admin``."""
    from dicomportal.accounts import AccountError, create_user
    from dicomportal.extensions import db

    try:
        user = create_user(email, password, name, Role(role))
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"created {user.role.value} {user.email} (id {user.id})")


def register(app: Flask) -> None:
    """Attach our commands to the app's CLI."""
    for command in (seed_command, create_user_command):
        app.cli.add_command(command)
