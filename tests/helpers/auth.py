"""Signing up, logging in and out through the real forms."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


class AuthActions:
    """Sign up, log in and out through the real forms."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def signup(
        self, email: str = "pat@example.com", password: str = "correct horse battery", name: str = "Pat Lee"
    ) -> Any:
        return self.client.post("/auth/signup", data={"email": email, "password": password, "name": name})

    def login(self, email: str = "pat@example.com", password: str = "correct horse battery") -> Any:
        return self.client.post("/auth/login", data={"email": email, "password": password})

    def logout(self) -> Any:
        return self.client.post("/auth/logout")
