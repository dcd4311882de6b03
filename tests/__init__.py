"""Orva's tests: sub-folders mirror orvad's packages (CONTRIBUTING.md); shared helpers and fixtures live here."""
