"""`python -m orva_cli` runs the same CLI as the `orva` script."""

from orva_cli.main import main

main()
