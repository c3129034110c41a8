"""WSGI entry point: ``gunicorn wsgi:app``."""

from dicomportal import create_app

app = create_app()
