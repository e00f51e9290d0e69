"""Firehose's HTTP endpoint destination through `sluice serve`, with boto3's `firehose`
client unchanged and a local endpoint (http_endpoint.py): requests as Firehose sends them
(headers, gzip, base64 records, one request id across attempts), 5xx and timeouts tried
again, a 413 not, records past the retry duration in the backup bucket's error output.
An https:// endpoint is reached over TLS, its certificate checked.
Usage: python3 firehose_http_suite.py URL BUCKET_DIR ENDPOINT_URL REQUEST_LOG TLS_ENDPOINT_URL"""

import base64
import json
import os
import sys
import time

import harness
from botocore.exceptions import ClientError
from firehose_suite import client
from harness import unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
BUCKETS = sys.argv[2] if __name__ == "__main__" else None
TARGET = sys.argv[3] if __name__ == "__main__" else None
LOG = sys.argv[4] if __name__ == "__main__" else None
# The same endpoint over TLS (https://127.0.0.1:PORT), its CA trusted by the server alone.
TLS_TARGET = sys.argv[5] if __name__ == "__main__" else None
ACCOUNT = "000000000000"


def configuration(path, bucket, retry_seconds=60, gzip=False, target=None):
    return {
        "EndpointConfiguration": {"Url": (target or TARGET) + path, "Name": "collector", "AccessKey": "k3y"},
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        "RequestConfiguration": {
            "ContentEncoding": "GZIP" if gzip else "NONE",
            "CommonAttributes": [{"AttributeName": "team", "AttributeValue": "web"}],
        },
        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
        "RetryOptions": {"DurationInSeconds": retry_seconds},
        "S3BackupMode": "FailedDataOnly",
        "S3Configuration": {
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/backup",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "CompressionFormat": "UNCOMPRESSED",
        },
    }


def create(firehose, path, bucket, **kwargs):
    name = unique("http")
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        HttpEndpointDestinationConfiguration=configuration(path, bucket, **kwargs))
    return name


def requests(name):
    """The requests the endpoint saw for delivery stream `name`."""
    if not os.path.exists(LOG):
        return []
    with open(LOG) as log:
        seen = [json.loads(line) for line in log]
    headers = lambda r: {k.lower(): v for k, v in r["headers"].items()}  # noqa: E731
    return [dict(r, headers=headers(r)) for r in seen
            if headers(r)["x-amz-firehose-source-arn"].endswith("/" + name)]


def data(request):
    return [base64.b64decode(r["data"]).decode() for r in request["body"]["records"]]


def envelopes(root):
    found = []
    for directory, _, names in os.walk(root):
        # "#": the local store's file being written, renamed into place when whole.
        for name in (n for n in names if "#" not in n):
            with open(os.path.join(directory, name)) as f:
                found += [(os.path.relpath(os.path.join(directory, name), root), json.loads(line))
                          for line in f.read().splitlines()]
    return found


def wait(predicate, timeout=30):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.1)
    return predicate()


def test_records_reach_the_endpoint_as_firehose_sends_them_under_one_id_across_retries(endpoint):
    firehose = client(endpoint)
    name = create(firehose, "/flaky", unique("backup"), gzip=True)
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    http = description["Destinations"][0]["HttpEndpointDestinationDescription"]
    assert http["EndpointConfiguration"] == {"Url": TARGET + "/flaky", "Name": "collector"}, http
    assert http["RequestConfiguration"]["ContentEncoding"] == "GZIP", http
    assert http["RetryOptions"] == {"DurationInSeconds": 60} and http["S3BackupMode"] == "FailedDataOnly", http
    assert http["S3DestinationDescription"]["RoleARN"].endswith(":role/backup"), http
    records = [f"event-{i}" for i in range(20)]
    reply = firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r.encode()} for r in records])
    assert reply["FailedPutCount"] == 0, reply
    assert wait(lambda: len(requests(name)) >= 2), requests(name)
    first, second = requests(name)[:2]
    assert first["headers"]["x-amz-firehose-request-id"] == second["headers"]["x-amz-firehose-request-id"]
    assert first["body"]["requestId"] == first["headers"]["x-amz-firehose-request-id"]
    assert data(first) == records and data(second) == records
    headers = second["headers"]
    assert headers["x-amz-firehose-access-key"] == "k3y", headers
    assert headers["x-amz-firehose-protocol-version"] == "1.0", headers
    assert headers["content-encoding"] == "gzip" and headers["content-type"] == "application/json", headers
    assert json.loads(headers["x-amz-firehose-common-attributes"]) == {"commonAttributes": {"team": "web"}}
    assert headers["x-amz-firehose-source-arn"] == \
        f"arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/{name}", headers
    time.sleep(2.5)
    assert len(requests(name)) == 2, "taken on the second attempt, sent no more"
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_all_data_mode_backs_up_every_record_in_the_bucket(endpoint):
    firehose, bucket = client(endpoint), unique("backup")
    name = unique("http")
    config = dict(configuration("/ok", bucket), S3BackupMode="AllData")
    config["S3Configuration"]["Prefix"] = "all/"
    firehose.create_delivery_stream(DeliveryStreamName=name, HttpEndpointDestinationConfiguration=config)
    http = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
        "Destinations"][0]["HttpEndpointDestinationDescription"]
    assert http["S3BackupMode"] == "AllData", http
    records = [f"event-{i}" for i in range(30)]
    assert firehose.put_record_batch(DeliveryStreamName=name,
                                     Records=[{"Data": r.encode()} for r in records])["FailedPutCount"] == 0
    assert wait(lambda: len(requests(name)) >= 1), requests(name)
    assert data(requests(name)[0]) == records
    root = os.path.join(BUCKETS, bucket, "all")

    def backed_up():
        found = b""
        for directory, _, names in os.walk(root):
            for file in sorted(n for n in names if "#" not in n):
                with open(os.path.join(directory, file), "rb") as f:
                    found += f.read()
        return found

    assert wait(lambda: backed_up() == "".join(records).encode()), backed_up()
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_an_https_endpoint_is_reached_over_tls_and_an_untrusted_name_is_refused(endpoint):
    firehose, bucket = client(endpoint), unique("backup")
    name = create(firehose, "/ok", bucket, target=TLS_TARGET)
    records = [f"sealed-in-transit-{i}" for i in range(10)]
    assert firehose.put_record_batch(DeliveryStreamName=name,
                                     Records=[{"Data": r.encode()} for r in records])["FailedPutCount"] == 0
    assert wait(lambda: len(requests(name)) >= 1), requests(name)
    assert data(requests(name)[0]) == records
    # "localhost" is not a name the certificate holds: the handshake fails, and with no
    # retry duration the records go straight to the error output, saying why.
    port = TLS_TARGET.rsplit(":", 1)[1]
    refused = create(firehose, "/ok", bucket, retry_seconds=0, target=f"https://localhost:{port}")
    firehose.put_record(DeliveryStreamName=refused, Record={"Data": b"never-sent"})
    root = os.path.join(BUCKETS, bucket, "http-endpoint-failed")
    assert wait(lambda: envelopes(root)), "no error output"
    (_, failed), = envelopes(root)
    assert failed["errorCode"] == "HttpEndpoint.SSLHandshakeFailure", failed
    assert base64.b64decode(failed["rawData"]) == b"never-sent", failed
    assert requests(refused) == []


def test_a_request_that_times_out_is_sent_again(endpoint):
    firehose = client(endpoint)
    name = create(firehose, "/slow", unique("backup"))
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b"patient"})
    assert wait(lambda: len(requests(name)) >= 2), requests(name)
    ids = {r["body"]["requestId"] for r in requests(name)}
    assert len(ids) == 1 and all(data(r) == ["patient"] for r in requests(name))
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_a_413_is_not_sent_again_and_its_records_land_in_the_backup_bucket(endpoint):
    firehose = client(endpoint)
    bucket = unique("backup")
    name = create(firehose, "/toolarge", bucket)
    firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": b"big-0"}, {"Data": b"big-1"}])
    root = os.path.join(BUCKETS, bucket)
    assert wait(lambda: len(envelopes(root)) == 2), envelopes(root)
    time.sleep(1)
    assert len(requests(name)) == 1, requests(name)
    for key, envelope in envelopes(root):
        assert key.startswith("http-endpoint-failed/"), key
        assert envelope["errorCode"] == "HttpEndpoint.DestinationException", envelope
        assert "413" in envelope["errorMessage"] and envelope["attemptsMade"] == 1, envelope
    assert sorted(base64.b64decode(e["rawData"]) for _, e in envelopes(root)) == [b"big-0", b"big-1"]
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_records_past_the_retry_duration_land_in_the_backup_bucket(endpoint):
    firehose = client(endpoint)
    bucket = unique("backup")
    name = create(firehose, "/down", bucket, retry_seconds=2)
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b"unlucky"})
    root = os.path.join(BUCKETS, bucket)
    assert wait(lambda: envelopes(root)), envelopes(root)
    ((key, envelope),) = envelopes(root)
    attempts = requests(name)
    assert len(attempts) >= 2 and envelope["attemptsMade"] == len(attempts), (envelope, len(attempts))
    assert len({r["body"]["requestId"] for r in attempts}) == 1
    assert base64.b64decode(envelope["rawData"]) == b"unlucky" and "503" in envelope["errorMessage"]
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_settings_not_built_or_out_of_range_are_refused(endpoint):
    firehose = client(endpoint)
    bucket = unique("backup")
    bad = [
        dict(configuration("/ok", bucket), S3BackupMode="Everything"),
        dict(configuration("/ok", bucket), RequestConfiguration={"ContentEncoding": "BROTLI"}),
        dict(configuration("/ok", bucket), RetryOptions={"DurationInSeconds": 7201}),
        dict(configuration("/ok", bucket), BufferingHints={"SizeInMBs": 65, "IntervalInSeconds": 60}),
        dict(configuration("/ok", bucket), EndpointConfiguration={"Url": "ftp://127.0.0.1/"}),
    ]
    for config in bad:
        try:
            firehose.create_delivery_stream(DeliveryStreamName=unique("bad"),
                                            HttpEndpointDestinationConfiguration=config)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidArgumentException", e.response
        else:
            raise AssertionError(f"accepted: {config}")


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
