"""localstripe kept in a state file (the demo's data dir) survives a restart; in memory by default.

The saves are atomic: a save cut short by an error or by SIGKILL leaves the previous state loadable.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import stripe

from dicomportal.devtools.stripe_server import LocalStripe, StateFileError, load_state, save_state

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}


def client(server: LocalStripe) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_state", base_addresses={"api": server.api_base}, max_network_retries=0
    )


@pytest.fixture
def started() -> Iterator[list[LocalStripe]]:
    """Servers a test starts; every one is stopped at the end."""
    servers: list[LocalStripe] = []
    yield servers
    for server in servers:
        server.stop()


def start(started: list[LocalStripe], state_file: Path | None = None) -> LocalStripe:
    server = LocalStripe(state_file=state_file).start()
    started.append(server)
    return server


def test_a_customer_and_saved_card_survive_a_restart_and_can_be_charged(
    tmp_path: Path, started: list[LocalStripe]
) -> None:
    state = tmp_path / "localstripe.pickle"
    first = start(started, state)
    api = client(first)
    customer = api.v1.customers.create(params={"email": "kept@example.com"})
    card = api.v1.payment_methods.create(params={"type": "card", "card": CARD})
    api.v1.payment_methods.attach(card.id, params={"customer": customer.id})
    paid = api.v1.payment_intents.create(
        params={"amount": 1900, "currency": "usd", "customer": customer.id, "payment_method": card.id}
        | {"confirm": True, "off_session": True}
    )
    first.stop()

    second = start(started, state)
    api = client(second)
    again = api.v1.payment_intents.create(
        params={"amount": 1900, "currency": "usd", "customer": customer.id, "payment_method": card.id}
        | {"confirm": True, "off_session": True}
    )

    assert api.v1.customers.retrieve(customer.id).email == "kept@example.com"
    assert api.v1.payment_intents.retrieve(paid.id).status == "succeeded"
    assert again.status == "succeeded"
    cards = api.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [c.id for c in cards] == [card.id]


def test_the_state_file_is_readable_by_its_owner_only(tmp_path: Path, started: list[LocalStripe]) -> None:
    state = tmp_path / "localstripe.pickle"
    client(start(started, state)).v1.customers.create(params={"email": "private@example.com"})

    assert state.stat().st_mode & 0o777 == 0o600


def test_without_a_state_file_nothing_is_kept(started: list[LocalStripe]) -> None:
    first = start(started)
    customer = client(first).v1.customers.create(params={"email": "gone@example.com"})
    first.stop()

    second = start(started)

    with pytest.raises(stripe.InvalidRequestError):
        client(second).v1.customers.retrieve(customer.id)


def test_an_unreadable_state_file_stops_the_start_with_what_to_do(tmp_path: Path) -> None:
    state = tmp_path / "localstripe.pickle"
    state.write_bytes(b"not a pickle")

    with pytest.raises(RuntimeError, match="delete it to start Stripe afresh"):
        LocalStripe(state_file=state).start()
    assert state.read_bytes() == b"not a pickle"


def test_a_save_that_fails_midway_leaves_the_previous_state_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "localstripe.pickle"
    save_state({"cus_1": "first"}, state)
    real_dump = pickle.dump

    def dump_half_then_fail(obj: Any, file: IO[bytes], protocol: int | None = None) -> None:
        data = pickle.dumps(obj, protocol)
        file.write(data[: len(data) // 2])
        file.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pickle, "dump", dump_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_state({"cus_1": "first", "cus_2": "second"}, state)
    monkeypatch.setattr(pickle, "dump", real_dump)

    assert load_state(state) == {"cus_1": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["localstripe.pickle"]  # no temporary file left


SAVE_FOREVER = """
import sys
from pathlib import Path
from dicomportal.devtools.stripe_server import save_state

path = Path(sys.argv[1])
stores = [{"generation": n, "payload": bytes([n]) * 4_000_000} for n in (1, 2)]
save_state(stores[0], path)
print("saved", flush=True)
n = 0
while True:
    n += 1
    save_state(stores[n % 2], path)
"""


def test_killing_the_server_while_it_saves_leaves_a_loadable_state(tmp_path: Path) -> None:
    state = tmp_path / "localstripe.pickle"
    landed_mid_save = 0
    for attempt in range(40):  # until three kills land in the middle of a save (a busy machine varies)
        child = subprocess.Popen(
            [sys.executable, "-c", SAVE_FOREVER, str(state)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline() == "saved\n"
        time.sleep((attempt % 7) * 0.013)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()

        loaded = load_state(state)

        assert loaded is not None and loaded["payload"] == bytes([loaded["generation"]]) * 4_000_000
        leftovers = list(tmp_path.glob(".localstripe.pickle.*.tmp"))  # a kill during a save leaves one
        landed_mid_save += bool(leftovers)
        for leftover in leftovers:
            leftover.unlink()
        if landed_mid_save >= 3:
            break
    assert landed_mid_save >= 3  # the kills did land in the middle of saves, and the state held


def test_load_state_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    state = tmp_path / "localstripe.pickle"
    state.write_bytes(pickle.dumps(["a", "list"]))

    with pytest.raises(StateFileError, match="does not hold a localstripe store"):
        load_state(state)
    assert load_state(tmp_path / "missing.pickle") is None
