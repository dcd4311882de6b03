"""Tests of the runtime adapters (runtimes/) and the handler shapes they accept."""
