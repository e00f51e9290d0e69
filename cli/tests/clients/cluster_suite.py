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
from botocore.exceptions import ClientError

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

    # Resharding through any node: split on c, ACTIVE again with the parent closed at its
    # last record and two children; the parent read to its end names them; a put after it
    # lands in a child.
    c.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
    # The waiter alone may pass on a node whose map still shows the stream from before.
    for node in (a, b):
        until(lambda: len(node.list_shards(StreamName=name)["Shards"]) == 4, "the split on every node")
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


def subscribe(node, consumer, shard, position, want, meanwhile=None):
    """A subscription through `node` until `want` records came or the shard ended: the records
    (number, data), the last ContinuationSequenceNumber, and the children at the end.
    `meanwhile` runs before it is closed."""
    out = node.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition=position)
    records, continuation, children, started = [], None, None, time.time()
    for event in out["EventStream"]:
        batch = event["SubscribeToShardEvent"]
        records += [(int(r["SequenceNumber"]), r["Data"]) for r in batch["Records"]]
        continuation = batch.get("ContinuationSequenceNumber")
        if continuation is None:
            children = [c["ShardId"] for c in batch["ChildShards"]]
            break
        if len(records) >= want or time.time() - started > 20:
            break
    if meanwhile:
        meanwhile()
    out["EventStream"].close()
    return records, continuation, children


def quiet(since):
    """Waits until a new subscription to the same consumer and shard is allowed again: 5
    seconds after the last one started at `since`, timed by etcd's lease (which etcd ends up
    to half a second late), and a second more; returns now."""
    time.sleep(max(0.0, since + 6.5 - time.time()))
    return time.time()


def until(check, what):
    """Polls `check` (a node's map follows the store) until it holds, for up to 10 s."""
    for _ in range(100):
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def described(node, consumer):
    try:
        return node.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException", error.response
        return None


def test_consumers_and_subscriptions_through_any_node(endpoints):
    a, b, c = clients(endpoints)
    name = unique("fanout")
    a.create_stream(StreamName=name, ShardCount=1)
    b.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    arn = b.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    registered = a.register_stream_consumer(StreamARN=arn, ConsumerName="app")["Consumer"]
    consumer = registered["ConsumerARN"]
    assert registered["ConsumerStatus"] == "ACTIVE" and consumer.startswith(f"{arn}/consumer/app:"), registered
    # The controller checks the name against the stream's entry, whichever node is asked.
    expect_error("ResourceInUseException", c.register_stream_consumer, StreamARN=arn, ConsumerName="app")
    for node in (b, c):
        until(lambda: described(node, consumer) is not None, "the consumer on every node")
        assert described(node, consumer)["StreamARN"] == arn
    assert c.describe_stream_consumer(StreamARN=arn, ConsumerName="app")["ConsumerDescription"]["ConsumerARN"] == consumer
    assert [x["ConsumerName"] for x in b.list_stream_consumers(StreamARN=arn)["Consumers"]] == ["app"]
    assert c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["ConsumerCount"] == 1
    expect_error("ResourceInUseException", c.delete_stream, StreamName=name)
    a.tag_resource(ResourceARN=consumer, Tags={"owner": "me"})
    until(lambda: b.list_tags_for_resource(ResourceARN=consumer)["Tags"] == [{"Key": "owner", "Value": "me"}], "the consumer's tag on b")
    assert c.list_tags_for_stream(StreamName=name)["Tags"] == [], "the stream's tags are its own"

    shard = "shardId-000000000000"
    sent = [(int(node.put_record(StreamName=name, PartitionKey="k", Data=f"e{i}".encode())["SequenceNumber"]), f"e{i}".encode())
            for i, node in enumerate((a, b, c, a, b))]
    # One subscription per consumer and shard across the cluster: another through another
    # node within 5 seconds is refused, on that node as on this one (Kinesis' rule).
    again = lambda: [expect_error("ResourceInUseException", n.subscribe_to_shard, ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "LATEST"}) for n in (a, c)]
    started = time.time()
    got, continuation, _ = subscribe(c, consumer, shard, {"Type": "TRIM_HORIZON"}, 5, meanwhile=again)
    assert got == sent, got
    # Resumed through another node after the continuation: what was put meanwhile, once.
    more = [(int(b.put_record(StreamName=name, PartitionKey="k", Data=f"m{i}".encode())["SequenceNumber"]), f"m{i}".encode()) for i in range(5)]
    started = quiet(started)
    got, continuation, _ = subscribe(a, consumer, shard, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation}, 5)
    assert got == more, got
    # A later subscription through another node takes over: the one open on b ends.
    started = quiet(started)
    out = b.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "LATEST"})
    replaced = iter(out["EventStream"])
    next(replaced)
    started = quiet(time.time())
    taker = c.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "LATEST"})
    try:
        for _ in replaced:
            pass
        raise AssertionError("the replaced subscription went on")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceInUseException", error.response
    print(f"  the subscription replaced through another node ended {time.time() - started:.2f} s after the takeover")
    assert time.time() - started < 4, "ended by its claim's check (every 2 s), not by its own time"
    taker["EventStream"].close()
    # A waiting subscription gets a record put through another node.
    started = quiet(started)
    out = b.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation})
    late, delays = None, []
    for event in out["EventStream"]:
        records = event["SubscribeToShardEvent"]["Records"]
        if records:
            delays.append(time.time() - acknowledged)
            assert [(r["SequenceNumber"], r["Data"]) for r in records] == [(late["SequenceNumber"], b"late")], records
            continuation = event["SubscribeToShardEvent"]["ContinuationSequenceNumber"]
            late = None
            if len(delays) == 3:
                break
        if late is None:
            time.sleep(0.3)
            late = c.put_record(StreamName=name, PartitionKey="k", Data=b"late")
            acknowledged = time.time()
    out["EventStream"].close()
    # Pushed as each commit reaches b's replica, not at the feed's 2-second recheck (which
    # would let all three through within 0.75 s one time in 20).
    print(f"  records put through c reached b's subscriber {', '.join(f'{d:.3f}' for d in delays)} s after their acknowledgements")
    assert max(delays) < 0.75, delays

    # Split: a subscription to the parent ends with its children.
    a.split_shard(StreamName=name, ShardToSplit=shard, NewStartingHashKey=str(2**127))
    until(lambda: len(c.list_shards(StreamName=name)["Shards"]) == 3, "c's map shows the split")
    quiet(started)
    got, ended, children = subscribe(c, consumer, shard, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation}, 1)
    assert (got, ended, children) == ([], None, ["shardId-000000000001", "shardId-000000000002"]), (got, ended, children)

    # Deregistered through one node: a subscription open on another ends, and none starts.
    out = a.subscribe_to_shard(ConsumerARN=consumer, ShardId="shardId-000000000001", StartingPosition={"Type": "LATEST"})
    events = iter(out["EventStream"])
    next(events)
    b.deregister_stream_consumer(ConsumerARN=consumer)
    try:
        for _ in events:
            pass
        raise AssertionError("the subscription went on after its consumer was deregistered")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException", error.response
    for node in (a, b, c):
        until(lambda: described(node, consumer) is None, "the consumer gone from every node")
    expect_error("ResourceNotFoundException", c.subscribe_to_shard, ConsumerARN=consumer, ShardId="shardId-000000000002", StartingPosition={"Type": "LATEST"})
    a.register_stream_consumer(StreamARN=arn, ConsumerName="second")
    # Checked by the controller against the entry, whatever the asking node's map shows.
    expect_error("ResourceInUseException", b.delete_stream, StreamName=name)
    b.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    a.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


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
