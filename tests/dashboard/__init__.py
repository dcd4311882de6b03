"""Tests of the dashboard (web/) in a real browser, and how orvad serves it."""
