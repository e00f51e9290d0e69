"""SigV4 verification (`sluice serve --credential AKIDEXAMPLE:secret`): boto3 signs and
works; a wrong secret, an unknown key, a missing or malformed signature, a request signed
ten minutes ago, the wrong region and a tampered body are refused with Kinesis' errors; a
presigned request (signature in the query) works. Usage: python3 auth_suite.py URL"""

import datetime
import json
import sys
import urllib.parse
import urllib.request
from unittest import mock

import boto3
import botocore.auth
import botocore.exceptions
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None


def client(endpoint, key="AKIDEXAMPLE", secret="secret", region="us-east-1", token=None):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"max_attempts": 1}))


def raw(endpoint, target, body, headers, url=None):
    request = urllib.request.Request(url or endpoint + "/", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def signed(endpoint, body, target, when=None, region="us-east-1", url=None):
    request = AWSRequest(method="POST", url=url or endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"Kinesis_20131202.{target}"})
    signer = botocore.auth.SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "kinesis", region)
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return dict(request.headers.items())


def test_boto3_signs_and_is_accepted(endpoint):
    k = client(endpoint)
    name = unique("auth")
    k.create_stream(StreamName=name, ShardCount=1)
    put = k.put_record(StreamName=name, PartitionKey="k", Data=b"signed")
    it = k.get_shard_iterator(StreamName=name, ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in k.get_records(ShardIterator=it)["Records"]] == [b"signed"]


def test_bad_credentials_are_refused(endpoint):
    expect_error("InvalidSignatureException", client(endpoint, secret="wrong").list_streams)
    expect_error("UnrecognizedClientException", client(endpoint, key="AKIDUNKNOWN").list_streams)
    body = b"{}"
    headers = signed(endpoint, body, "ListStreams", region="Not_A_Region")
    status, reply = raw(endpoint, "ListStreams", body, headers)
    assert (status, reply["__type"]) == (400, "InvalidSignatureException") and "region" in reply["message"], reply


def test_credentials_and_regions_are_tenants(endpoint):
    home = client(endpoint)
    other = client(endpoint, key="AKIDOTHER", secret="secret2", region="eu-west-1")
    home_eu = client(endpoint, region="eu-west-1")
    name = unique("tenant")
    for k in (home, other, home_eu):
        k.create_stream(StreamName=name, ShardCount=1)
    arn = other.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    assert arn == f"arn:aws:kinesis:eu-west-1:111111111111:stream/{name}", arn
    assert home_eu.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"].startswith("arn:aws:kinesis:eu-west-1:000000000000:")
    other.put_record(StreamName=name, PartitionKey="k", Data=b"theirs")
    it = home.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert home.get_records(ShardIterator=it)["Records"] == [], "a tenant sees only its own records"
    expect_error("ResourceNotFoundException", home.describe_stream_summary, StreamARN=arn)
    only = unique("only")
    other.create_stream(StreamName=only, ShardCount=1)
    assert only in other.list_streams()["StreamNames"] and only not in home.list_streams()["StreamNames"]
    error = expect_error("ResourceNotFoundException", other.describe_stream, StreamName="missing-here")
    assert "under account 111111111111" in error.response["Error"]["Message"], error.response


def test_missing_malformed_stale_and_tampered_signatures(endpoint):
    body = b"{}"
    base = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.ListStreams"}
    assert raw(endpoint, "ListStreams", body, base) == (403, {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})
    status, reply = raw(endpoint, "ListStreams", body, dict(base, Authorization="AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/kinesis/aws4_request", **{"X-Amz-Date": "20261126T000000Z"}))
    assert (status, reply["__type"]) == (403, "IncompleteSignatureException"), reply
    status, reply = raw(endpoint, "ListStreams", body, dict(base, Authorization="Basic dXNlcjpwYXNz"))
    assert (status, reply["__type"]) == (403, "IncompleteSignatureException"), reply
    stale = datetime.datetime.utcnow() - datetime.timedelta(minutes=10)
    status, reply = raw(endpoint, "ListStreams", body, signed(endpoint, body, "ListStreams", when=stale))
    assert (status, reply["__type"]) == (400, "InvalidSignatureException") and "expired" in reply["message"], reply
    headers = signed(endpoint, body, "ListStreams")
    assert raw(endpoint, "ListStreams", body, headers)[0] == 200, "a fresh signature works"
    status, reply = raw(endpoint, "ListStreams", b'{"Limit": 1}', headers)
    assert (status, reply["__type"]) == (400, "InvalidSignatureException"), "the body is covered by the signature"
    import hashlib
    claimed = dict(headers, **{"X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()})
    status, reply = raw(endpoint, "ListStreams", b'{"Limit": 1}', claimed)
    assert (status, reply["__type"]) == (400, "InvalidSignatureException"), "a claimed body hash is checked, not trusted"
    status, reply = raw(endpoint, "NoSuchOperation", body, dict(base, **{"X-Amz-Target": "Kinesis_20131202.NoSuchOperation"}))
    assert reply["__type"] == "MissingAuthenticationTokenException", "authentication comes before routing"


def test_presigned_requests_work_and_cannot_be_altered(endpoint):
    body = b"{}"
    request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.ListStreams"})
    botocore.auth.SigV4QueryAuth(Credentials("AKIDEXAMPLE", "secret"), "kinesis", "us-east-1", expires=60).add_auth(request)
    url = request.url
    assert "X-Amz-Signature=" in url and request.data == "", "botocore moves the body into the query"
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.ListStreams"}
    status, reply = raw(endpoint, "ListStreams", b"", headers, url=url)
    assert status == 200 and "StreamNames" in reply, reply
    tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    status, reply = raw(endpoint, "ListStreams", b"", headers, url=tampered)
    assert (status, reply["__type"]) == (400, "InvalidSignatureException"), reply


def test_a_signature_must_cover_the_operation(endpoint):
    k = client(endpoint)
    name = unique("kept")
    k.create_stream(StreamName=name, ShardCount=1)
    body = json.dumps({"StreamName": name}).encode()
    # Signed without X-Amz-Target (only host and the date), then sent as DeleteStream.
    request = AWSRequest(method="POST", url=endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1"})
    botocore.auth.SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "kinesis", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert "x-amz-target" not in headers["Authorization"].lower()
    headers["X-Amz-Target"] = "Kinesis_20131202.DeleteStream"
    status, reply = raw(endpoint, "DeleteStream", body, headers)
    assert (status, reply["__type"]) == (403, "IncompleteSignatureException"), reply
    assert "X-Amz-Target" in reply["message"], reply
    assert k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


def test_temporary_credentials_need_their_session_token(endpoint):
    good = client(endpoint, key="AKIDTEMP", secret="secret3", token="token-of-the-session")
    assert "StreamNames" in good.list_streams()
    expect_error("UnrecognizedClientException",
                 client(endpoint, key="AKIDTEMP", secret="secret3", token="another-token").list_streams)
    expect_error("UnrecognizedClientException", client(endpoint, key="AKIDTEMP", secret="secret3").list_streams)
    expect_error("UnrecognizedClientException",
                 client(endpoint, token="token-of-the-session").list_streams)


def test_made_up_regions_open_no_tenant_and_one_account_cannot_take_every_tenant(endpoint):
    error = expect_error("InvalidSignatureException", client(endpoint, region="zz-attack-1").list_streams)
    assert "zz-attack-1" in error.response["Error"]["Message"], error.response
    refused = None
    for region in ["us-west-2", "ap-south-1", "ca-central-1", "sa-east-1", "eu-north-1", "me-south-1"]:
        try:
            client(endpoint, key="AKIDOTHER", secret="secret2", region=region).list_streams()
        except botocore.exceptions.ClientError as e:
            refused = e.response["Error"]
            break
    assert refused and refused["Code"] == "LimitExceededException", refused
    assert "111111111111" in refused["Message"], refused
    # Another account still gets a region of its own.
    assert "StreamNames" in client(endpoint, region="us-east-2").list_streams()


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
