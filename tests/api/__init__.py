"""Tests of the HTTP API over a real orvad, resource by resource, and its compatibility with the Go Orva's clients."""
