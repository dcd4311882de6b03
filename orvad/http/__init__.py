"""The web layer: the ASGI app, its middleware (request id, body cap, access log, CORS), the servers'
addresses and parser refusals, origins, the request drain and the Cookie header reader."""
