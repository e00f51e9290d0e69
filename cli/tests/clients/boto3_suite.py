"""boto3 against `sluice serve`: every operation, with botocore's own parsing, and the
errors clients rely on. Usage: python3 boto3_suite.py http://127.0.0.1:PORT, or a cluster's
nodes joined by commas (each request then goes to the next node)."""

import datetime
import hashlib
import json
import sys
import time

import boto3
from botocore.config import Config

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None


def client(endpoint, validate=True):
    return harness.spread(boto3.client(
        "kinesis",
        endpoint_url=harness.nodes(endpoint)[0],
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(parameter_validation=validate, retries={"max_attempts": 1}),
    ), endpoint)


def create(k, shards=2, **kwargs):
    name = unique("s")
    k.create_stream(StreamName=name, ShardCount=shards, **kwargs)
    k.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    return name


def settled(k, name):
    """Waits for the stream to be ACTIVE again after a reshard, as Kinesis asks of a client
    (a cluster finishes one in a second or two; a single server at once)."""
    for _ in range(300):
        if k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} is still not ACTIVE")


def deleted(k, name, **how):
    """Deletes the stream (by `how`'s StreamARN when given, else by name) and waits until it
    is gone (a cluster shows it DELETING a moment, as Kinesis does)."""
    if "StreamARN" not in how:
        how["StreamName"] = name
    k.delete_stream(**how)
    for _ in range(300):
        try:
            k.describe_stream_summary(StreamName=name)
        except k.exceptions.ResourceNotFoundException:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} is still there")


def read_all(k, name, shard_id, kind="TRIM_HORIZON", **kwargs):
    it = k.get_shard_iterator(StreamName=name, ShardId=shard_id, ShardIteratorType=kind, **kwargs)["ShardIterator"]
    records = []
    while it:
        out = k.get_records(ShardIterator=it)
        records += out["Records"]
        if not out["Records"]:
            return records, out
        it = out.get("NextShardIterator")
    return records, out


def test_create_describe_list_and_delete(endpoint):
    k = client(endpoint)
    name = create(k, 3, Tags={"team": "data"})
    d = k.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamStatus"] == "ACTIVE" and d["StreamName"] == name
    assert d["StreamARN"] == f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
    assert [s["ShardId"] for s in d["Shards"]] == [f"shardId-00000000000{i}" for i in range(3)]
    assert d["Shards"][0]["HashKeyRange"]["StartingHashKey"] == "0"
    assert d["Shards"][2]["HashKeyRange"]["EndingHashKey"] == str(2**128 - 1)
    assert d["RetentionPeriodHours"] == 24 and d["HasMoreShards"] is False
    assert isinstance(d["StreamCreationTimestamp"], datetime.datetime)
    page = k.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert len(page["Shards"]) == 2 and page["HasMoreShards"] is True
    rest = k.describe_stream(StreamName=name, ExclusiveStartShardId="shardId-000000000001")["StreamDescription"]
    assert [s["ShardId"] for s in rest["Shards"]] == ["shardId-000000000002"]
    summary = k.describe_stream_summary(StreamARN=d["StreamARN"])["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 3 and summary["ConsumerCount"] == 0
    assert summary["MaxRecordSizeInKiB"] == 1024
    assert name in k.list_streams()["StreamNames"]
    assert k.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "team", "Value": "data"}]
    expect_error("ResourceInUseException", k.create_stream, StreamName=name, ShardCount=1)
    deleted(k, name)
    expect_error("ResourceNotFoundException", k.describe_stream, StreamName=name)


def test_list_streams_paginates(endpoint):
    k = client(endpoint)
    names = sorted(create(k, 1) for _ in range(3))
    seen, token = [], None
    while True:
        out = k.list_streams(Limit=1, **({"NextToken": token} if token else {}))
        seen += out["StreamNames"]
        assert len(out["StreamSummaries"]) == len(out["StreamNames"])
        if not out["HasMoreStreams"]:
            break
        token = out["NextToken"]
    assert all(n in seen for n in names) and seen == sorted(seen)
    paginated = [n for page in k.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}) for n in page["StreamNames"]]
    assert paginated == seen


def test_put_and_read_back_with_every_iterator_type(endpoint):
    k = client(endpoint)
    name = create(k, 2)
    puts = []
    for i in range(20):
        out = k.put_record(StreamName=name, PartitionKey=f"key-{i}", Data=f"record {i}".encode())
        puts.append((out["ShardId"], out["SequenceNumber"], f"key-{i}", f"record {i}".encode()))
    shard0 = [p for p in puts if p[0] == "shardId-000000000000"]
    assert shard0 and len(shard0) < 20, "MD5 routing spreads 20 keys over both shards"
    for shard_id, _, key, _ in puts:
        digest = int(hashlib.md5(key.encode()).hexdigest(), 16)
        assert (digest < 2**127) == (shard_id == "shardId-000000000000")
    records, last = read_all(k, name, "shardId-000000000000")
    assert [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in records] == [(s, key, d) for _, s, key, d in shard0]
    assert last["MillisBehindLatest"] == 0 and last["NextShardIterator"]
    assert all(r["EncryptionType"] == "NONE" and isinstance(r["ApproximateArrivalTimestamp"], datetime.datetime) for r in records)
    second = shard0[1][1]
    at, _ = read_all(k, name, "shardId-000000000000", "AT_SEQUENCE_NUMBER", StartingSequenceNumber=second)
    assert at[0]["SequenceNumber"] == second and len(at) == len(shard0) - 1
    after, _ = read_all(k, name, "shardId-000000000000", "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=second)
    assert len(after) == len(shard0) - 2
    latest = k.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="LATEST")["ShardIterator"]
    assert k.get_records(ShardIterator=latest)["Records"] == []
    new = next(key for key in (f"late-{i}" for i in range(100)) if int(hashlib.md5(key.encode()).hexdigest(), 16) < 2**127)
    k.put_record(StreamName=name, PartitionKey=new, Data=b"late")
    assert [r["Data"] for r in k.get_records(ShardIterator=latest)["Records"]] == [b"late"]
    stamp = records[0]["ApproximateArrivalTimestamp"] - datetime.timedelta(seconds=1)
    by_time, _ = read_all(k, name, "shardId-000000000000", "AT_TIMESTAMP", Timestamp=stamp)
    assert by_time[0]["SequenceNumber"] == records[0]["SequenceNumber"]
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    assert read_all(k, name, "shardId-000000000000", "AT_TIMESTAMP", Timestamp=future)[0] == []
    limited = k.get_records(ShardIterator=k.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"], Limit=2)
    assert len(limited["Records"]) == 2 and limited["MillisBehindLatest"] >= 0


def test_put_records_reports_each_record_in_order(endpoint):
    k = client(endpoint)
    name = create(k, 4)
    entries = [{"Data": bytes([i % 256]) * (i + 1), "PartitionKey": f"p{i}"} for i in range(500)]
    entries[7]["ExplicitHashKey"] = str(2**128 - 1)
    out = k.put_records(StreamName=name, Records=entries)
    assert out["FailedRecordCount"] == 0 and len(out["Records"]) == 500
    assert out["Records"][7]["ShardId"] == "shardId-000000000003"
    total = 0
    for shard in k.list_shards(StreamName=name)["Shards"]:
        records, _ = read_all(k, name, shard["ShardId"])
        by_seq = {r["SequenceNumber"]: r for r in records}
        for i, result in enumerate(out["Records"]):
            if result["ShardId"] == shard["ShardId"]:
                assert by_seq[result["SequenceNumber"]]["Data"] == entries[i]["Data"]
                assert by_seq[result["SequenceNumber"]]["PartitionKey"] == entries[i]["PartitionKey"]
        total += len(records)
    assert total == 500


def test_list_shards_filters_and_pages(endpoint):
    k = client(endpoint)
    name = create(k, 5)
    first = k.list_shards(StreamName=name, MaxResults=2)
    assert [s["ShardId"] for s in first["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    rest = k.list_shards(NextToken=first["NextToken"])
    assert [s["ShardId"] for s in rest["Shards"]][0] == "shardId-000000000002"
    after = k.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000003"})
    assert [s["ShardId"] for s in after["Shards"]] == ["shardId-000000000004"]
    expect_error("InvalidArgumentException", k.list_shards, StreamName=name, NextToken=first["NextToken"])
    k.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**120))
    settled(k, name)
    latest = [s["ShardId"] for s in k.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})["Shards"]]
    assert "shardId-000000000000" not in latest and "shardId-000000000005" in latest
    horizon = [s["ShardId"] for s in k.list_shards(StreamName=name, ShardFilter={"Type": "AT_TRIM_HORIZON"})["Shards"]]
    assert "shardId-000000000000" in horizon and "shardId-000000000005" not in horizon


def test_split_and_merge_lead_readers_to_the_children(endpoint):
    k = client(endpoint)
    name = create(k, 2)
    k.put_record(StreamName=name, PartitionKey="a", Data=b"before", ExplicitHashKey="5")
    expect_error("InvalidArgumentException", k.split_shard, StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey="1")
    k.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
    settled(k, name)
    shards = {s["ShardId"]: s for s in k.list_shards(StreamName=name)["Shards"]}
    assert shards["shardId-000000000002"]["ParentShardId"] == "shardId-000000000000"
    assert shards["shardId-000000000003"]["HashKeyRange"]["StartingHashKey"] == str(2**126)
    assert "EndingSequenceNumber" in shards["shardId-000000000000"]["SequenceNumberRange"]
    records, end = read_all(k, name, "shardId-000000000000")
    assert [r["Data"] for r in records] == [b"before"], "parent data stays readable"
    it = k.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while True:
        out = k.get_records(ShardIterator=it)
        if "NextShardIterator" not in out:
            break
        it = out["NextShardIterator"]
    children = sorted(c["ShardId"] for c in out["ChildShards"])
    assert children == ["shardId-000000000002", "shardId-000000000003"]
    assert out["ChildShards"][0]["ParentShards"] == ["shardId-000000000000"]
    expect_error("InvalidArgumentException", k.split_shard, StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**125))
    k.put_record(StreamName=name, PartitionKey="a", Data=b"after", ExplicitHashKey="5")
    assert [r["Data"] for r in read_all(k, name, "shardId-000000000002")[0]] == [b"after"]
    k.merge_shards(StreamName=name, ShardToMerge="shardId-000000000002", AdjacentShardToMerge="shardId-000000000003")
    settled(k, name)
    merged = k.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    child = next(s for s in merged if s["ShardId"] == "shardId-000000000004")
    assert child["ParentShardId"] == "shardId-000000000002" and child["AdjacentParentShardId"] == "shardId-000000000003"
    expect_error("InvalidArgumentException", k.merge_shards, StreamName=name, ShardToMerge="shardId-000000000001", AdjacentShardToMerge="shardId-000000000000")


def test_update_shard_count(endpoint):
    k = client(endpoint)
    name = create(k, 2)
    out = k.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert (out["CurrentShardCount"], out["TargetShardCount"]) == (2, 4)
    settled(k, name)
    assert k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 4
    expect_error("InvalidArgumentException", k.update_shard_count, StreamName=name, TargetShardCount=9, ScalingType="UNIFORM_SCALING")


def test_retention_record_size_and_mode(endpoint):
    k = client(endpoint)
    name = create(k, 1)
    k.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    expect_error("InvalidArgumentException", k.increase_stream_retention_period, StreamName=name, RetentionPeriodHours=30)
    k.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    expect_error("InvalidArgumentException", k.decrease_stream_retention_period, StreamName=name, RetentionPeriodHours=12)
    arn = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    k.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=2048)
    assert k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] == 2048
    k.put_record(StreamName=name, PartitionKey="big", Data=b"x" * (1536 * 1024))
    expect_error("ValidationException", client(endpoint, validate=False).update_max_record_size, StreamARN=arn, MaxRecordSizeInKiB=100)
    k.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    summary = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
    expect_error("ValidationException", k.split_shard, StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**100))
    warm = k.update_stream_warm_throughput(StreamARN=arn, WarmThroughputMiBps=100)
    assert warm["WarmThroughput"]["TargetMiBps"] == 100


def test_on_demand_streams_and_limits(endpoint):
    k = client(endpoint)
    name = unique("od")
    k.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    assert k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 4
    limits = k.describe_limits()
    assert limits["ShardLimit"] == 10000 and limits["OpenShardCount"] >= 4 and limits["OnDemandStreamCount"] >= 1
    assert limits["OnDemandStreamCountLimit"] == 50


def test_tags_on_streams_and_resources(endpoint):
    k = client(endpoint)
    name = create(k, 1)
    arn = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    k.add_tags_to_stream(StreamName=name, Tags={"a": "1", "b": "2", "c": "3"})
    page = k.list_tags_for_stream(StreamName=name, Limit=2)
    assert [t["Key"] for t in page["Tags"]] == ["a", "b"] and page["HasMoreTags"] is True
    assert [t["Key"] for t in k.list_tags_for_stream(StreamName=name, ExclusiveStartTagKey="b")["Tags"]] == ["c"]
    k.remove_tags_from_stream(StreamName=name, TagKeys=["a"])
    k.tag_resource(ResourceARN=arn, Tags={"d": "4"})
    k.untag_resource(ResourceARN=arn, TagKeys=["b"])
    assert {t["Key"]: t["Value"] for t in k.list_tags_for_resource(ResourceARN=arn)["Tags"]} == {"c": "3", "d": "4"}
    expect_error("LimitExceededException", k.add_tags_to_stream, StreamName=name, Tags={f"k{i}": "v" for i in range(50)})
    consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="tagged")["Consumer"]["ConsumerARN"]
    k.tag_resource(ResourceARN=consumer, Tags={"owner": "me"})
    assert k.list_tags_for_resource(ResourceARN=consumer)["Tags"] == [{"Key": "owner", "Value": "me"}]
    k.untag_resource(ResourceARN=consumer, TagKeys=["owner"])
    assert k.list_tags_for_resource(ResourceARN=consumer)["Tags"] == []


def test_consumers_and_subscribe_to_shard(endpoint):
    k = client(endpoint)
    name = create(k, 1)
    arn = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="app")["Consumer"]
    assert consumer["ConsumerStatus"] == "ACTIVE" and consumer["ConsumerARN"].startswith(f"{arn}/consumer/app:")
    expect_error("ResourceInUseException", k.register_stream_consumer, StreamARN=arn, ConsumerName="app")
    described = k.describe_stream_consumer(StreamARN=arn, ConsumerName="app")["ConsumerDescription"]
    assert described["ConsumerARN"] == consumer["ConsumerARN"] and described["StreamARN"] == arn
    assert k.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])["ConsumerDescription"]["ConsumerName"] == "app"
    assert [c["ConsumerName"] for c in k.list_stream_consumers(StreamARN=arn)["Consumers"]] == ["app"]
    assert k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["ConsumerCount"] == 1
    sent = [k.put_record(StreamName=name, PartitionKey="p", Data=f"e{i}".encode())["SequenceNumber"] for i in range(5)]
    out = k.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId="shardId-000000000000", StartingPosition={"Type": "TRIM_HORIZON"})
    got = []
    for event in out["EventStream"]:
        batch = event["SubscribeToShardEvent"]
        got += [r["SequenceNumber"] for r in batch["Records"]]
        assert batch["ContinuationSequenceNumber"]
        if len(got) >= 5:
            break
    out["EventStream"].close()
    assert got == sent
    expect_error("ResourceInUseException", k.subscribe_to_shard, ConsumerARN=consumer["ConsumerARN"], ShardId="shardId-000000000000", StartingPosition={"Type": "LATEST"})
    expect_error("ResourceInUseException", k.delete_stream, StreamName=name)
    k.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    expect_error("ResourceNotFoundException", k.describe_stream_consumer, ConsumerARN=consumer["ConsumerARN"])
    k.register_stream_consumer(StreamARN=arn, ConsumerName="second")
    k.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_settings_encryption_monitoring_policies_account(endpoint):
    k = client(endpoint)
    name = create(k, 1)
    arn = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    k.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    d = k.describe_stream(StreamName=name)["StreamDescription"]
    assert (d["EncryptionType"], d["KeyId"]) == ("KMS", "alias/aws/kinesis")
    k.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert k.describe_stream(StreamName=name)["StreamDescription"]["EncryptionType"] == "NONE"
    on = k.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingBytes", "OutgoingRecords"])
    assert on["CurrentShardLevelMetrics"] == [] and sorted(on["DesiredShardLevelMetrics"]) == ["IncomingBytes", "OutgoingRecords"]
    off = k.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingBytes"])
    assert off["DesiredShardLevelMetrics"] == ["OutgoingRecords"]
    assert k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["EnhancedMonitoring"] == [{"ShardLevelMetrics": ["OutgoingRecords"]}]
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    k.put_resource_policy(ResourceARN=arn, Policy=policy)
    assert k.get_resource_policy(ResourceARN=arn)["Policy"] == policy
    k.delete_resource_policy(ResourceARN=arn)
    assert k.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"
    expect_error("ResourceNotFoundException", k.delete_resource_policy, ResourceARN=arn)
    consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="governed")["Consumer"]["ConsumerARN"]
    k.put_resource_policy(ResourceARN=consumer, Policy=policy)
    assert k.get_resource_policy(ResourceARN=consumer)["Policy"] == policy
    assert k.get_resource_policy(ResourceARN=arn)["Policy"] == "{}", "the stream's own slot is separate"
    k.deregister_stream_consumer(ConsumerARN=consumer)
    expect_error("ResourceNotFoundException", k.get_resource_policy, ResourceARN=consumer)
    expect_error("LimitExceededException", k.put_resource_policy, ResourceARN=arn, Policy=json.dumps({"pad": "x" * 20480}))
    k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    assert k.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"] == "ENABLED"
    k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})


def test_a_recreated_stream_takes_no_numbers_or_consumer_arns_of_the_old_one(endpoint):
    k = client(endpoint)
    name = create(k, 1)
    old = k.put_record(StreamName=name, PartitionKey="k", Data=b"old")
    arn = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    old_consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
    deleted(k, name, EnforceConsumerDeletion=True)
    k.create_stream(StreamName=name, ShardCount=1)
    k.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    new = k.put_record(StreamName=name, PartitionKey="k", Data=b"new")
    assert new["SequenceNumber"] != old["SequenceNumber"], "numbers differ across incarnations"
    error = expect_error("InvalidArgumentException", k.get_shard_iterator, StreamName=name, ShardId=old["ShardId"],
                         ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=old["SequenceNumber"])
    assert "did not come from stream" in error.response["Error"]["Message"], error.response
    it = k.get_shard_iterator(StreamName=name, ShardId=new["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
                              StartingSequenceNumber=new["SequenceNumber"])["ShardIterator"]
    assert [r["Data"] for r in k.get_records(ShardIterator=it)["Records"]] == [b"new"]
    new_consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
    assert new_consumer != old_consumer, (old_consumer, new_consumer)
    expect_error("ResourceNotFoundException", k.describe_stream_consumer, ConsumerARN=old_consumer)
    k.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_errors_clients_rely_on(endpoint):
    k = client(endpoint)
    raw = client(endpoint, validate=False)
    error = expect_error("ResourceNotFoundException", k.describe_stream, StreamName="missing-stream")
    assert error.response["Error"]["Message"] == "Stream missing-stream under account 000000000000 not found."
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["ResponseMetadata"]["RequestId"]
    expect_error("ResourceNotFoundException", k.put_record, StreamName="missing-stream", PartitionKey="k", Data=b"x")
    error = expect_error("ValidationException", raw.create_stream, StreamName="bad name!", ShardCount=0)
    message = error.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected: "), message
    assert "Value 'bad name!' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+" in message
    assert "Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1" in message
    name = create(k, 1)
    expect_error("InvalidArgumentException", k.get_records, ShardIterator="AAAA" * 20)
    expect_error("ResourceNotFoundException", k.get_shard_iterator, StreamName=name, ShardId="shardId-000000000009", ShardIteratorType="LATEST")
    expect_error("InvalidArgumentException", k.get_shard_iterator, StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber="9" * 60)
    expect_error("InvalidArgumentException", k.put_record, StreamName=name, PartitionKey="k", Data=b"x" * (1024 * 1024 + 1))
    expect_error("ValidationException", raw.put_records, StreamName=name, Records=[])
    expect_error("ValidationException", raw.get_shard_iterator, StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="SOMEWHERE")
    expect_error("ValidationException", raw.put_record, StreamName=name, PartitionKey="", Data=b"x")
    expect_error("ValidationException", raw.describe_stream_summary)
    before = k.describe_stream(StreamName=name)["StreamDescription"]
    after = k.describe_stream(StreamName=name)["StreamDescription"]
    assert before == after and read_all(k, name, "shardId-000000000000")[0] == []


def test_stream_arn_works_wherever_stream_name_does(endpoint):
    k = client(endpoint)
    name = create(k, 1)
    arn = f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
    seq = k.put_record(StreamARN=arn, PartitionKey="k", Data=b"by-arn")["SequenceNumber"]
    k.put_records(StreamARN=arn, Records=[{"PartitionKey": "k", "Data": b"2"}])
    it = k.get_shard_iterator(StreamARN=arn, ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq)["ShardIterator"]
    assert [r["Data"] for r in k.get_records(ShardIterator=it, StreamARN=arn)["Records"]] == [b"by-arn", b"2"]
    assert k.list_shards(StreamARN=arn)["Shards"][0]["ShardId"] == "shardId-000000000000"
    k.add_tags_to_stream(StreamARN=arn, Tags={"x": "y"})
    for foreign in (arn.replace("000000000000", "123456789012"), arn.replace("us-east-1", "eu-west-1")):
        expect_error("ResourceNotFoundException", k.describe_stream_summary, StreamARN=foreign)
        expect_error("ResourceNotFoundException", k.register_stream_consumer, StreamARN=foreign, ConsumerName="x")
        expect_error("ResourceNotFoundException", k.list_tags_for_resource, ResourceARN=foreign)
    deleted(k, name, StreamARN=arn)
    expect_error("ResourceNotFoundException", k.describe_stream_summary, StreamARN=arn)


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
