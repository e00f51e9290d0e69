"""Firehose's Lambda processor through `sluice serve --firehose-lambda-endpoint`, with boto3's
`firehose` client unchanged and a Lambda emulator (lambda_emulator.py) as the function:
records changed, dropped and failed as the function answers, failed ones in the error output
in Firehose's envelope, a failing function's records there too, the event as Lambda gets it.
Usage: python3 firehose_lambda_suite.py URL BUCKET_DIR INVOCATION_LOG"""

import base64
import json
import os
import sys
import time

import harness
from firehose_suite import client
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
BUCKETS = sys.argv[2] if __name__ == "__main__" else None
LOG = sys.argv[3] if __name__ == "__main__" else None
ACCOUNT = "000000000000"


def files(root):
    found = {}
    for directory, _, names in os.walk(root):
        # "#": the local store's file being written, renamed into place when whole.
        for name in (n for n in names if "#" not in n):
            with open(os.path.join(directory, name)) as f:
                found[os.path.relpath(os.path.join(directory, name), root)] = f.read()
    return found


def create(firehose, function, bucket, retries="0", prefix="out/", partitioned=False):
    name = unique("lambda")
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration={
        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "Prefix": prefix,
        "DynamicPartitioningConfiguration": {"Enabled": partitioned},
        "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        "CompressionFormat": "UNCOMPRESSED",
        "ProcessingConfiguration": {"Enabled": True, "Processors": [
            {"Type": "Lambda", "Parameters": [
                {"ParameterName": "LambdaArn",
                 "ParameterValue": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}:$LATEST"},
                {"ParameterName": "NumberOfRetries", "ParameterValue": retries}]},
            {"Type": "AppendDelimiterToRecord", "Parameters": []}]},
    })
    return name


def wait(predicate, timeout=20):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.1)
    return predicate()


def envelopes(root):
    return [json.loads(line) for text in files(root).values() for line in text.splitlines()]


def test_a_lambda_changes_drops_and_fails_records_as_it_answers(endpoint):
    firehose = client(endpoint)
    bucket = unique("lake")
    name = create(firehose, "shout", bucket)
    processors = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
        "Destinations"][0]["ExtendedS3DestinationDescription"]["ProcessingConfiguration"]["Processors"]
    assert [p["Type"] for p in processors] == ["AppendDelimiterToRecord", "Lambda"] or \
        [p["Type"] for p in processors] == ["Lambda", "AppendDelimiterToRecord"], processors
    records = [f"{kind}-{i}" for kind in ("keep", "drop", "bad", "lost") for i in range(5)]
    reply = firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r.encode()} for r in records])
    assert reply["FailedPutCount"] == 0, reply
    root = os.path.join(BUCKETS, bucket)
    assert wait(lambda: len(envelopes(os.path.join(root, "errors"))) >= 10 and files(os.path.join(root, "out")))
    delivered = sorted(line for text in files(os.path.join(root, "out")).values() for line in text.splitlines())
    assert delivered == [f"KEEP-{i}" for i in range(5)], delivered
    failed = sorted((base64.b64decode(e["rawData"]).decode(), e["errorCode"])
                    for e in envelopes(os.path.join(root, "errors", "processing-failed")))
    assert failed == sorted([(f"bad-{i}", "Lambda.ProcessingFailed") for i in range(5)] +
                            [(f"lost-{i}", "Lambda.MissingRecordId") for i in range(5)]), failed
    with open(LOG) as log:
        calls = [json.loads(line) for line in log]
    mine = [c for c in calls if c["event"]["deliveryStreamArn"].endswith("/" + name)]
    # The ARN's qualifier ($LATEST) goes as Lambda's Invoke API takes it.
    assert mine and mine[0]["path"] == "/2015-03-31/functions/shout/invocations?Qualifier=%24LATEST", mine[:1]
    event = mine[0]["event"]
    assert event["deliveryStreamArn"] == f"arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/{name}", event
    assert event["region"] == "us-east-1" and event["invocationId"], event
    sent = sorted(base64.b64decode(r["data"]).decode() for c in mine for r in c["event"]["records"])
    assert sent == sorted(records), sent
    assert all(r["approximateArrivalTimestamp"] > 1_700_000_000_000 for r in event["records"]), event
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_a_failing_function_sends_its_records_to_the_error_output_after_its_retries(endpoint):
    firehose = client(endpoint)
    bucket = unique("lake")
    name = create(firehose, "broken", bucket, retries="1")
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b"only-0"})
    root = os.path.join(BUCKETS, bucket)
    assert wait(lambda: envelopes(os.path.join(root, "errors")))
    (envelope,) = envelopes(os.path.join(root, "errors"))
    assert envelope["errorCode"] == "Lambda.FunctionError" and envelope["attemptsMade"] == 2, envelope
    assert "boom" in envelope["errorMessage"], envelope
    assert base64.b64decode(envelope["rawData"]) == b"only-0"
    assert not files(os.path.join(root, "out"))
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_partition_keys_from_the_lambdas_answers_name_the_objects(endpoint):
    firehose, bucket = client(endpoint), unique("lake")
    name = create(firehose, "partition", bucket, prefix="customer=!{partitionKeyFromLambda:customer}/",
                  partitioned=True)
    s3 = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
        "Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["DynamicPartitioningConfiguration"] == {"Enabled": True}, s3
    # A null key is no key, an object no key an object name can hold: each fails its own
    # record only.
    customers = ["acme", "initech", "acme", None, "initech", {"nested": 1}]
    records = [{"customer": c, "n": i} for i, c in enumerate(customers)]
    firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": json.dumps(r).encode()} for r in records])
    root = os.path.join(BUCKETS, bucket)
    assert wait(lambda: sum(len(text.splitlines()) for text in files(root).values()) == 6), files(root)
    by_folder = {}
    for key, text in files(root).items():
        by_folder.setdefault(key.split("/")[0], []).extend(text.splitlines())
    assert sorted(json.loads(line)["n"] for line in by_folder["customer=acme"]) == [0, 2], by_folder
    assert sorted(json.loads(line)["n"] for line in by_folder["customer=initech"]) == [1, 4], by_folder
    failed = sorted((json.loads(line) for line in by_folder["errors"]), key=lambda f: f["errorMessage"])
    assert len(failed) == 2, failed
    assert "character an object key cannot hold" in failed[0]["errorMessage"], failed
    assert "no partition key" in failed[1]["errorMessage"], failed
    # Keys in the prefix need dynamic partitioning on, and dynamic partitioning keys in the prefix.
    for prefix, partitioned in (("customer=!{partitionKeyFromLambda:customer}/", False), ("plain/", True)):
        expect_error("InvalidArgumentException", create, firehose, "partition", bucket, prefix=prefix,
                     partitioned=partitioned)


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
