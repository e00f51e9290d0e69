"""A Lambda emulator for the Firehose transform test: serves Lambda's Invoke API
(POST /2015-03-31/functions/NAME/invocations) on 127.0.0.1, prints its port, and answers
Firehose's data-transformation event as each function says:
  shout:  upper-cases keep-*, drops drop-*, fails bad-*, leaves lost-* out of its answer;
  partition: keeps every record, with the partition key `customer` from its JSON (null
             when it has none, as a handler's dict.get gives);
  broken: fails as a Lambda function does (200 with X-Amz-Function-Error: Unhandled).
Every invocation is appended, as JSON, to the file named by the first argument."""

import base64
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]


def shout(event):
    answers = []
    for record in event["records"]:
        text = base64.b64decode(record["data"]).decode()
        kind = text.split("-")[0]
        if kind == "lost":
            continue
        if kind == "drop":
            answers.append({"recordId": record["recordId"], "result": "Dropped"})
        elif kind == "bad":
            answers.append({"recordId": record["recordId"], "result": "ProcessingFailed"})
        else:
            data = base64.b64encode(text.upper().encode()).decode()
            answers.append({"recordId": record["recordId"], "result": "Ok", "data": data})
    return {"records": answers}


def partition(event):
    answers = []
    for record in event["records"]:
        answer = {"recordId": record["recordId"], "result": "Ok", "data": record["data"]}
        customer = json.loads(base64.b64decode(record["data"])).get("customer")
        answer["metadata"] = {"partitionKeys": {"customer": customer}}
        answers.append(answer)
    return {"records": answers}


FUNCTIONS = {"shout": shout, "partition": partition}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        parts = urllib.parse.urlsplit(self.path).path.split("/")
        body = self.rfile.read(int(self.headers["Content-Length"]))
        event = json.loads(body)
        with open(LOG, "a") as log:
            log.write(json.dumps({"path": self.path, "event": event}) + "\n")
        if parts[1:3] != ["2015-03-31", "functions"] or parts[4] != "invocations":
            self.send_response(404)
            self.end_headers()
            return
        if parts[3] in FUNCTIONS:
            reply = json.dumps(FUNCTIONS[parts[3]](event)).encode()
            self.send_response(200)
        else:
            reply = json.dumps({"errorMessage": "boom", "errorType": "Exception"}).encode()
            self.send_response(200)
            self.send_header("X-Amz-Function-Error", "Unhandled")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
