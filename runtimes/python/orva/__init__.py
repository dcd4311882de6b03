"""orva: the Orva platform SDK for Python handlers (docs/SDK.md).

Shipped with the adapter: `import orva` works in every Python worker without installing anything. Each
call travels to orvad over the worker's own pipes (no network, no token); orvad knows which function and
which invocation is asking. Namespaces load when first used::

    from orva import kv, jobs, cron, trace, log, invoke, OrvaError
    kv.put("visits", 0)            # sync; `await kv.aput(...)` in an async handler
    log.info("stored", key="visits")

Failures raise ``orva.OrvaError`` (``.code``, ``.message``, ``.hint``, ``.status``).
"""

from orva._channel import OrvaError, acall, call, context

__all__ = ["OrvaError", "call", "acall", "context", "kv", "jobs", "cron", "trace", "log", "invoke", "ainvoke"]

_NAMESPACES = ("kv", "jobs", "cron", "trace", "log")


def __getattr__(name):
    """``orva.kv`` and the others: imported on first use, so a handler pays only for what it uses."""
    if name in _NAMESPACES:
        import importlib

        module = importlib.import_module(f"orva.{name}")
        globals()[name] = module
        return module
    if name in ("invoke", "ainvoke"):
        import importlib

        module = importlib.import_module("orva.invoke")
        value = getattr(module, name)
        globals()[name] = value  # `orva.invoke` the function (Go Orva's `from orva import invoke`)
        return value
    raise AttributeError(f"module 'orva' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
