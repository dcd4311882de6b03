"""A spare worker's boot (orvad/services/spares.py): started before its function is known.

It waits for one `environment` frame on stdin (runtimes/PROTOCOL.md), sets those variables, and then boots the
adapter exactly as a usual worker's boot line does. orvad sends that frame only once the function's code is in
/code and its limits are on the jail's cgroups. Standard library only; imported from /runtime by the boot line.
"""

import os
import sys


def _read(size):
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:  # orvad stopped the spare before handing it a function
            os._exit(0)
        data += chunk
    return data


def _loads(data):
    """JSON through CPython's C scanner, as the adapter reads frames: the json package would import re and enum
    into every worker a spare becomes, which a usual worker never loads."""
    try:
        from _json import make_scanner
    except ImportError:
        import json

        return json.loads(data)

    class Options:  # the attributes the C scanner reads from a json.JSONDecoder
        strict, object_hook, object_pairs_hook, parse_float, parse_int, parse_constant = (
            True, None, None, float, int, float)

    return make_scanner(Options())(data.decode(), 0)[0]


def main():
    os.write(1, b'\x00\x00\x00\x10{"type":"spare"}')  # waiting: orvad may hand this jail a function
    message = _loads(_read(int.from_bytes(_read(4), "big")))
    if message.get("type") != "environment":
        os._exit(70)
    os.environ.update(message["env"])
    sys.modules.pop("spare", None)  # as the adapter does for itself: leave no trace a handler could import
    import adapter

    adapter.main()
