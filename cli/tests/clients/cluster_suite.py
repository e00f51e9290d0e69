"""boto3 and the AWS CLI against a cluster of `sluice serve --cluster` nodes, each call sent
to whichever node the test picks: a stream made through one node is waited for, written and
read through the others. Usage: python3 cluster_suite.py http://A,http://B,http://C"""

import base64
import json
import os
import subprocess
import sys
import time

import boto3
from botocore.config import Config

import harness
from harness import expect_error, unique

ENV = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")


def clients(endpoints):
    config = Config(retries={"max_attempts": 8, "mode": "standard"})
    return [
        boto3.client("kinesis", endpoint_url=e, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", config=config)
        for e in endpoints.split(",")
    ]


def aws(endpoint, *args):
    done = subprocess.run(["aws", "kinesis", *args, "--endpoint-url", endpoint, "--output", "json"], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else {}


def read_shard(made_on, read_on, name, shard):
    """Every record of a shard from TRIM_HORIZON, the iterator made on one node and the pages
    read on another."""
    it = made_on.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []
    while True:
        page = read_on.get_records(ShardIterator=it, Limit=4)
        if not page["Records"]:
            return records
        records += [(int(r["SequenceNumber"]), r["Data"], r["PartitionKey"]) for r in page["Records"]]
        it = page["NextShardIterator"]


def test_boto3_writes_and_reads_through_different_nodes(endpoints):
    a, b, c = clients(endpoints)
    name = unique("cluster")
    a.create_stream(StreamName=name, ShardCount=2)
    c.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    summary = b.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["OpenShardCount"] == 2, summary
    acknowledged = {}
    for n, node in enumerate((a, b, c)):
        batch = [{"Data": f"{n}-{i}".encode(), "PartitionKey": f"key-{i}"} for i in range(10)]
        reply = node.put_records(StreamName=name, Records=batch)
        assert reply["FailedRecordCount"] == 0, reply
        for record, result in zip(batch, reply["Records"]):
            acknowledged.setdefault(result["ShardId"], []).append((int(result["SequenceNumber"]), record["Data"], record["PartitionKey"]))
        one = node.put_record(StreamName=name, Data=b"single", PartitionKey="key-0")
        acknowledged.setdefault(one["ShardId"], []).append((int(one["SequenceNumber"]), b"single", "key-0"))
    shards = [s["ShardId"] for s in c.list_shards(StreamName=name)["Shards"]]
    assert shards == ["shardId-000000000000", "shardId-000000000001"], shards
    assert sum(len(v) for v in acknowledged.values()) == 33
    for shard in shards:
        expected = sorted(acknowledged.get(shard, []))
        for made_on, read_on in ((a, b), (b, c), (c, a)):
            assert read_shard(made_on, read_on, name, shard) == expected, shard

    # A LATEST iterator on one node sees a put acknowledged by another right after.
    latest = c.get_shard_iterator(StreamName=name, ShardId="shardId-000000000001", ShardIteratorType="LATEST")["ShardIterator"]
    put = a.put_record(StreamName=name, Data=b"late", PartitionKey="x", ExplicitHashKey=str(2**127 + 5))
    assert put["ShardId"] == "shardId-000000000001"
    seen = c.get_records(ShardIterator=latest)["Records"]
    assert [(r["SequenceNumber"], r["Data"]) for r in seen] == [(put["SequenceNumber"], b"late")], seen

    # AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER with a number another node handed out.
    at = b.get_shard_iterator(StreamName=name, ShardId="shardId-000000000001", ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
    assert [r["Data"] for r in a.get_records(ShardIterator=at)["Records"]] == [b"late"]
    after = b.get_shard_iterator(StreamName=name, ShardId="shardId-000000000001", ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
    assert a.get_records(ShardIterator=after)["Records"] == []

    expect_error("ResourceInUseException", b.create_stream, StreamName=name, ShardCount=1)
    expect_error("ResourceNotFoundException", b.put_record, StreamName=unique("none"), Data=b"x", PartitionKey="k")
    expect_error("UnsupportedOperationException", c.register_stream_consumer, StreamARN=a.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"], ConsumerName="c")

    # Resharding through any node: split on c, ACTIVE again with the parent closed at its
    # last record and two children; the parent read to its end names them; a put after it
    # lands in a child.
    c.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
    a.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    shards = {s["ShardId"]: s for s in b.list_shards(StreamName=name)["Shards"]}
    assert "EndingSequenceNumber" in shards["shardId-000000000000"]["SequenceNumberRange"], shards
    assert [shards[f"shardId-00000000000{i}"]["ParentShardId"] for i in (2, 3)] == ["shardId-000000000000"] * 2
    iterator = b.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while iterator:
        reply = a.get_records(ShardIterator=iterator)
        iterator = reply.get("NextShardIterator")
        assert iterator or [s["ShardId"] for s in reply["ChildShards"]] == ["shardId-000000000002", "shardId-000000000003"], reply
    moved = a.put_record(StreamName=name, Data=b"after the split", PartitionKey="x", ExplicitHashKey="5")
    assert moved["ShardId"] == "shardId-000000000002", moved
    expect_error("InvalidArgumentException", c.split_shard, StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey="7")

    # Settings through one node, seen through the others once their maps have them.
    a.add_tags_to_stream(StreamName=name, Tags={"team": "ingest", "tier": "gold"})
    b.remove_tags_from_stream(StreamName=name, TagKeys=["tier"])
    c.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    expect_error("InvalidArgumentException", a.decrease_stream_retention_period, StreamName=name, RetentionPeriodHours=96)
    for node in (a, b, c):
        for _ in range(50):
            summary = node.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            if summary["RetentionPeriodHours"] == 72:
                break
            time.sleep(0.1)
        assert summary["RetentionPeriodHours"] == 72, summary
        assert node.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "team", "Value": "ingest"}]
    b.delete_stream(StreamName=name)
    a.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    for node in (a, b, c):
        assert name not in node.list_streams()["StreamNames"]


def test_the_aws_cli_through_different_nodes(endpoints):
    a, b, c = endpoints.split(",")
    name = unique("cluster-cli")
    aws(b, "create-stream", "--stream-name", name, "--shard-count", "1")
    aws(a, "wait", "stream-exists", "--stream-name", name)
    put = aws(c, "put-record", "--stream-name", name, "--partition-key", "k", "--data", "from the cli")
    it = aws(a, "get-shard-iterator", "--stream-name", name, "--shard-id", put["ShardId"], "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    records = aws(b, "get-records", "--shard-iterator", it)["Records"]
    assert [(r["SequenceNumber"], base64.b64decode(r["Data"])) for r in records] == [(put["SequenceNumber"], b"from the cli")], records
    listed = aws(c, "list-streams")
    assert name in listed["StreamNames"], listed
    aws(c, "add-tags-to-stream", "--stream-name", name, "--tags", "owner=cli")
    aws(b, "increase-stream-retention-period", "--stream-name", name, "--retention-period-hours", "48")
    aws(a, "decrease-stream-retention-period", "--stream-name", name, "--retention-period-hours", "24")
    assert aws(c, "list-tags-for-stream", "--stream-name", name)["Tags"] == [{"Key": "owner", "Value": "cli"}]
    aws(a, "delete-stream", "--stream-name", name)
    # DELETING until no node runs its groups, then gone.
    left = [s["StreamStatus"] for s in aws(c, "list-streams")["StreamSummaries"] if s["StreamName"] == name]
    assert left in ([], ["DELETING"]), left


if __name__ == "__main__":
    harness.run(sys.modules[__name__], sys.argv[1])
