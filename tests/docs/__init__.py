"""Tests of the documentation, followed literally and checked against the code."""
