"""Tests of the daemon's start, stop, restart and health (orvad/daemon.py)."""
