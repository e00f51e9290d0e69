"""A tiny test runner for the client suites: runs every `test_*` function of a module
against the endpoint given on the command line, prints one line per test, exits 1 if any
failed. (The suites run from `cargo test`, which starts the server.)"""

import sys
import time
import traceback
import uuid


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


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
