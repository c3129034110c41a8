"""The baseline for bench/run.py: a bare Flask app with one endpoint and nothing else.

``gunicorn bare_app:app`` from this folder. Whatever dicomportal's pages cost beyond this is
ours (templates, database, extensions); what this costs is Flask + gunicorn + the machine.
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)

PAGE = (
    "<!doctype html><html><head><title>bare</title></head>"
    "<body><p>Hello from a bare Flask app.</p></body></html>"
)


@app.get("/")
def index() -> str:
    """A small, constant HTML page."""
    return PAGE
