"""The MCP server at /mcp: the SDK's Streamable HTTP transport behind orvad's checks (``endpoint.py``)
and operator mode's tool catalog over the services (``tools.py``). docs/MCP.md."""
