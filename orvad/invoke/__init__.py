"""The one dispatch path for every trigger: admission -> lease -> invoke -> answer/relay -> settle.

Raw ASGI, for speed and for streaming. Nothing here touches the disk or the database: the
function, its route and its pool are found in memory; the execution row goes to the batched
writer after the response. A client that disconnects cancels its request and frees the slot.

- ``request``: ``InvokeRequest``, what every trigger hands in (HTTP builds it from the scope)
- ``collaborators``: ``Collaborators``, the typed services the path uses; ``PoolSource``
- ``admission``: status gate, rate limit, the caller's credentials, the concurrency gate
- ``connection``: the HTTP body and the watch for a client that leaves
- ``dispatch``: ``Invoker``: the triggers' entry points and the path itself
- ``relay``: the reply as HTTP messages (whole, or a stream), and ``Result`` for buffered callers
- ``record``: ``ExecutionRecord``, the execution row and its outcomes
- ``flight``: what one invocation holds while it runs
- ``settle``: the slot back to its pool, the row to the store, the figures to the metrics
"""

from orvad.invoke.collaborators import Collaborators, PoolSource
from orvad.invoke.connection import DISCONNECT_WATCH_AFTER_S
from orvad.invoke.dispatch import Invoker
from orvad.invoke.record import CUT_MESSAGE, ExecutionRecord, Killed
from orvad.invoke.relay import SANDBOX_HEADER, Result
from orvad.invoke.request import Grant, InvokeRequest, signed_target

__all__ = [
    "CUT_MESSAGE",
    "DISCONNECT_WATCH_AFTER_S",
    "SANDBOX_HEADER",
    "Collaborators",
    "ExecutionRecord",
    "Grant",
    "InvokeRequest",
    "Invoker",
    "Killed",
    "PoolSource",
    "Result",
    "signed_target",
]
