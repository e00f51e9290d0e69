"""IAM-style authorization (`sluice serve --credential ... --policy KEY=FILE`): identity
policies allow and deny, conditions see the request, resource policies grant another account
access to a stream (routed by StreamARN) and their Deny binds the owner too, and refusals are
AccessDeniedException in AWS' words. The credentials and policies are the ones clients.rs
starts the server with. Usage: python3 policy_suite.py URL"""

import base64
import json
import sys

import boto3
from botocore.config import Config

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
OWNER = "000000000000"
PARTNER = "222222222222"


def client(endpoint, key):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1}))


def stream_with_a_record(endpoint):
    admin = client(endpoint, "AKIDADMIN")
    name = unique("p")
    admin.create_stream(StreamName=name, ShardCount=1)
    admin.put_record(StreamName=name, PartitionKey="k", Data=b"secret sauce")
    arn = admin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    return admin, name, arn


def read_all(k, arn):
    it = k.get_shard_iterator(StreamARN=arn, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [r["Data"] for r in k.get_records(ShardIterator=it, StreamARN=arn)["Records"]]


def test_an_identity_policy_allows_what_it_says_and_nothing_more(endpoint):
    _, name, arn = stream_with_a_record(endpoint)
    reader = client(endpoint, "AKIDREADER")
    assert read_all(reader, arn) == [b"secret sauce"]
    assert name in reader.list_streams()["StreamNames"]
    error = expect_error("AccessDeniedException", reader.put_record, StreamName=name, PartitionKey="k", Data=b"x")
    assert error.response["Error"]["Message"] == (
        f"User: arn:aws:iam::{OWNER}:user/AKIDREADER is not authorized to perform: kinesis:PutRecord on resource: "
        f"{arn} because no identity-based policy allows the kinesis:PutRecord action"), error.response
    expect_error("AccessDeniedException", reader.delete_stream, StreamName=name)


def test_an_explicit_deny_wins_over_an_allow(endpoint):
    careful = client(endpoint, "AKIDNODELETE")
    name = unique("d")
    careful.create_stream(StreamName=name, ShardCount=1)
    careful.put_record(StreamName=name, PartitionKey="k", Data=b"kept")
    error = expect_error("AccessDeniedException", careful.delete_stream, StreamName=name)
    assert "with an explicit deny in an identity-based policy" in error.response["Error"]["Message"], error.response
    assert careful.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


def test_conditions_see_the_client_address(endpoint):
    # Its policy allows everything, but only from 10.0.0.0/8; the suite calls from 127.0.0.1.
    expect_error("AccessDeniedException", client(endpoint, "AKIDLAN").list_streams)


def test_another_account_reads_a_stream_once_its_resource_policy_says_so(endpoint):
    admin, name, arn = stream_with_a_record(endpoint)
    partner = client(endpoint, "AKIDPARTNER")
    error = expect_error("AccessDeniedException", read_all, partner, arn)
    assert "because no resource-based policy allows" in error.response["Error"]["Message"], error.response
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{PARTNER}:root"},
        "Action": ["kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:DescribeStreamSummary"], "Resource": arn}]}
    admin.put_resource_policy(ResourceARN=arn, Policy=json.dumps(policy))
    assert read_all(partner, arn) == [b"secret sauce"], "granted by the stream's policy"
    summary = partner.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    assert summary["StreamARN"] == arn
    expect_error("AccessDeniedException", partner.put_record, StreamARN=arn, PartitionKey="k", Data=b"x")
    other = unique("o")
    admin.create_stream(StreamName=other, ShardCount=1)
    other_arn = admin.describe_stream_summary(StreamName=other)["StreamDescriptionSummary"]["StreamARN"]
    expect_error("AccessDeniedException", partner.describe_stream_summary, StreamARN=other_arn)


def test_a_resource_policy_deny_binds_the_owner_too(endpoint):
    admin, name, arn = stream_with_a_record(endpoint)
    policy = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "kinesis:PutRecord*", "Resource": arn}]}
    admin.put_resource_policy(ResourceARN=arn, Policy=json.dumps(policy))
    error = expect_error("AccessDeniedException", admin.put_record, StreamName=name, PartitionKey="k", Data=b"x")
    assert "explicit deny in a resource-based policy" in error.response["Error"]["Message"], error.response
    admin.delete_resource_policy(ResourceARN=arn)
    admin.put_record(StreamName=name, PartitionKey="k", Data=b"x")


def test_a_policy_the_server_cannot_apply_is_refused(endpoint):
    admin, _, arn = stream_with_a_record(endpoint)
    bad = {"Statement": {"Effect": "Maybe", "Action": "kinesis:*"}}
    error = expect_error("InvalidArgumentException", admin.put_resource_policy, ResourceARN=arn, Policy=json.dumps(bad))
    assert "Allow or Deny" in error.response["Error"]["Message"], error.response
    unknown = {"Statement": {"Effect": "Allow", "Action": "*", "Condition": {"StringSoundsLike": {"aws:username": "x"}}}}
    expect_error("InvalidArgumentException", admin.put_resource_policy, ResourceARN=arn, Policy=json.dumps(unknown))


def signed_call(endpoint, key, target, body, path="/"):
    """A request botocore would not send (members the operation ignores), signed by `key`."""
    import urllib.request
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = f"Kinesis_20131202.{target}"
    request = AWSRequest(method="POST", url=endpoint + path, data=data, headers=headers)
    botocore.auth.SigV4Auth(Credentials(key, "secret"), "kinesis", "us-east-1").add_auth(request)
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint + path, data=data, method="POST",
                                                           headers=dict(request.headers.items()))) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_members_the_operation_ignores_cannot_steer_the_decision(endpoint):
    admin, open_name, open_arn = stream_with_a_record(endpoint)
    fenced = "fenced-" + unique("f")
    admin.create_stream(StreamName=fenced, ShardCount=1)
    record = {"StreamName": fenced, "PartitionKey": "k", "Data": base64.b64encode(b"x").decode()}
    # Decided on the stream the operation writes, whatever ResourceARN or StreamARN+ConsumerName say.
    for extra in ({"ResourceARN": open_arn}, {"ConsumerARN": open_arn + "/consumer/c:1"}):
        status, reply = signed_call(endpoint, "AKIDFENCED", "PutRecord", dict(record, **extra))
        assert (status, reply.get("__type")) == (400, "AccessDeniedException"), (extra, reply)
    # A member of the wrong type the operation ignores: refused, not decided as "*".
    status, reply = signed_call(endpoint, "AKIDFENCED", "PutRecord", dict(record, ShardIterator=1))
    assert reply.get("__type") == "SerializationException", reply
    assert admin.get_records(ShardIterator=admin.get_shard_iterator(
        StreamName=fenced, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"] == []
    # Another account granted one stream reaches no other stream of the owner through it.
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": PARTNER}, "Action": "kinesis:*", "Resource": open_arn}]}
    admin.put_resource_policy(ResourceARN=open_arn, Policy=json.dumps(policy))
    status, reply = signed_call(endpoint, "AKIDPARTNER", "PutRecord", dict(record, ResourceARN=open_arn))
    assert status == 400 and reply.get("__type") in ("ResourceNotFoundException", "AccessDeniedException"), reply


def test_a_delivery_stream_reads_its_source_only_for_who_may_read_it(endpoint):
    admin = client(endpoint, "AKIDADMIN")
    firehose = lambda key: boto3.client("firehose", endpoint_url=endpoint, region_name="us-east-1",
                                        aws_access_key_id=key, aws_secret_access_key="secret",
                                        config=Config(retries={"max_attempts": 1}))
    arns = {}
    for name in (unique("fenced-src"), unique("open-src")):
        admin.create_stream(StreamName=name, ShardCount=1)
        arns[name.split("-")[0]] = admin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    def create(key, source_arn):
        return firehose(key).create_delivery_stream(
            DeliveryStreamName=unique("from"), DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={"KinesisStreamARN": source_arn, "RoleARN": f"arn:aws:iam::{OWNER}:role/r"},
            ExtendedS3DestinationConfiguration={"BucketARN": "arn:aws:s3:::policy-lake", "RoleARN": f"arn:aws:iam::{OWNER}:role/r"})
    error = expect_error("AccessDeniedException", create, "AKIDFENCED", arns["fenced"])
    assert "kinesis:GetRecords" in error.response["Error"]["Message"], error.response
    create("AKIDFENCED", arns["open"])
    # The reader may read streams, not make delivery streams.
    expect_error("AccessDeniedException", firehose("AKIDREADER").list_delivery_streams)


def test_only_the_server_s_own_account_may_reset_it(endpoint):
    for key in ("AKIDPARTNER", "AKIDREADER"):
        status, reply = signed_call(endpoint, key, None, {}, path="/_sluice/reset")
        assert (status, reply.get("__type")) == (400, "AccessDeniedException"), (key, reply)
        assert "sluice:ResetServer" in reply["message"], reply


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
