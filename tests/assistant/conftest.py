"""Fixtures of the assistant tests: ``fake_provider``, the real local fake provider server (tests/assistant/fake_provider.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.assistant.fake_provider import FakeProvider, running


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A fake provider on 127.0.0.1 (a fresh port per test), speaking Anthropic Messages and OpenAI chat
    completions; script it with ``fake_provider.script([...], ...)``, read ``fake_provider.requests``."""
    yield from running()
