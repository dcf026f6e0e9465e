#!/usr/bin/env python3
"""A stand-in for the Anthropic Messages API, for benchmarks: answers every
POST /v1/messages with a valid classification and counts the calls; GET /stats returns
{"calls": N}. Listens on 127.0.0.1, on the port given (0 picks one), and writes the port
to --port-file once it listens."""
import argparse, json, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = json.dumps({"is_error": True, "severity": "high", "error_type": "bug",
                     "title": "Classified", "description": "d", "affected_component": "c",
                     "suggested_fix": "f", "confidence": 0.9})
calls = 0
lock = threading.Lock()


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        global calls
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path != "/v1/messages":
            return self.reply(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
        with lock:
            calls += 1
        self.reply(200, {"id": "msg", "type": "message", "role": "assistant", "model": "bench",
                         "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn",
                         "usage": {"input_tokens": 400, "output_tokens": 60}})

    def do_GET(self):
        with lock:
            self.reply(200, {"calls": calls})


p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--port-file", required=True)
a = p.parse_args()
srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
open(a.port_file, "w").write(str(srv.server_address[1]))
srv.serve_forever()
