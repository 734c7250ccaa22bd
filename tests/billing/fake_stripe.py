"""A small stand-in for Stripe's API on 127.0.0.1 that the real SDK talks to.

It plays the endpoints billing calls, records every request (path, Idempotency-Key, form
fields), honours idempotency keys like Stripe (same key: the first answer again, nothing new
made), and can be told to fail a path a few times.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


@dataclass
class Recorded:
    method: str
    path: str
    idempotency_key: str | None
    form: dict


@dataclass
class FakeStripe:
    requests: list[Recorded] = field(default_factory=list)
    objects: dict = field(default_factory=dict)
    # path regex -> (status, times left)
    failures: dict = field(default_factory=dict)
    _answers: dict = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def fail(self, path_pattern: str, status: int = 500, times: int = 1) -> None:
        self.failures[path_pattern] = [status, times]

    def calls(self, path_pattern: str) -> list[Recorded]:
        return [r for r in self.requests if re.fullmatch(path_pattern, r.path)]

    def made(self, prefix: str) -> list[dict]:
        return [o for k, o in self.objects.items() if k.startswith(prefix)]

    # -- what each endpoint does ---------------------------------------------------------

    def _new(self, prefix: str, obj: dict) -> dict:
        obj = {"id": f"{prefix}_{next(self._ids)}", **obj}
        self.objects[obj["id"]] = obj
        return obj

    def answer(self, method: str, path: str, form: dict) -> tuple[int, dict]:
        metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
        if path == "/v1/customers":
            return 200, self._new(
                "cus", {"object": "customer", "name": form.get("name"), "metadata": metadata}
            )
        if m := re.fullmatch(r"/v1/customers/(cus_\d+)", path):
            self.objects[m[1]].update(name=form.get("name"))
            return 200, self.objects[m[1]]
        if path == "/v1/invoices":
            return 200, self._new(
                "in",
                {
                    "object": "invoice",
                    "status": "draft",
                    "customer": form["customer"],
                    "metadata": metadata,
                    "lines": [],
                },
            )
        if path == "/v1/invoiceitems":
            invoice = self.objects[form["invoice"]]
            item = self._new(
                "ii",
                {
                    "object": "invoiceitem",
                    "amount": int(form["amount"]),
                    "invoice": form["invoice"],
                    "description": form.get("description"),
                },
            )
            invoice["lines"].append(item["id"])
            return 200, item
        if m := re.fullmatch(r"/v1/invoices/(in_\d+)/(finalize|void)", path):
            invoice = self.objects[m[1]]
            invoice["status"] = "open" if m[2] == "finalize" else "void"
            return 200, {**invoice, "lines": {"object": "list", "data": [], "has_more": False}}
        return 404, {"error": {"type": "invalid_request_error", "message": f"no {path}"}}


def _handler(fake: FakeStripe):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            key = self.headers.get("Idempotency-Key")
            with fake._lock:
                fake.requests.append(Recorded("POST", self.path, key, form))
                status, body = self._respond(form, key)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status >= 500:
                self.send_header("Stripe-Should-Retry", "true")
            self.end_headers()
            self.wfile.write(data)

        def _respond(self, form, key):
            for pattern, rule in fake.failures.items():
                if re.fullmatch(pattern, self.path) and rule[1] > 0:
                    rule[1] -= 1
                    return rule[0], {"error": {"type": "api_error", "message": "try again"}}
            if key and (self.path, key) in fake._answers:
                return fake._answers[(self.path, key)]
            answer = fake.answer("POST", self.path, form)
            if key:
                fake._answers[(self.path, key)] = answer
            return answer

    return Handler


def start() -> tuple[FakeStripe, ThreadingHTTPServer]:
    fake = FakeStripe()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    return fake, server
