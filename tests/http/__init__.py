"""Tests of the web layer: body limits, CORS, origins, Expect, the drain on shutdown (orvad/http/)."""
