"""The pure verifiers of orvad/webhooks/inbound_formats.py (no orvad): for every format, what ``sign`` makes is
accepted, and any change to one character of any signature header, to the body or to the secret is refused
(Hypothesis). The HTTP tests (test_inbound.py) attack them through a real orvad."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orvad.webhooks.inbound_formats import FORMATS, Settings, SignatureRefused, sign, verify

NOW = 1_800_000_000
SETTINGS = {
    "github": Settings(),
    "stripe": Settings(),
    "slack": Settings(),
    "hmac_sha256_hex": Settings("X-Sig", "sha256="),
    "hmac_sha256_base64": Settings("X-Sig"),
}
_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def _headers(sent: dict[str, str]) -> dict[str, list[str]]:
    return {k.lower(): [v] for k, v in sent.items()}


@pytest.mark.parametrize("fmt", list(FORMATS))
@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=512), secret=st.binary(min_size=16, max_size=64), data=st.data())
def test_signed_is_accepted_and_any_change_refused(
    fmt: str, body: bytes, secret: bytes, data: st.DataObject
) -> None:
    s = SETTINGS[fmt]
    sent = sign(fmt, body, secret, s, NOW)
    verified = verify(fmt, _headers(sent), body, secret, s, NOW)
    assert verified.keys and verified.expires_at > NOW
    # one character of one header changed
    name = data.draw(st.sampled_from(sorted(sent)))
    value = sent[name]
    at = data.draw(st.integers(0, len(value) - 1))
    other = data.draw(_TEXT.filter(lambda ch: ch != value[at]))
    changed = {**sent, name: value[:at] + other + value[at + 1 :]}
    with pytest.raises(SignatureRefused):
        verify(fmt, _headers(changed), body, secret, s, NOW)
    with pytest.raises(SignatureRefused):
        verify(fmt, _headers(sent), body + b"x", secret, s, NOW)
    with pytest.raises(SignatureRefused):
        verify(fmt, _headers(sent), body, secret + b"x", s, NOW)


@pytest.mark.parametrize("fmt", ["stripe", "slack"])
def test_timestamps_outside_the_tolerance_are_refused_as_stale(fmt: str) -> None:
    s = Settings(tolerance_s=60)
    for then in (NOW - 61, NOW + 61):
        with pytest.raises(SignatureRefused) as refused:
            verify(fmt, _headers(sign(fmt, b"{}", b"k" * 16, s, then)), b"{}", b"k" * 16, s, NOW)
        assert refused.value.stale
    for then in (NOW - 60, NOW + 60):
        assert (
            verify(fmt, _headers(sign(fmt, b"{}", b"k" * 16, s, then)), b"{}", b"k" * 16, s, NOW).timestamp
            == then
        )


def test_a_header_sent_twice_is_refused() -> None:
    sent = sign("github", b"{}", b"k" * 16, Settings(), NOW)
    twice = {"x-hub-signature-256": [sent["X-Hub-Signature-256"]] * 2}
    with pytest.raises(SignatureRefused, match="2 times"):
        verify("github", twice, b"{}", b"k" * 16, Settings(), NOW)


def test_stripe_accepts_any_of_its_v1_signatures() -> None:
    """While a secret is rolled Stripe signs with both: either one matching is enough."""
    sent = sign("stripe", b"{}", b"new-secret-123456", Settings(), NOW)["Stripe-Signature"]
    old = sign("stripe", b"{}", b"old-secret-123456", Settings(), NOW)["Stripe-Signature"].split(",")[1]
    both = {"stripe-signature": [f"{sent},{old}"]}
    assert verify("stripe", both, b"{}", b"old-secret-123456", Settings(), NOW).keys
    assert verify("stripe", both, b"{}", b"new-secret-123456", Settings(), NOW).keys
