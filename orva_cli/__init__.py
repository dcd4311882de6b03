"""orva: the command-line client of the Orva API (docs/CLI.md)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("orva")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
