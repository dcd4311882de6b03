"""Tests of the `orva` command-line client (orva_cli/)."""
