#!/usr/bin/env python3
"""A stand-in Prometheus for memory benchmarks: answers every /api/v1/query_range with N made-up
series on the requested grid, from memory, so that what is measured is the gate, not a TSDB.

  fake-prometheus.py PORT SERIES             N series per query, every step
  fake-prometheus.py PORT SERIES --burst B D  10 series, SERIES between B and B+D seconds after
                                               start, then 10 again (one sample per series)
"""
import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, SERIES = int(sys.argv[1]), int(sys.argv[2])
BURST = (float(sys.argv[4]), float(sys.argv[5])) if "--burst" in sys.argv else None
STARTED = time.time()
CACHE = {}


def body(query, start, end, step):
    n = SERIES
    if BURST:
        age = time.time() - STARTED
        n = SERIES if BURST[0] <= age < BURST[0] + BURST[1] else 10
    key = (query, start, end, step, n)
    if key not in CACHE:
        steps = range(start, end + 1, step)
        result = [
            {
                "metric": {"namespace": f"ns-{i % 50}", "pod": f"{query}-pod-{i:06d}", "container": "app"},
                "values": [[t, str(((i * 7 + t) % 100) / 100)] for t in steps],
            }
            for i in range(n)
        ]
        text = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
        if len(CACHE) > 64:
            CACHE.clear()
        CACHE[key] = text.encode()
    return CACHE[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, params):
        get = lambda k: params[k][0]
        data = body(get("query"), int(float(get("start"))), int(float(get("end"))), int(float(get("step"))))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.answer(urllib.parse.parse_qs(self.rfile.read(length).decode()))

    def do_GET(self):
        self.answer(urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query))

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
