"""The AWS CLI against `sluice serve`, as a user types it: every command parses our replies
with the CLI's own code. Usage: python3 aws_cli_suite.py http://127.0.0.1:PORT, or a
cluster's nodes joined by commas (each command then goes to the next node)."""

import base64
import json
import os
import subprocess
import sys
import time

import harness
from harness import unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")


def aws(endpoint, *args, ok=True):
    done = subprocess.run(["aws", "kinesis", *args, "--endpoint-url", harness.next_node(endpoint), "--output", "json"], capture_output=True, text=True, env=ENV, timeout=60)
    if ok:
        assert done.returncode == 0, (args, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else {}
    assert done.returncode != 0, (args, done.stdout)
    return done.stderr


def settled(e, name):
    """Waits for the stream to be ACTIVE (made, or again after a reshard), as Kinesis asks of
    a client (`aws kinesis wait stream-exists` polls every 10 seconds: too slow for a test)."""
    for _ in range(60):
        if aws(e, "describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} is still not ACTIVE")


def test_stream_lifecycle_puts_reads_and_resharding(endpoint):
    e = endpoint
    name = unique("cli")
    aws(e, "create-stream", "--stream-name", name, "--shard-count", "2")
    aws(e, "wait", "stream-exists", "--stream-name", name)
    summary = aws(e, "describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["OpenShardCount"] == 2
    put = aws(e, "put-record", "--stream-name", name, "--partition-key", "user-1", "--data", "hello from the cli", "--explicit-hash-key", "7")
    assert put["ShardId"] == "shardId-000000000000"
    batch = aws(e, "put-records", "--stream-name", name, "--records", json.dumps([{"PartitionKey": "a", "Data": "b25l", "ExplicitHashKey": "8"}]))
    assert batch["FailedRecordCount"] == 0
    it = aws(e, "get-shard-iterator", "--stream-name", name, "--shard-id", "shardId-000000000000", "--shard-iterator-type", "AT_SEQUENCE_NUMBER", "--starting-sequence-number", put["SequenceNumber"])["ShardIterator"]
    records = aws(e, "get-records", "--shard-iterator", it)["Records"]
    assert base64.b64decode(records[0]["Data"]) == b"hello from the cli"
    assert records[0]["SequenceNumber"] == put["SequenceNumber"] and len(records) == 2
    shards = aws(e, "list-shards", "--stream-name", name)["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000000", "shardId-000000000001"]
    aws(e, "split-shard", "--stream-name", name, "--shard-to-split", "shardId-000000000000", "--new-starting-hash-key", str(2**126))
    settled(e, name)
    aws(e, "merge-shards", "--stream-name", name, "--shard-to-merge", "shardId-000000000002", "--adjacent-shard-to-merge", "shardId-000000000003")
    settled(e, name)
    open_shards = aws(e, "list-shards", "--stream-name", name, "--shard-filter", "Type=AT_LATEST")["Shards"]
    assert sorted(s["ShardId"] for s in open_shards) == ["shardId-000000000001", "shardId-000000000004"]
    aws(e, "update-shard-count", "--stream-name", name, "--target-shard-count", "4", "--scaling-type", "UNIFORM_SCALING")
    settled(e, name)
    aws(e, "increase-stream-retention-period", "--stream-name", name, "--retention-period-hours", "36")
    aws(e, "add-tags-to-stream", "--stream-name", name, "--tags", "env=test")
    assert aws(e, "list-tags-for-stream", "--stream-name", name)["Tags"] == [{"Key": "env", "Value": "test"}]
    arn = summary["StreamARN"]
    consumer = aws(e, "register-stream-consumer", "--stream-arn", arn, "--consumer-name", "cli-app")["Consumer"]
    assert aws(e, "list-stream-consumers", "--stream-arn", arn)["Consumers"][0]["ConsumerARN"] == consumer["ConsumerARN"]
    aws(e, "deregister-stream-consumer", "--consumer-arn", consumer["ConsumerARN"])
    assert aws(e, "describe-limits")["ShardLimit"] >= 4
    aws(e, "delete-stream", "--stream-name", name)
    for _ in range(60):
        if name not in aws(e, "list-streams")["StreamNames"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{name} is still listed")


def test_the_other_operations_through_the_cli(endpoint):
    e = endpoint
    name = unique("cli-ops")
    aws(e, "create-stream", "--stream-name", name, "--shard-count", "1")
    settled(e, name)
    arn = aws(e, "describe-stream", "--stream-name", name)["StreamDescription"]["StreamARN"]
    aws(e, "increase-stream-retention-period", "--stream-name", name, "--retention-period-hours", "48")
    aws(e, "decrease-stream-retention-period", "--stream-name", name, "--retention-period-hours", "24")
    aws(e, "update-max-record-size", "--stream-arn", arn, "--max-record-size-in-ki-b", "2048")
    aws(e, "add-tags-to-stream", "--stream-name", name, "--tags", "a=1,b=2")
    aws(e, "remove-tags-from-stream", "--stream-name", name, "--tag-keys", "a")
    aws(e, "tag-resource", "--resource-arn", arn, "--tags", "c=3")
    aws(e, "untag-resource", "--resource-arn", arn, "--tag-keys", "b")
    assert aws(e, "list-tags-for-resource", "--resource-arn", arn)["Tags"] == [{"Key": "c", "Value": "3"}]
    aws(e, "start-stream-encryption", "--stream-name", name, "--encryption-type", "KMS", "--key-id", "alias/aws/kinesis")
    aws(e, "stop-stream-encryption", "--stream-name", name, "--encryption-type", "KMS", "--key-id", "alias/aws/kinesis")
    on = aws(e, "enable-enhanced-monitoring", "--stream-name", name, "--shard-level-metrics", "ALL")
    assert len(on["DesiredShardLevelMetrics"]) == 7
    aws(e, "disable-enhanced-monitoring", "--stream-name", name, "--shard-level-metrics", "ALL")
    aws(e, "put-resource-policy", "--resource-arn", arn, "--policy", '{"Version":"2012-10-17","Statement":[]}')
    assert aws(e, "get-resource-policy", "--resource-arn", arn)["Policy"] == '{"Version":"2012-10-17","Statement":[]}'
    aws(e, "delete-resource-policy", "--resource-arn", arn)
    consumer = aws(e, "register-stream-consumer", "--stream-arn", arn, "--consumer-name", "c")["Consumer"]["ConsumerARN"]
    assert aws(e, "describe-stream-consumer", "--consumer-arn", consumer)["ConsumerDescription"]["ConsumerName"] == "c"
    aws(e, "update-account-settings", "--minimum-throughput-billing-commitment", "Status=DISABLED")
    assert aws(e, "describe-account-settings")["MinimumThroughputBillingCommitment"]["Status"] == "DISABLED"
    aws(e, "update-stream-mode", "--stream-arn", arn, "--stream-mode-details", "StreamMode=ON_DEMAND")
    warm = aws(e, "update-stream-warm-throughput", "--stream-arn", arn, "--warm-throughput-mi-bps", "20")
    assert warm["WarmThroughput"]["TargetMiBps"] == 20
    aws(e, "delete-stream", "--stream-name", name, "--enforce-consumer-deletion")


def test_errors_reach_the_user_with_kinesis_names(endpoint):
    e = endpoint
    stderr = aws(e, "describe-stream", "--stream-name", "no-such-stream", ok=False)
    assert "ResourceNotFoundException" in stderr and "Stream no-such-stream under account 000000000000 not found." in stderr, stderr
    name = unique("cli-err")
    aws(e, "create-stream", "--stream-name", name, "--shard-count", "1")
    stderr = aws(e, "create-stream", "--stream-name", name, "--shard-count", "1", ok=False)
    assert "ResourceInUseException" in stderr, stderr
    stderr = aws(e, "get-records", "--shard-iterator", "not-a-real-iterator-token", ok=False)
    assert "InvalidArgumentException" in stderr, stderr


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
