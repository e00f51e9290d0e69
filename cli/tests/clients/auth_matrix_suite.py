"""The authentication and authorization matrix: for every operation of botocore's Kinesis
model, a request that is unsigned, wrongly signed, signed twenty minutes ago, or signed for
another X-Amz-Target and replayed, gets exactly its error; the same request signed by a
credential without a policy is never refused for its signature or its rights; signed by the
read-only credential (Get*, Describe*, List*) it is refused with AccessDeniedException
exactly when its action is not one of those. Then the AWS CLI, unsigned and wrongly signed,
for every operation it can call without members. The credentials and policies are those
clients.rs gives the policy server. Usage: python3 auth_matrix_suite.py URL"""

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from unittest import mock

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import harness

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
OPERATIONS = botocore.session.get_session().get_service_model("kinesis").operation_names
BODY = json.dumps({"StreamName": "matrix-none", "ShardId": "shardId-000000000000"}).encode()
SIGNATURE_ERRORS = {"MissingAuthenticationTokenException", "InvalidSignatureException",
                    "IncompleteSignatureException", "UnrecognizedClientException"}


def send(endpoint, headers):
    request = urllib.request.Request(endpoint + "/", data=BODY, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"__type": f"(not JSON) {text[:80]!r}"}


def signed(endpoint, operation, key="AKIDADMIN", secret="secret", when=None):
    request = AWSRequest(method="POST", url=endpoint + "/", data=BODY, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"Kinesis_20131202.{operation}"})
    signer = botocore.auth.SigV4Auth(Credentials(key, secret), "kinesis", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return dict(request.headers.items())


def error_name(reply):
    return reply.get("__type", "").split("#")[-1]


def matrix(endpoint, case):
    """(operation, status, error name) of every operation's request in `case`."""
    rows = []
    for operation in OPERATIONS:
        rows.append((operation, *outcome(endpoint, case, operation)))
    return rows


def outcome(endpoint, case, operation):
    target = f"Kinesis_20131202.{operation}"
    if case == "unsigned":
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    elif case == "wrong secret":
        headers = signed(endpoint, operation, secret="not-the-secret")
    elif case == "expired":
        twenty_minutes_ago = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) \
            - datetime.timedelta(minutes=20)
        headers = signed(endpoint, operation, when=twenty_minutes_ago)
    elif case == "replayed":
        headers = signed(endpoint, "ListStreams")
        headers["X-Amz-Target"] = target
    else:
        key = {"allowed": "AKIDADMIN", "read-only": "AKIDREADER"}[case]
        headers = signed(endpoint, operation, key=key)
    status, reply = send(endpoint, headers)
    return status, error_name(reply) if status != 200 else ""


def uniform(rows, name, status):
    wrong = [row for row in rows if (row[2], row[1]) != (name, status)]
    assert not wrong, f"expected {name} ({status}) for every operation, got: {wrong}"


def test_unsigned_requests_miss_their_token_for_every_operation(endpoint):
    uniform(matrix(endpoint, "unsigned"), "MissingAuthenticationTokenException", 403)


def test_wrongly_signed_requests_fail_their_signature_for_every_operation(endpoint):
    uniform(matrix(endpoint, "wrong secret"), "InvalidSignatureException", 400)


def test_requests_signed_twenty_minutes_ago_have_expired_for_every_operation(endpoint):
    rows = matrix(endpoint, "expired")
    uniform(rows, "InvalidSignatureException", 400)


def test_a_signature_replayed_with_another_target_fails_for_every_operation(endpoint):
    rows = [row for row in matrix(endpoint, "replayed") if row[0] != "ListStreams"]
    uniform(rows, "InvalidSignatureException", 400)


def test_an_unrestricted_credential_is_never_refused_for_signature_or_rights(endpoint):
    refused = [row for row in matrix(endpoint, "allowed")
               if row[2] in SIGNATURE_ERRORS | {"AccessDeniedException", "UnknownOperationException"}]
    assert not refused, refused


def test_a_read_only_credential_is_refused_exactly_the_other_operations(endpoint):
    reads = re.compile(r"^(Get|Describe|List)")
    for operation, status, name in matrix(endpoint, "read-only"):
        if reads.match(operation):
            assert name not in SIGNATURE_ERRORS | {"AccessDeniedException"}, (operation, status, name)
        else:
            assert (name, status) == ("AccessDeniedException", 400), (operation, status, name)


# Values for the members the AWS CLI requires before it sends anything (what they name need
# not exist: authentication comes first).
CLI_MEMBERS = {
    "--stream-name": "matrix-none", "--shard-id": "shardId-000000000000",
    "--shard-iterator-type": "TRIM_HORIZON", "--partition-key": "k", "--data": "aGk=",
    "--records": "Data=aGk=,PartitionKey=k", "--consumer-name": "c",
    "--consumer-arn": "arn:aws:kinesis:us-east-1:000000000000:stream/matrix-none/consumer/c:1",
    "--stream-arn": "arn:aws:kinesis:us-east-1:000000000000:stream/matrix-none",
    "--resource-arn": "arn:aws:kinesis:us-east-1:000000000000:stream/matrix-none",
    "--policy": "{}", "--tags": "k=v", "--tag-keys": "k", "--retention-period-hours": "48",
    "--encryption-type": "KMS", "--key-id": "alias/aws/kinesis", "--shard-level-metrics": "ALL",
    "--target-shard-count": "2", "--scaling-type": "UNIFORM_SCALING",
    "--shard-to-merge": "shardId-000000000000", "--adjacent-shard-to-merge": "shardId-000000000001",
    "--shard-to-split": "shardId-000000000000", "--new-starting-hash-key": "1",
    "--stream-mode-details": "StreamMode=ON_DEMAND", "--max-record-size-in-ki-b": "1024",
    "--shard-iterator": "x", "--starting-position": "Type=LATEST",
    "--minimum-throughput-billing-commitment": "Status=DISABLED", "--warm-throughput-mi-bps": "1",
}


def cli(endpoint, command, flags, secret):
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="AKIDADMIN",
               AWS_SECRET_ACCESS_KEY=secret, AWS_MAX_ATTEMPTS="1")
    args = []
    for _ in range(3):
        run = subprocess.run(["aws", "--endpoint-url", endpoint, "kinesis", command, *flags, *args],
                             env=env, capture_output=True, text=True)
        required = re.search(r"the following arguments are required: (.*)", run.stderr)
        if not required:
            return run
        names = [name.strip() for name in required.group(1).split(",")]
        unknown = [name for name in names if name not in CLI_MEMBERS]
        assert not unknown, (command, unknown)
        args += [a for name in names for a in (name, CLI_MEMBERS[name])]
    return run


def test_the_aws_cli_unsigned_and_wrongly_signed_is_refused_for_every_operation(endpoint):
    if shutil.which("aws") is None:
        raise AssertionError("the AWS CLI is not installed (scripts/setup installs it)")
    # SubscribeToShard is an event stream the AWS CLI does not offer.
    commands = [re.sub(r"(?<!^)([A-Z])", r"-\1", op).lower() for op in OPERATIONS if op != "SubscribeToShard"]
    for command in commands:
        unsigned = cli(endpoint, command, ["--no-sign-request"], "secret")
        assert unsigned.returncode != 0 and "MissingAuthenticationToken" in unsigned.stderr, \
            (command, unsigned.stderr[-300:])
        wrong = cli(endpoint, command, [], "not-the-secret")
        assert wrong.returncode != 0 and "InvalidSignatureException" in wrong.stderr, \
            (command, wrong.stderr[-300:])


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
