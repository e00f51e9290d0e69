"""Firehose's record format conversion through `sluice serve`, with boto3's `firehose`
client unchanged and pyarrow reading the objects back: JSON records become Parquet rows of
the Glue table's columns and types, partitioned when asked; records the schema cannot read
go to the error output; ORC and unknown tables are refused.
Usage: python3 firehose_parquet_suite.py URL BUCKET_DIR"""

import datetime
import decimal
import json
import os
import sys
import time

import pyarrow.parquet as pq

import harness
from firehose_suite import client
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
BUCKETS = sys.argv[2] if __name__ == "__main__" else None
ACCOUNT = "000000000000"


def destination(bucket, prefix, compression="SNAPPY", table="clicks", serializer=None):
    return {
        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "Prefix": prefix,
        "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
        "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 1},
        "CompressionFormat": "UNCOMPRESSED",
        "DataFormatConversionConfiguration": {
            "Enabled": True,
            "SchemaConfiguration": {"RoleARN": f"arn:aws:iam::{ACCOUNT}:role/glue", "DatabaseName": "analytics",
                                    "TableName": table, "Region": "us-east-1", "VersionId": "LATEST"},
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": serializer or {
                "ParquetSerDe": {"Compression": compression, "BlockSizeBytes": 67108864, "WriterVersion": "V1"}}},
        },
    }


def files(root, prefix=""):
    found = []
    for directory, _, names in os.walk(os.path.join(root, prefix)):
        # "#": the local store's file being written, renamed into place when whole.
        found += [os.path.join(directory, n) for n in names if "#" not in n]
    return sorted(found)


def wait(predicate, timeout=30):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.1)
    return predicate()


def test_json_records_become_parquet_rows_of_the_glue_tables_types(endpoint):
    firehose = client(endpoint)
    name, bucket = unique("parquet"), unique("lake")
    firehose.create_delivery_stream(DeliveryStreamName=name,
                                    ExtendedS3DestinationConfiguration=destination(bucket, "clicks/", "GZIP"))
    described = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    conversion = described["Destinations"][0]["ExtendedS3DestinationDescription"]["DataFormatConversionConfiguration"]
    assert conversion["OutputFormatConfiguration"]["Serializer"]["ParquetSerDe"]["Compression"] == "GZIP", conversion
    records = [{"id": i, "page": f"/p/{i % 3}", "ms": i / 8, "ok": i % 2 == 0, "at": "2026-12-05T10:00:00Z",
                "day": "2026-12-05", "price": f"{i}.50", "extra": "not in the table"} for i in range(300)]
    batch = [{"Data": json.dumps(r).encode()} for r in records] + [{"Data": b'{"id": "seven"}'}]
    assert firehose.put_record_batch(DeliveryStreamName=name, Records=batch[:250])["FailedPutCount"] == 0
    assert firehose.put_record_batch(DeliveryStreamName=name, Records=batch[250:])["FailedPutCount"] == 0
    root = os.path.join(BUCKETS, bucket)

    def rows():
        return sum(pq.read_table(f).num_rows for f in files(root, "clicks"))
    assert wait(lambda: rows() == 300), rows()
    objects = files(root, "clicks")
    assert all(f.endswith(".parquet") for f in objects), objects
    table = pq.read_table(objects[0])
    assert table.schema.field("id").type == "int64" and table.schema.field("page").type == "string", table.schema
    assert str(table.schema.field("price").type) == "decimal128(10, 2)", table.schema
    assert "extra" not in table.schema.names
    got = sorted((r for f in objects for r in pq.read_table(f).to_pylist()), key=lambda r: r["id"])
    assert [r["id"] for r in got] == list(range(300))
    assert got[17]["page"] == "/p/2" and got[17]["ms"] == 17 / 8 and got[17]["ok"] is False
    assert got[17]["price"] == decimal.Decimal("17.50") and got[17]["day"] == datetime.date(2026, 12, 5)
    assert got[17]["at"] == datetime.datetime(2026, 12, 5, 10, 0, tzinfo=datetime.timezone.utc), got[17]["at"]
    assert pq.ParquetFile(objects[0]).metadata.row_group(0).column(0).compression == "GZIP"
    assert wait(lambda: files(root, "errors/format-conversion-failed"))
    with open(files(root, "errors/format-conversion-failed")[0]) as f:
        envelope = json.loads(f.readline())
    assert envelope["errorCode"] == "DataFormatConversion.MalformedData", envelope
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_partitioned_parquet_objects(endpoint):
    firehose = client(endpoint)
    name, bucket = unique("parquet"), unique("lake")
    config = destination(bucket, "page=!{partitionKeyFromQuery:page}/")
    config["DynamicPartitioningConfiguration"] = {"Enabled": True}
    config["ProcessingConfiguration"] = {"Enabled": True, "Processors": [{"Type": "MetadataExtraction", "Parameters": [
        {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{page: .page}"},
        {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]}
    firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=config)
    batch = [{"Data": json.dumps({"id": i, "page": ["home", "cart"][i % 2]}).encode()} for i in range(40)]
    firehose.put_record_batch(DeliveryStreamName=name, Records=batch)
    root = os.path.join(BUCKETS, bucket)
    assert wait(lambda: files(root, "page=home") and files(root, "page=cart"))
    for page in ("home", "cart"):
        (path,) = files(root, f"page={page}")
        assert pq.read_table(path).column("page").to_pylist() == [page] * 20
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_orc_unknown_tables_and_compressed_objects_are_refused(endpoint):
    firehose = client(endpoint)
    bucket = unique("lake")
    for config, words in [
        (destination(bucket, "x/", serializer={"OrcSerDe": {}}), "ORC"),
        (destination(bucket, "x/", table="missing"), "not found"),
        (dict(destination(bucket, "x/"), CompressionFormat="GZIP"), "UNCOMPRESSED"),
    ]:
        error = expect_error("InvalidArgumentException", firehose.create_delivery_stream,
                             DeliveryStreamName=unique("bad"), ExtendedS3DestinationConfiguration=config)
        assert words in error.response["Error"]["Message"], error.response


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
