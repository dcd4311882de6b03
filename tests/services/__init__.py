"""Tests of the in-memory services, the reconciler and the spawner (orvad/services/)."""
