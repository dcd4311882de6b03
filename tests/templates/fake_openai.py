"""A stand-in for an OpenAI-compatible chat completions endpoint, speaking the real streaming wire format
(HTTP/1.1, chunked transfer encoding, server-sent events `data: {chat.completion.chunk}` ending with
`data: [DONE]`). Run inside a test network namespace: python fake_openai.py ADDRESS PORT KEY.

The reply's text is "[MODEL] echo: " and the last message's words, one word per event; after the word
"pause" the server waits a second before the rest (so a test can tell streaming from buffering)."""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = sys.argv[3] if len(sys.argv) > 3 else "sk-test"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, model: str, delta: dict[str, str], finish: str | None = None) -> None:
        chunk = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        if self.path != "/v1/chat/completions":
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        if self.headers.get("authorization") != f"Bearer {KEY}":
            return self._json(
                401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            )
        if body.get("stream") is not True or not body.get("messages"):
            return self._json(400, {"error": {"message": "stream must be true and messages given"}})
        model = str(body.get("model"))
        words = [f"[{model}]", "echo:", *str(body["messages"][-1]["content"]).split()]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._event(model, {"role": "assistant", "content": ""})
        for i, word in enumerate(words):
            self._event(model, {"content": (" " if i else "") + word})
            time.sleep(1.0 if word == "pause" else 0.02)  # "pause": the rest comes a second later
        self._event(model, {}, "stop")
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")  # the last chunk: 0\r\n\r\n

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


if __name__ == "__main__":
    ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
