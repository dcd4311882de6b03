"""orva: the command-line client of the Orva API (docs/CLI.md)."""
