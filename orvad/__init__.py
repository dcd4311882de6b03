"""Orva: a self-hosted serverless function runtime (the `orvad` daemon)."""

__version__ = "0.1.0"
