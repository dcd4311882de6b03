"""Tests of the code base's own rules: lint, layers, test markers, packaging."""
