"""Firehose on `sluice serve --firehose-s3-endpoint` delivering to an S3-compatible server
(moto's): boto3's `firehose` client puts records, boto3's `s3` client finds every one of
them, once, in gzipped objects named as Firehose names them.
Usage: python3 firehose_s3_suite.py URL S3_URL"""

import gzip
import sys
import time

import boto3
from botocore.config import Config

import harness
from harness import unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
S3 = sys.argv[2] if __name__ == "__main__" else None


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))


def objects(s3, bucket):
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    return sorted((key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys)


def create(firehose, name, bucket, size, interval, compression, prefix=None):
    destination = {
        "RoleARN": "arn:aws:iam::000000000000:role/firehose",
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "BufferingHints": {"SizeInMBs": size, "IntervalInSeconds": interval},
        "CompressionFormat": compression,
    }
    if prefix is not None:
        destination["Prefix"] = prefix
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination)


def test_records_land_in_s3_once_gzipped_and_named_as_firehose_names_them(endpoint):
    firehose, s3 = client("firehose", endpoint), client("s3", S3)
    bucket, name = unique("lake"), unique("events")
    s3.create_bucket(Bucket=bucket)
    create(firehose, name, bucket, 1, 1, "GZIP", prefix="events/")
    for start in range(0, 1500, 500):
        records = [{"Data": f"event-{i:05}\n".encode()} for i in range(start, start + 500)]
        assert firehose.put_record_batch(DeliveryStreamName=name, Records=records)["FailedPutCount"] == 0
    deadline = time.time() + 30
    while True:
        found = objects(s3, bucket)
        lines = sorted(line for _, body in found for line in gzip.decompress(body).decode().splitlines())
        if len(lines) >= 1500 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert lines == [f"event-{i:05}" for i in range(1500)], (len(lines), lines[:3])
    for key, _ in found:
        parts = key.split("/")
        assert parts[0] == "events" and len(parts) == 6 and parts[5].startswith(f"{name}-1-"), key
        assert key.endswith(".gz"), key



def test_a_large_object_is_a_multipart_upload_and_a_small_one_a_single_put(endpoint):
    firehose, s3 = client("firehose", endpoint), client("s3", S3)
    bucket, name = unique("lake"), unique("large")
    s3.create_bucket(Bucket=bucket)
    create(firehose, name, bucket, 64, 5, "UNCOMPRESSED")
    # 21 records of 1,000,000 bytes: one object of 21,000,000 bytes, over the 16 MiB from
    # which objects go up in 8 MiB parts (three of them).
    records = [bytes([ord("a") + i]) * 999_999 + b"\n" for i in range(21)]
    for start in range(0, 21, 4):
        batch = [{"Data": data} for data in records[start:start + 4]]
        assert firehose.put_record_batch(DeliveryStreamName=name, Records=batch)["FailedPutCount"] == 0
    deadline = time.time() + 60
    while not objects(s3, bucket) and time.time() < deadline:
        time.sleep(0.5)
    found = objects(s3, bucket)
    assert len(found) == 1 and found[0][1] == b"".join(records), [(k, len(b)) for k, b in found]
    etag = s3.head_object(Bucket=bucket, Key=found[0][0])["ETag"]
    assert etag.strip('"').endswith("-3"), f"not a 3-part upload: {etag}"
    # A small object is one PUT (an ETag without a part count).
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b"small\n"})
    deadline = time.time() + 30
    while len(objects(s3, bucket)) < 2 and time.time() < deadline:
        time.sleep(0.5)
    small = [key for key, body in objects(s3, bucket) if body == b"small\n"]
    assert len(small) == 1, objects(s3, bucket)
    assert "-" not in s3.head_object(Bucket=bucket, Key=small[0])["ETag"]


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
