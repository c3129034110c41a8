"""URL converters for every blueprint (registered app-wide in ``create_app``)."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter, Map

from dicomportal.models.types import MAX_ID


class IdConverter(IntegerConverter):
    """Flask's ``<int:...>`` bounded to what an id column holds (PostgreSQL ``integer``).

    A longer or larger number does not match the route, so it is a 404 like any unknown page,
    instead of an overflow in the database driver (a 500). The digit limit in the pattern also
    keeps a 5,000-digit "id" from reaching ``int()``.
    """

    regex = r"\d{1,10}"

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)
