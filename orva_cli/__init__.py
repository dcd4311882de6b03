"""orva: the command-line client of the Orva API (docs/CLI.md)."""

import sys

# httpx imports its own command line (httpx._main: pygments and much of rich) when it is imported,
# about 0.1 s of every `orva` start. The library never needs it and has a fallback for when it is
# missing, so mark it missing. A program that imported httpx before us is not affected.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
