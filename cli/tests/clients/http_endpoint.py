"""An HTTP endpoint for the Firehose HTTP destination test: serves Firehose's HTTP delivery
requests on 127.0.0.1, prints its port, and answers by path:
  /ok:        200 with the request's id;
  /flaky:     500 on a request id's first attempt, then 200;
  /slow:      no answer for 5 s on a request id's first attempt (past the server's
              --firehose-http-timeout 2), then 200;
  /toolarge:  413;
  /down:      503.
Every request is appended, as JSON (path, headers, body gunzipped and parsed), to the file
named by the first argument. With a certificate and its key as the second and third, it
serves HTTPS."""

import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]
SEEN = set()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = json.loads(body)
        request_id = request["requestId"]
        with LOCK:
            first = request_id not in SEEN
            SEEN.add(request_id)
            with open(LOG, "a") as log:
                log.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                      "body": request}) + "\n")
        status = 200
        if self.path == "/flaky" and first:
            status = 500
        elif self.path == "/slow" and first:
            time.sleep(5)
        elif self.path == "/toolarge":
            status = 413
        elif self.path == "/down":
            status = 503
        reply = json.dumps({"requestId": request_id, "timestamp": int(time.time() * 1000)}).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # The server gave up on a slow answer.

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if len(sys.argv) == 4:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
