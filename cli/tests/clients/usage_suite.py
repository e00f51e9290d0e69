"""Usage metering through `sluice serve` and `sluice usage`: a known workload (a 2-shard
stream with 1,000 puts of 30 KB, a delivery stream with records of known sizes) gives a
known bill, and `/metrics` carries the same totals.
Usage: python3 usage_suite.py http://127.0.0.1:PORT (SLUICE_BIN names the sluice binary)"""

import json
import os
import subprocess
import sys
import time
import urllib.request

import boto3
from botocore.config import Config

import harness

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
CREDENTIALS = dict(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1")
ACCOUNT = "000000000000"
PRICES = {"currency": "USD", "prices": {
    "Kinesis:ShardHour": 0.015,
    "Kinesis:PutRequestPayloadUnits": {"price": 0.014, "per": 1000000},
}}


def sluice_usage(endpoint, *args):
    done = subprocess.run([os.environ["SLUICE_BIN"], "usage", "--endpoint", endpoint, *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def line(report, resource, usage_type):
    found = [l for l in report["lines"] if l["resource"] == resource and l["usage_type"] == usage_type]
    assert len(found) == 1, (resource, usage_type, report["lines"])
    return found[0]


def test_a_known_workload_gives_a_known_bill(endpoint):
    config = Config(retries={"max_attempts": 1})
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, config=config, **CREDENTIALS)
    firehose = boto3.client("firehose", endpoint_url=endpoint, config=config, **CREDENTIALS)
    began = time.time()
    kinesis.create_stream(StreamName="metered", ShardCount=2)
    created = time.time()
    record = b"x" * (30 * 1024 - 10)
    for batch in range(100):
        out = kinesis.put_records(StreamName="metered", Records=[{"Data": record, "PartitionKey": f"k-{batch}-{i}"} for i in range(10)])
        assert out["FailedRecordCount"] == 0
    firehose.create_delivery_stream(
        DeliveryStreamName="metered-logs", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose", "BucketARN": "arn:aws:s3:::usage-bucket",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})
    out = firehose.put_record_batch(DeliveryStreamName="metered-logs", Records=[{"Data": b"a"}, {"Data": b"b" * 5120}, {"Data": b"c" * 5121}])
    assert out["FailedPutCount"] == 0
    # Firehose's own metrics of the call, under AWS/Firehose.
    cloudwatch = boto3.client("cloudwatch", endpoint_url=endpoint, config=config, **CREDENTIALS)
    now = time.time()
    stats = cloudwatch.get_metric_statistics(Namespace="AWS/Firehose", MetricName="IncomingRecords",
                                             Dimensions=[{"Name": "DeliveryStreamName", "Value": "metered-logs"}],
                                             StartTime=now - 600, EndTime=now + 120, Period=3600, Statistics=["Sum"])
    assert [p["Sum"] for p in stats["Datapoints"]] == [3.0], stats
    time.sleep(2)
    prices = os.path.join(os.environ["TMPDIR_FOR_TEST"], "prices.json")
    with open(prices, "w") as f:
        json.dump(PRICES, f)
    before_report = time.time()
    report = json.loads(sluice_usage(endpoint, "--json", "--prices", prices))
    after_report = time.time()
    units = line(report, "stream/metered", "Kinesis:PutRequestPayloadUnits")
    assert units["quantity"] == 2000.0 and units["unit"] == "Units", units
    assert abs(units["cost"] - 2000 * 0.014 / 1e6) < 1e-12, units
    hours = line(report, "stream/metered", "Kinesis:ShardHour")
    # Two shards from creation to the report, to within the sampling of one second.
    low, high = 2 * (before_report - created - 1) / 3600, 2 * (after_report - began + 1) / 3600
    assert low <= hours["quantity"] <= high, (low, hours, high)
    assert abs(hours["cost"] - hours["quantity"] * 0.015) < 1e-12
    ingested = line(report, "deliverystream/metered-logs", "Firehose:Ingested-GB")
    assert ingested["quantity"] == (5120 + 5120 + 10240) / 2**30, ingested
    assert "cost" not in ingested, "no price in the table: no cost, not a cost of 0"
    account = kinesis.describe_stream_summary(StreamName="metered")["StreamDescriptionSummary"]["StreamARN"].split(":")[4]
    assert all(l["account"] == account and l["region"] == "us-east-1" for l in report["lines"]), report["lines"]
    table = sluice_usage(endpoint, "--prices", prices)
    assert "Kinesis:PutRequestPayloadUnits" in table and "total: " in table, table
    assert "no price in the table for: Firehose:Ingested-GB" in table, table
    # A range before anything happened holds nothing.
    empty = json.loads(sluice_usage(endpoint, "--json", "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z"))
    assert empty["lines"] == [] and empty["from"] == "2020-01-01T00:00:00.000Z", empty
    # /metrics carries the running totals.
    metrics = urllib.request.urlopen(f"{endpoint}/metrics", timeout=10).read().decode()
    put_units = [l for l in metrics.splitlines() if l.startswith("sluice_usage_total") and "PutRequestPayloadUnits" in l and "stream/metered" in l]
    assert len(put_units) == 1 and put_units[0].endswith(" 2000"), put_units
    # A bad range is refused with a reason.
    done = subprocess.run([os.environ["SLUICE_BIN"], "usage", "--endpoint", endpoint, "--since", "yesterday"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "RFC 3339" in done.stderr, done.stderr


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
