"""The replay memory's ``forget`` (orvad/invoke/signatures.py), used by inbound webhooks for deliveries turned
away before their function ran: a forgotten key can be claimed again, and the first claim's expiry never cuts
the second claim's window short."""

from __future__ import annotations

from orvad.invoke.signatures import SignatureChecker


def test_a_forgotten_key_is_claimed_again_and_keeps_its_new_window() -> None:
    persisted: list[tuple[str, float]] = []
    memory = SignatureChecker(persist=lambda key, until: persisted.append((key, until)))
    assert memory.claim("webhook:iwh_x:mac:aa", 10.0, 0.0)
    assert not memory.claim("webhook:iwh_x:mac:aa", 10.0, 1.0)  # a replay
    memory.forget("webhook:iwh_x:mac:aa")
    assert memory.claim("webhook:iwh_x:mac:aa", 20.0, 2.0)  # the sender's retry
    # past the first claim's expiry, inside the second's: still a replay
    assert memory.claim("webhook:iwh_x:mac:bb", 30.0, 15.0)
    assert not memory.claim("webhook:iwh_x:mac:aa", 20.0, 15.0)
    # past the second's: forgotten by time, as every key is
    assert memory.claim("webhook:iwh_x:mac:aa", 40.0, 21.0)
    memory.forget("never-claimed")  # nothing to give back: no error
    assert [k for k, _ in persisted].count("webhook:iwh_x:mac:aa") == 3
