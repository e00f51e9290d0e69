"""A tiny test runner for the client suites: runs every `test_*` function of a module
against the endpoint given on the command line, prints one line per test, exits 1 if any
failed. (The suites run from `cargo test`, which starts the server.)"""

import itertools
import sys
import time
import traceback
import urllib.parse
import uuid


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def nodes(endpoint):
    """The endpoints in `endpoint`: one server's, or a cluster's nodes joined by commas."""
    return endpoint.split(",")


def spread(client, endpoint):
    """Sends each of `client`'s requests (each retry too) to the next of the nodes in
    `endpoint`, as a load balancer in front of a cluster would: a call may land on any node,
    and the next on another. A single endpoint leaves the client as it is."""
    endpoints = [urllib.parse.urlsplit(e) for e in nodes(endpoint)]
    if len(endpoints) == 1:
        return client
    turn = itertools.count()

    def to_next_node(request, **_):
        node = endpoints[next(turn) % len(endpoints)]
        request.url = urllib.parse.urlsplit(request.url)._replace(scheme=node.scheme, netloc=node.netloc).geturl()

    # First, so the request is signed for the node it goes to.
    client.meta.events.register_first("request-created", to_next_node)
    return client


def next_node(endpoint, _turn=itertools.count()):
    """The next of the nodes in `endpoint`, in turn (a one-off call such as the AWS CLI's)."""
    endpoints = nodes(endpoint)
    return endpoints[next(_turn) % len(endpoints)]


def expect_error(code, call, *args, **kwargs):
    """Runs `call` and checks it raised a botocore ClientError with `code`; returns it."""
    from botocore.exceptions import ClientError

    try:
        call(*args, **kwargs)
    except ClientError as error:
        got = error.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {error.response['Error'].get('Message')}"
        return error
    raise AssertionError(f"expected {code}, the call succeeded")


def run(module, endpoint):
    tests = [(name, fn) for name, fn in vars(module).items() if name.startswith("test_") and callable(fn)]
    failed = 0
    for name, fn in tests:
        started = time.time()
        try:
            fn(endpoint)
            print(f"ok   {name} ({time.time() - started:.2f}s)", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
