"""Firehose's Redshift destination through `sluice serve`, loading into a real PostgreSQL
server (Redshift speaks its protocol), with boto3's `firehose` client unchanged: JSON and
CSV records become rows exactly once, a database refusing the credentials leaves a COPY
manifest of the staged object, copy options and tables this server cannot honour are
refused.
Usage: python3 firehose_postgres_suite.py URL BUCKET_DIR PSQL PORT"""

import json
import os
import subprocess
import sys
import time

import harness
from botocore.exceptions import ClientError
from firehose_suite import client
from harness import unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
BUCKETS = sys.argv[2] if __name__ == "__main__" else None
PSQL = sys.argv[3] if __name__ == "__main__" else None
PORT = sys.argv[4] if __name__ == "__main__" else None
ACCOUNT = "000000000000"


def sql(statement):
    out = subprocess.run([PSQL, "-h", "127.0.0.1", "-p", PORT, "-U", "sluice", "-d", "postgres",
                          "-At", "-v", "ON_ERROR_STOP=1", "-c", statement],
                         env=dict(os.environ, PGPASSWORD="sluice"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def configuration(bucket, table, columns=None, options="JSON 'auto'", password="sluice", retry=60):
    copy = {"DataTableName": table, "CopyOptions": options}
    if columns:
        copy["DataTableColumns"] = columns
    return {
        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
        "ClusterJDBCURL": f"jdbc:redshift://127.0.0.1:{PORT}/postgres",
        "CopyCommand": copy,
        "Username": "sluice",
        "Password": password,
        "RetryOptions": {"DurationInSeconds": retry},
        "S3Configuration": {
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "stage/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
            "CompressionFormat": "GZIP",
        },
    }


def wait(predicate, timeout=30):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.1)
    return predicate()


def files(root):
    found = {}
    for directory, _, names in os.walk(root):
        # "#": the local store's file being written, renamed into place when whole.
        for name in (n for n in names if "#" not in n):
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def test_json_records_become_rows_exactly_once(endpoint):
    firehose = client(endpoint)
    table = unique("clicks").replace("-", "_")
    sql(f"CREATE TABLE {table} (id int, page text, ms bigint)")
    name = unique("redshift")
    firehose.create_delivery_stream(DeliveryStreamName=name,
                                    RedshiftDestinationConfiguration=configuration(unique("stage"), table))
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    redshift = description["Destinations"][0]["RedshiftDestinationDescription"]
    assert redshift["CopyCommand"] == {"DataTableName": table, "CopyOptions": "JSON 'auto'"}, redshift
    assert redshift["ClusterJDBCURL"] == f"jdbc:redshift://127.0.0.1:{PORT}/postgres", redshift
    assert redshift["Username"] == "sluice" and "Password" not in redshift, redshift
    assert redshift["S3DestinationDescription"]["CompressionFormat"] == "GZIP", redshift
    records = [{"id": i, "page": f"/p/{i % 5}", "ms": 1000 + i} for i in range(200)]
    for start in range(0, 200, 100):
        batch = [{"Data": (json.dumps(r) + "\n").encode()} for r in records[start:start + 100]]
        assert firehose.put_record_batch(DeliveryStreamName=name, Records=batch)["FailedPutCount"] == 0
    assert wait(lambda: sql(f"SELECT count(*) FROM {table}") == ["200"]), sql(f"SELECT count(*) FROM {table}")
    time.sleep(1.5)
    assert sql(f"SELECT count(*), count(DISTINCT id), sum(ms) FROM {table}") == [f"200|200|{sum(1000 + i for i in range(200))}"]
    loads = sql(f"SELECT count(*), sum(records) FROM sluice_firehose_loads WHERE delivery_stream = '{name}'")
    assert loads[0].endswith("|200"), loads
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_source_records_are_backed_up_beside_the_load(endpoint):
    firehose = client(endpoint)
    table = unique("views").replace("-", "_")
    sql(f"CREATE TABLE {table} (id int, page text, ms bigint)")
    name, vault = unique("redshift"), unique("vault")
    config = configuration(unique("stage"), table)
    config["S3BackupMode"] = "Enabled"
    config["S3BackupConfiguration"] = {"RoleARN": f"arn:aws:iam::{ACCOUNT}:role/vault",
                                       "BucketARN": f"arn:aws:s3:::{vault}", "Prefix": "source/",
                                       "CompressionFormat": "UNCOMPRESSED"}
    firehose.create_delivery_stream(DeliveryStreamName=name, RedshiftDestinationConfiguration=config)
    redshift = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
        "Destinations"][0]["RedshiftDestinationDescription"]
    assert redshift["S3BackupMode"] == "Enabled", redshift
    assert redshift["S3BackupDescription"]["BucketARN"] == f"arn:aws:s3:::{vault}", redshift
    records = [(json.dumps({"id": i, "page": "/", "ms": i}) + "\n").encode() for i in range(40)]
    assert firehose.put_record_batch(DeliveryStreamName=name,
                                     Records=[{"Data": r} for r in records])["FailedPutCount"] == 0
    assert wait(lambda: sql(f"SELECT count(*) FROM {table}") == ["40"]), sql(f"SELECT count(*) FROM {table}")

    def backed_up():
        return b"".join(body for _, body in sorted(files(os.path.join(BUCKETS, vault)).items()))

    assert wait(lambda: backed_up() == b"".join(records)), backed_up()[:200]
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_csv_records_fill_the_named_columns(endpoint):
    firehose = client(endpoint)
    table = unique("people").replace("-", "_")
    sql(f"CREATE TABLE {table} (name text, age int, city text DEFAULT 'unknown')")
    name = unique("redshift")
    config = configuration(unique("stage"), table, columns="name,age", options="CSV DELIMITER AS ';'")
    config["ProcessingConfiguration"] = {"Enabled": True, "Processors": [{"Type": "AppendDelimiterToRecord"}]}
    firehose.create_delivery_stream(DeliveryStreamName=name, RedshiftDestinationConfiguration=config)
    rows = [b"ada;36", b'"grace; admiral";85', b"linus;"]
    firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r} for r in rows])
    assert wait(lambda: sql(f"SELECT count(*) FROM {table}") == ["3"])
    assert sql(f"SELECT name, coalesce(age::text, 'null'), city FROM {table} ORDER BY name") == \
        ["ada|36|unknown", "grace; admiral|85|unknown", "linus|null|unknown"]
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_refused_credentials_leave_a_manifest_of_the_staged_object(endpoint):
    firehose = client(endpoint)
    bucket = unique("stage")
    name = unique("redshift")
    config = configuration(bucket, "nowhere", password="wrong-password", retry=1)
    firehose.create_delivery_stream(DeliveryStreamName=name, RedshiftDestinationConfiguration=config)
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b'{"id": 1}\n'})
    root = os.path.join(BUCKETS, bucket)
    manifests = lambda: {k: v for k, v in files(root).items() if k.startswith("errors/manifests/")}  # noqa: E731
    assert wait(manifests), files(root)
    ((_, body),) = manifests().items()
    (entry,) = json.loads(body)["entries"]
    staged = [k for k in files(root) if k.startswith("stage/")]
    assert entry == {"url": f"s3://{bucket}/{staged[0]}", "mandatory": True}, (entry, staged)
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_copy_options_urls_and_tables_it_cannot_honour_are_refused(endpoint):
    firehose = client(endpoint)
    bucket = unique("stage")
    bad = [
        configuration(bucket, "t", options="JSON 's3://bucket/jsonpaths.json'"),
        configuration(bucket, "t", options="TIMEFORMAT 'auto'"),
        configuration(bucket, "t; DROP TABLE x"),
        dict(configuration(bucket, "t"), ClusterJDBCURL="jdbc:mysql://127.0.0.1/x"),
        # Enabled needs its S3BackupConfiguration.
        dict(configuration(bucket, "t"), S3BackupMode="Enabled"),
    ]
    for config in bad:
        try:
            firehose.create_delivery_stream(DeliveryStreamName=unique("bad"), RedshiftDestinationConfiguration=config)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidArgumentException", e.response
        else:
            raise AssertionError(f"accepted: {config}")


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
