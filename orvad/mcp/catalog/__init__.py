"""Operator mode's tools, one module per area (functions and code, runs, configuration, admin, the
system); each module's ``TOOLS`` holds its definitions. The registry is ``orvad/mcp/tools.py``."""
