"""Each function's key-value state (issue 23): orvad/kv/service.py; SQL in orvad/store/kv.py."""

from orvad.kv.service import KvService

__all__ = ["KvService"]
