"""Tests of what touches the host: nsjail argv, seccomp, egress, child processes, isolation (orvad/host/)."""
