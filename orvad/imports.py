"""Large libraries orvad imports at their first use rather than at start (the MCP SDK, httpx,
cryptography): an orvad that never needs them does not carry them (docs/PERFORMANCE.md, memory).

``imported`` does such an import off the event loop, in a thread: run on the loop, the MCP SDK's import
(about 0.6 s) or httpx's (0.15 s) would hold every request in flight for its length. The thread still
shares the GIL, so the loop runs at about half speed meanwhile, never stopped. A leaf.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from types import ModuleType


async def imported(name: str) -> ModuleType:
    """The module, imported in a thread the first time (then from ``sys.modules``)."""
    module = sys.modules.get(name)
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, name)
    return module
