"""Firehose on `sluice serve` (signed for the `firehose` service) with boto3's `firehose`
and `kinesis` clients, unchanged: DirectPut and Kinesis-sourced delivery streams deliver
every record once, to the bucket directory, named and compressed as Firehose does (GZIP, and
ZIP, Snappy and HADOOP_SNAPPY read back by Python's zipfile and python-snappy; custom
prefixes with expressions too); Firehose's
errors for bad input. Usage: python3 firehose_suite.py URL BUCKET_DIR"""

import gzip
import io
import json
import os
import sys
import time

import boto3
import snappy
import zipfile
from botocore.config import Config

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
BUCKETS = sys.argv[2] if __name__ == "__main__" else None
ACCOUNT = "000000000000"


def client(endpoint, service="firehose"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1}))


def s3_destination(bucket, prefix, interval=1, size=1, compression="GZIP"):
    return {
        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "Prefix": prefix,
        "BufferingHints": {"SizeInMBs": size, "IntervalInSeconds": interval},
        "CompressionFormat": compression,
    }


def objects(bucket, prefix):
    """(key, gunzipped bytes) of every object under the prefix."""
    root = os.path.join(BUCKETS, bucket)
    found = []
    for directory, _, files in os.walk(os.path.join(root, prefix)):
        for name in files:
            if "#" in name:
                continue  # the local store's file being written, renamed into place when whole
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                data = f.read()
            found.append((os.path.relpath(path, root), gzip.decompress(data) if name.endswith(".gz") else data))
    return sorted(found)


def wait_for_lines(bucket, prefix, count, timeout=20):
    deadline = time.time() + timeout
    while True:
        lines = sorted(line for _, data in objects(bucket, prefix) for line in data.decode().splitlines())
        if len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.1)


def test_direct_put_delivers_every_record_once_in_gzipped_hourly_objects(endpoint):
    firehose = client(endpoint)
    name, bucket = unique("clicks"), unique("lake")
    arn = firehose.create_delivery_stream(DeliveryStreamName=name, DeliveryStreamType="DirectPut",
                                          ExtendedS3DestinationConfiguration=s3_destination(bucket, "clicks/"))
    assert arn["DeliveryStreamARN"] == f"arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/{name}", arn
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert description["DeliveryStreamStatus"] == "ACTIVE" and description["DeliveryStreamType"] == "DirectPut"
    s3 = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["BucketARN"] == f"arn:aws:s3:::{bucket}" and s3["CompressionFormat"] == "GZIP", s3
    assert s3["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 1}, s3
    assert s3["RoleARN"] == f"arn:aws:iam::{ACCOUNT}:role/firehose", s3
    record_id = firehose.put_record(DeliveryStreamName=name, Record={"Data": b"line-0000\n"})["RecordId"]
    assert record_id, record_id
    for start in (1, 501):
        batch = [{"Data": f"line-{i:04}\n".encode()} for i in range(start, start + 500)]
        reply = firehose.put_record_batch(DeliveryStreamName=name, Records=batch)
        assert reply["FailedPutCount"] == 0 and len(reply["RequestResponses"]) == 500, reply["FailedPutCount"]
        assert all("RecordId" in r for r in reply["RequestResponses"])
    lines = wait_for_lines(bucket, "clicks/", 1001)
    assert lines == [f"line-{i:04}" for i in range(1001)], (len(lines), lines[:3])
    utc = time.gmtime()
    for key, _ in objects(bucket, "clicks/"):
        parts = key.split("/")
        assert parts[0] == "clicks" and len(parts) == 6, key
        year, month, day, hour = parts[1:5]
        assert parts[5].startswith(f"{name}-1-{year}-{month}-{day}-{hour}-") and parts[5].endswith(".gz"), key
        assert int(year) == utc.tm_year, key
    # Firehose's metrics of it: what came in (recorded by the calls) and what was delivered
    # (sampled every 10 s).
    cloudwatch = client(endpoint, "cloudwatch")

    def total(metric):
        now = time.time()
        got = cloudwatch.get_metric_statistics(
            Namespace="AWS/Firehose", MetricName=metric, Statistics=["Sum"], Period=3600,
            Dimensions=[{"Name": "DeliveryStreamName", "Value": name}], StartTime=now - 900, EndTime=now + 60)
        return sum(p["Sum"] for p in got["Datapoints"])
    assert total("IncomingRecords") == 1001 and total("IncomingPutRequests") == 3
    deadline = time.time() + 25
    while total("DeliveryToS3.Records") < 1001 and time.time() < deadline:
        time.sleep(1)
    assert total("DeliveryToS3.Records") == 1001 and total("DeliveryToS3.Bytes") == 1001 * 10
    firehose.delete_delivery_stream(DeliveryStreamName=name)
    expect_error("ResourceNotFoundException", firehose.describe_delivery_stream, DeliveryStreamName=name)


def test_a_kinesis_stream_source_is_delivered_from_the_stream(endpoint):
    firehose, kinesis = client(endpoint), client(endpoint, "kinesis")
    stream, name, bucket = unique("orders"), unique("orders-lake"), unique("lake")
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    # Firehose reads a stream from its end at creation: this one is not delivered.
    kinesis.put_record(StreamName=stream, PartitionKey="early", Data=b"before-creation\n")
    firehose.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn,
                                          "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/reader"},
        ExtendedS3DestinationConfiguration=s3_destination(bucket, "", compression="UNCOMPRESSED"))
    for i in range(100):
        kinesis.put_record(StreamName=stream, PartitionKey=f"customer-{i % 9}", Data=f"order-{i:03}\n".encode())
    source = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["Source"]
    assert source["KinesisStreamSourceDescription"]["KinesisStreamARN"] == stream_arn, source
    lines = wait_for_lines(bucket, "", 100)
    assert lines == [f"order-{i:03}" for i in range(100)], (len(lines), lines[:3])
    expect_error("InvalidArgumentException", firehose.put_record, DeliveryStreamName=name, Record={"Data": b"x"})
    names = firehose.list_delivery_streams(DeliveryStreamType="KinesisStreamAsSource")["DeliveryStreamNames"]
    assert name in names, names
    assert name not in firehose.list_delivery_streams(DeliveryStreamType="DirectPut")["DeliveryStreamNames"]
    assert stream in kinesis.list_streams()["StreamNames"] and len(kinesis.list_streams()["StreamNames"]) >= 1


def test_custom_prefixes_are_evaluated_at_the_oldest_record_with_no_hour_directories(endpoint):
    firehose = client(endpoint)
    name, bucket = unique("custom"), unique("lake")
    destination = s3_destination(bucket, "dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/!{firehose:random-string}/",
                                 compression="UNCOMPRESSED")
    destination["ErrorOutputPrefix"] = "failed/!{firehose:error-output-type}/!{timestamp:yyyy}/"
    before = time.gmtime()
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination)
    s3 = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["Destinations"][0][
        "ExtendedS3DestinationDescription"]
    assert s3["Prefix"] == destination["Prefix"] and s3["ErrorOutputPrefix"] == destination["ErrorOutputPrefix"], s3
    firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": f"r{i}\n".encode()} for i in range(20)])
    lines = wait_for_lines(bucket, "", 20)
    after = time.gmtime()
    assert lines == sorted(f"r{i}" for i in range(20)), lines
    days = {time.strftime("dt=%Y-%m-%d", t) for t in (before, after)}
    hours = {time.strftime("h=%H", t) for t in (before, after)}
    for key, _ in objects(bucket, ""):
        parts = key.split("/")
        assert len(parts) == 4 and parts[0] in days and parts[1] in hours, key
        assert len(parts[2]) == 11 and parts[2].isalnum(), key
        assert parts[3].startswith(f"{name}-1-"), key
    bad = dict(destination, Prefix="!{timestamp:yyyy-EEE}/")
    error = expect_error("InvalidArgumentException", firehose.create_delivery_stream,
                         DeliveryStreamName=unique("badpattern"), ExtendedS3DestinationConfiguration=bad)
    assert "EEE" in error.response["Error"]["Message"], error.response
    no_errors = dict(destination)
    del no_errors["ErrorOutputPrefix"]
    expect_error("InvalidArgumentException", firehose.create_delivery_stream,
                 DeliveryStreamName=unique("noerrors"), ExtendedS3DestinationConfiguration=no_errors)
    for bad_prefix in ("!{firehose:error-output-type}/", "!{partitionKeyFromQuery:id}/", "a/!{timestamp:yyyy"):
        expect_error("InvalidArgumentException", firehose.create_delivery_stream,
                     DeliveryStreamName=unique("badprefix"),
                     ExtendedS3DestinationConfiguration=dict(destination, Prefix=bad_prefix))
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def unzip(name, data):
    """The one entry of a ZIP object, named as the object without `.zip`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (entry,) = archive.namelist()
        assert entry == name[:-len(".zip")], (entry, name)
        return archive.read(entry)


def test_zip_snappy_and_hadoop_snappy_objects_read_back_with_their_own_readers(endpoint):
    firehose = client(endpoint)
    expected = [f"event-{i:05}-" + "x" * (i % 300) for i in range(3000)]
    readers = {
        "ZIP": unzip,
        "Snappy": lambda key, data: snappy.StreamDecompressor().decompress(data),
        "HADOOP_SNAPPY": lambda key, data: snappy.HadoopStreamDecompressor().decompress(data),
    }
    for compression, reader in readers.items():
        name, bucket = unique("compressed"), unique("lake")
        firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_destination(
            bucket, "c/", compression=compression))
        s3 = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["Destinations"][0][
            "ExtendedS3DestinationDescription"]
        assert s3["CompressionFormat"] == compression, s3
        for start in range(0, len(expected), 500):
            records = [{"Data": (line + "\n").encode()} for line in expected[start:start + 500]]
            assert firehose.put_record_batch(DeliveryStreamName=name, Records=records)["FailedPutCount"] == 0
        root = os.path.join(BUCKETS, bucket)
        deadline = time.time() + 20
        while True:
            lines = []
            for directory, _, files in os.walk(root):
                for file in (f for f in files if "#" not in f):  # not a file being written
                    assert file.endswith(".zip" if compression == "ZIP" else ".snappy"), file
                    with open(os.path.join(directory, file), "rb") as f:
                        lines += reader(file, f.read()).decode().splitlines()
            if len(lines) >= len(expected) or time.time() > deadline:
                break
            time.sleep(0.2)
        assert sorted(lines) == sorted(expected), (compression, len(lines))
        firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_append_delimiter_to_record_makes_each_record_a_line(endpoint):
    firehose = client(endpoint)
    name, bucket = unique("delimited"), unique("lake")
    destination = s3_destination(bucket, "d/", compression="UNCOMPRESSED")
    destination["ProcessingConfiguration"] = {
        "Enabled": True, "Processors": [{"Type": "AppendDelimiterToRecord", "Parameters": []}]}
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination)
    s3 = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["Destinations"][0][
        "ExtendedS3DestinationDescription"]
    assert s3["ProcessingConfiguration"] == destination["ProcessingConfiguration"], s3
    records = [{"Data": f'{{"n":{i}}}'.encode()} for i in range(200)]
    assert firehose.put_record_batch(DeliveryStreamName=name, Records=records)["FailedPutCount"] == 0
    lines = wait_for_lines(bucket, "d/", 200)
    assert lines == sorted(f'{{"n":{i}}}' for i in range(200)), lines[:3]
    assert all(data.endswith(b"}\n") for _, data in objects(bucket, "d/"))
    with_delimiter = dict(destination, ProcessingConfiguration={"Enabled": True, "Processors": [
        {"Type": "AppendDelimiterToRecord", "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": ","}]}]})
    for config in (with_delimiter, dict(destination, ProcessingConfiguration={
            "Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": []}]})):
        error = expect_error("InvalidArgumentException", firehose.create_delivery_stream,
                             DeliveryStreamName=unique("processor"), ExtendedS3DestinationConfiguration=config)
        assert "not supported by this server yet" in error.response["Error"]["Message"], error.response
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_source_record_backup_holds_the_records_as_they_came(endpoint):
    firehose = client(endpoint)
    name, bucket, vault = unique("backed-up"), unique("lake"), unique("vault")
    destination = s3_destination(bucket, "split/", compression="UNCOMPRESSED")
    destination["ProcessingConfiguration"] = {"Enabled": True, "Processors": [
        {"Type": "RecordDeAggregation", "Parameters": [{"ParameterName": "SubRecordType", "ParameterValue": "JSON"}]},
        {"Type": "AppendDelimiterToRecord", "Parameters": []}]}
    destination["S3BackupMode"] = "Enabled"
    destination["S3BackupConfiguration"] = dict(s3_destination(vault, "raw/"), RoleARN=f"arn:aws:iam::{ACCOUNT}:role/vault")
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination)
    described = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    s3 = described["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["S3BackupMode"] == "Enabled", s3
    backup = s3["S3BackupDescription"]
    assert backup["BucketARN"] == f"arn:aws:s3:::{vault}" and backup["Prefix"] == "raw/", backup
    assert backup["CompressionFormat"] == "GZIP" and backup["RoleARN"].endswith(":role/vault"), backup
    aggregates = [b'{"n":%d}{"n":%d}' % (2 * i, 2 * i + 1) for i in range(50)]
    reply = firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": a} for a in aggregates])
    assert reply["FailedPutCount"] == 0, reply
    assert wait_for_lines(bucket, "split/", 100) == sorted(f'{{"n":{i}}}' for i in range(100))
    deadline = time.time() + 20
    while sum(len(data) for _, data in objects(vault, "raw/")) < len(b"".join(aggregates)) and time.time() < deadline:
        time.sleep(0.1)
    raw = objects(vault, "raw/")
    assert all(key.endswith(".gz") and len(key.split("/")) == 6 for key, _ in raw), raw
    assert b"".join(data for _, data in raw) == b"".join(aggregates), raw
    # Updated through S3BackupUpdate: the new prefix takes the records after the update.
    version = described["VersionId"]
    firehose.update_destination(DeliveryStreamName=name, CurrentDeliveryStreamVersionId=version,
                                DestinationId="destinationId-000000000001",
                                ExtendedS3DestinationUpdate={"S3BackupUpdate": {"Prefix": "raw-v2/"}})
    s3 = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
        "Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["S3BackupDescription"]["Prefix"] == "raw-v2/" and s3["S3BackupMode"] == "Enabled", s3
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b'{"n":100}'})
    deadline = time.time() + 20
    while not objects(vault, "raw-v2/") and time.time() < deadline:
        time.sleep(0.1)
    assert [data for _, data in objects(vault, "raw-v2/")] == [b'{"n":100}']
    for mode, config in (("Enabled", None), ("Disabled", s3_destination(vault, "x/")), ("Sometimes", None)):
        refused = dict(s3_destination(bucket, "r/"), S3BackupMode=mode)
        if config:
            refused["S3BackupConfiguration"] = config
        expect_error("InvalidArgumentException", firehose.create_delivery_stream,
                     DeliveryStreamName=unique("refused"), ExtendedS3DestinationConfiguration=refused)


def test_dynamic_partitioning_and_cloudwatch_logs_processors(endpoint):
    """CloudWatch Logs subscription records (gzipped DATA_MESSAGEs) gunzipped, split into their
    messages, partitioned by a jq query into objects under their keys; what cannot be
    partitioned goes to the error output."""
    firehose = client(endpoint)
    name, bucket = unique("partitioned"), unique("lake")
    destination = s3_destination(bucket, "app=!{partitionKeyFromQuery:app}/lvl=!{partitionKeyFromQuery:level}/",
                                 compression="UNCOMPRESSED")
    destination["ErrorOutputPrefix"] = "errors/!{firehose:error-output-type}/"
    destination["DynamicPartitioningConfiguration"] = {"Enabled": True}
    destination["ProcessingConfiguration"] = {"Enabled": True, "Processors": [
        {"Type": "Decompression", "Parameters": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}]},
        {"Type": "CloudWatchLogProcessing",
         "Parameters": [{"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}]},
        {"Type": "MetadataExtraction", "Parameters": [
            {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{app: .app, level: .level}"},
            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]},
        {"Type": "AppendDelimiterToRecord", "Parameters": []}]}
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination)
    s3 = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["Destinations"][0][
        "ExtendedS3DestinationDescription"]
    types = [p["Type"] for p in s3["ProcessingConfiguration"]["Processors"]]
    assert types == ["Decompression", "CloudWatchLogProcessing", "MetadataExtraction",
                     "AppendDelimiterToRecord"], types
    messages = [json.dumps({"app": app, "level": level, "n": i})
                for i, (app, level) in enumerate((a, l) for a in ("web", "api") for l in ("info", "warn"))]
    messages.append("no json here")
    event = {"messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": "/apps", "logStream": "s",
             "subscriptionFilters": ["f"],
             "logEvents": [{"id": str(i), "timestamp": i, "message": m} for i, m in enumerate(messages)]}
    data = gzip.compress(json.dumps(event).encode())
    assert firehose.put_record(DeliveryStreamName=name, Record={"Data": data})["RecordId"]
    partitions = [f"app={app}/lvl={level}/" for app in ("web", "api") for level in ("info", "warn")]
    deadline = time.time() + 20
    while not all(objects(bucket, p) for p in partitions) and time.time() < deadline:
        time.sleep(0.1)
    for partition in partitions:
        lines = [line for _, data in objects(bucket, partition) for line in data.decode().splitlines()]
        keys = [f"app={json.loads(line)['app']}/lvl={json.loads(line)['level']}/" for line in lines]
        assert keys == [partition], (partition, lines)
    failed = wait_for_lines(bucket, "errors/processing-failed/", 1)
    envelope = json.loads(failed[0])
    assert envelope["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed", envelope
    not_enabled = dict(destination, DynamicPartitioningConfiguration={"Enabled": False})
    expect_error("InvalidArgumentException", firehose.create_delivery_stream,
                 DeliveryStreamName=unique("partitioned"), ExtendedS3DestinationConfiguration=not_enabled)
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_update_destination_and_tags(endpoint):
    """UpdateDestination with Firehose's version check (records after it go to the new
    prefix, under the new version), and the tag operations."""
    firehose = client(endpoint)
    name, bucket = unique("updated"), unique("lake")
    firehose.create_delivery_stream(
        DeliveryStreamName=name, Tags=[{"Key": "team", "Value": "web"}],
        ExtendedS3DestinationConfiguration=s3_destination(bucket, "before/", compression="UNCOMPRESSED"))
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b"one\n"})
    assert wait_for_lines(bucket, "before/", 1) == ["one"]
    described = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert described["VersionId"] == "1", described
    destination_id = described["Destinations"][0]["DestinationId"]
    error = expect_error("ConcurrentModificationException", firehose.update_destination,
                         DeliveryStreamName=name, CurrentDeliveryStreamVersionId="7", DestinationId=destination_id,
                         ExtendedS3DestinationUpdate={"Prefix": "after/"})
    assert "version 1" in error.response["Error"]["Message"], error.response
    firehose.update_destination(DeliveryStreamName=name, CurrentDeliveryStreamVersionId="1",
                                DestinationId=destination_id,
                                ExtendedS3DestinationUpdate={"Prefix": "after/", "CompressionFormat": "GZIP"})
    described = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    s3 = described["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert described["VersionId"] == "2" and s3["Prefix"] == "after/" and s3["CompressionFormat"] == "GZIP", s3
    assert s3["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 1}, "members not updated are kept"
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b"two\n"})
    assert wait_for_lines(bucket, "after/", 1) == ["two"]
    assert all(f"/{name}-2-" in key for key, _ in objects(bucket, "after/"))
    for bad in ({"HttpEndpointDestinationUpdate": {"EndpointConfiguration": {"Url": "http://127.0.0.1:9/"}}},
                {"ExtendedS3DestinationUpdate": {"Prefix": "x/", "S3BackupMode": "Enabled"}}):
        expect_error("InvalidArgumentException", firehose.update_destination, DeliveryStreamName=name,
                     CurrentDeliveryStreamVersionId="2", DestinationId=destination_id, **bad)
    firehose.tag_delivery_stream(DeliveryStreamName=name, Tags=[{"Key": "env", "Value": "prod"}])
    tags = firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)
    assert tags["Tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "web"}], tags
    assert tags["HasMoreTags"] is False
    page = firehose.list_tags_for_delivery_stream(DeliveryStreamName=name, Limit=1)
    assert page["Tags"] == [{"Key": "env", "Value": "prod"}] and page["HasMoreTags"] is True, page
    firehose.untag_delivery_stream(DeliveryStreamName=name, TagKeys=["env"])
    assert firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)["Tags"] == [{"Key": "team", "Value": "web"}]
    expect_error("InvalidArgumentException", firehose.tag_delivery_stream, DeliveryStreamName=name,
                 Tags=[{"Key": "aws:reserved", "Value": "x"}])
    expect_error("ResourceNotFoundException", firehose.list_tags_for_delivery_stream, DeliveryStreamName="absent")
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_firehose_errors_for_bad_input(endpoint):
    firehose = client(endpoint)
    name = unique("limits")
    firehose.create_delivery_stream(DeliveryStreamName=name,
                                    ExtendedS3DestinationConfiguration=s3_destination("limits-bucket", "", 60, 1))
    expect_error("ResourceInUseException", firehose.create_delivery_stream, DeliveryStreamName=name,
                 ExtendedS3DestinationConfiguration=s3_destination("limits-bucket", ""))
    error = expect_error("ResourceNotFoundException", firehose.put_record, DeliveryStreamName="none-such",
                         Record={"Data": b"x"})
    assert f"under account {ACCOUNT} not found" in error.response["Error"]["Message"], error.response
    expect_error("InvalidArgumentException", firehose.put_record, DeliveryStreamName=name,
                 Record={"Data": b"x" * (1000 * 1024 + 1)})
    expect_error("InvalidArgumentException", firehose.put_record_batch, DeliveryStreamName=name,
                 Records=[{"Data": b"x"}] * 501)
    expect_error("InvalidArgumentException", firehose.create_delivery_stream, DeliveryStreamName=unique("hints"),
                 ExtendedS3DestinationConfiguration=s3_destination("limits-bucket", "", 60, 129))
    expect_error("InvalidArgumentException", firehose.create_delivery_stream, DeliveryStreamName=unique("lz4"),
                 ExtendedS3DestinationConfiguration=s3_destination("limits-bucket", "", compression="LZ4"))
    expect_error("InvalidArgumentException", firehose.create_delivery_stream, DeliveryStreamName=unique("http"),
                 HttpEndpointDestinationConfiguration={"EndpointConfiguration": {"Url": "https://user@example.com"},
                                                       "S3Configuration": s3_destination("limits-bucket", "")})
    transform = s3_destination("limits-bucket", "")
    transform["ProcessingConfiguration"] = {"Enabled": True, "Processors": []}
    expect_error("InvalidArgumentException", firehose.create_delivery_stream, DeliveryStreamName=unique("lambda"),
                 ExtendedS3DestinationConfiguration=transform)
    names = firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]
    assert name in names and not any(n.startswith(("hints", "lz4", "http", "lambda")) for n in names), names


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
