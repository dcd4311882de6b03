"""Tests of the invoke path, end to end and without HTTP (orvad/invoke/)."""
