"""Tests of the SQLite store on real files and filesystems (orvad/store/)."""
