#!/usr/bin/env python3
"""A WSGI upstream on the standard library's wsgiref server: it answers every request with
the CGI-style environ it was given (HTTP_* variables, method, path, query) as JSON, so a
test sees a request the way WSGI, CGI and PHP applications see it. It prints its address
once listening; it binds the port given in PORT (0 for any free one)."""

import json
import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    for k in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE"):
        seen[k] = environ.get(k, "")
    body = json.dumps(seen).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    server = make_server("127.0.0.1", int(os.environ.get("PORT") or 0), app, handler_class=QuietHandler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
