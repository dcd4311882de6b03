"""Tests of users, sessions, API keys, passwords and the audit trail (orvad/auth/)."""
