"""A small real OpenAI-compatible upstream for tests (stdlib HTTP server on loopback).

Behaviour is steered per request through the upstream model name:
``fail-500`` answers 500, ``fail-400`` answers 400, ``slow`` waits 3 s, ``close`` drops the
connection, ``chunked`` sends its JSON answer in chunked transfer encoding, ``echo`` answers with the
last message's text (so a test can choose the answer); anything else answers normally. Every request
body is kept in ``received`` so tests can check what the gateway forwarded. With ``models`` it answers
``GET /models`` with that list (else 404, as upstreams without a model list do); with ``key`` it answers 401
to requests without that bearer key.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Upstream:
    def __init__(self, name: str = "up", *, models: list[str] | None = None, key: str | None = None) -> None:
        self.name = name
        self.models = models
        self.key = key
        self.received: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _refused(self) -> bool:
                """Answer 401 (and say so) when the upstream wants a key and this request lacks it."""
                if up.key is None or self.headers.get("Authorization") == f"Bearer {up.key}":
                    return False
                self._json(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                           "param": None, "code": "invalid_api_key"}})
                return True

            def do_GET(self) -> None:  # noqa: N802
                if self._refused():
                    return None
                if up.models is None or not self.path.endswith("/models"):
                    return self._json(404, {"error": {"message": "Not found", "type": "invalid_request_error"}})
                return self._json(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 1, "owned_by": up.name} for m in up.models]})

            def do_POST(self) -> None:  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                req["_path"] = self.path
                req["_auth"] = self.headers.get("Authorization")
                up.received.append(req)
                if self._refused():
                    return None
                model = req.get("model", "")
                if model == "fail-500":
                    return self._json(500, {"error": {"message": "boom", "type": "server_error"}})
                if model == "fail-400":
                    return self._json(400, {"error": {"message": "bad thing", "type": "invalid_request_error",
                                                      "param": "foo", "code": "bad"}})
                if model == "slow":
                    time.sleep(3)
                if model == "close":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.path.endswith("/embeddings"):
                    n = len(req["input"]) if isinstance(req["input"], list) else 1
                    return self._json(200, {"object": "list", "model": model, "data": [
                        {"object": "embedding", "index": i, "embedding": [0.5, 0.25]} for i in range(n)],
                        "usage": {"prompt_tokens": 3 * n, "total_tokens": 3 * n}})
                usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
                words = ["hello ", "from ", up.name]
                if model == "echo":
                    text = str(((req.get("messages") or [{}])[-1]).get("content") or req.get("prompt") or "")
                    words = [text[:len(text) // 2], text[len(text) // 2:]]
                message = {"role": "assistant", "content": "".join(words), "reasoning_content": "thinking..."}
                if req.get("tools"):
                    message = {"role": "assistant", "content": None, "tool_calls": [{
                        "id": "call_1", "type": "function",
                        "function": {"name": req["tools"][0]["function"]["name"], "arguments": '{"city": "Paris"}'}}]}
                if not req.get("stream") and model == "chunked":
                    body = json.dumps({"id": "chatcmpl-up", "object": "chat.completion", "created": 1,
                                       "model": model, "usage": usage, "choices": [
                                           {"index": 0, "message": message, "finish_reason": "stop"}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(body), 40):
                        self._chunk(body[i:i + 40])
                    self.wfile.write(b"0\r\n\r\n")
                    return None
                if not req.get("stream"):
                    return self._json(200, {"id": "chatcmpl-up", "object": "chat.completion", "created": 1,
                                            "model": model, "choices": [{"index": 0, "message": message,
                                                                         "finish_reason": "stop"}],
                                            "usage": usage})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model}
                events = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
                events += [dict(base, choices=[{"index": 0, "delta": {"reasoning_content": "hmm"}}])]
                events += [dict(base, choices=[{"index": 0, "delta": {"content": w}}]) for w in words]
                events += [dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])]
                if (req.get("stream_options") or {}).get("include_usage"):
                    events.append(dict(base, choices=[], usage=usage))
                for ev in events:
                    self._chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
                self._chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        return Handler
