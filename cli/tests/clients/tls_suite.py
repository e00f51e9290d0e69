"""`sluice serve --tls-cert … --tls-key …`: boto3 over HTTPS (verifying the test's own CA),
a subscription over TLS, and HTTP/2 negotiated by ALPN (curl). Usage:
python3 tls_suite.py https://127.0.0.1:PORT CA.pem"""

import subprocess
import sys
import urllib.parse

import boto3
from botocore.config import Config

import harness
from harness import unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
CA = sys.argv[2] if __name__ == "__main__" else None


def test_boto3_over_https_puts_reads_and_subscribes(endpoint):
    k = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                     aws_secret_access_key="secret", verify=CA, config=Config(retries={"max_attempts": 1}))
    name = unique("tls")
    k.create_stream(StreamName=name, ShardCount=1)
    put = k.put_record(StreamName=name, PartitionKey="k", Data=b"over tls")
    arn = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="tls")["Consumer"]["ConsumerARN"]
    out = k.subscribe_to_shard(ConsumerARN=consumer, ShardId=put["ShardId"], StartingPosition={"Type": "TRIM_HORIZON"})
    for event in out["EventStream"]:
        records = event["SubscribeToShardEvent"]["Records"]
        if records:
            assert records[0]["Data"] == b"over tls"
            break
    out["EventStream"].close()


def test_http2_is_negotiated_by_alpn(endpoint):
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", CA, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
         "-H", "Content-Type: application/x-amz-json-1.1", "-H", "X-Amz-Target: Kinesis_20131202.ListStreams",
         "--data-binary", "{}", endpoint + "/"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out == "2 200", out


def test_a_tls_connection_idle_after_its_handshake_is_closed(endpoint):
    # The server runs with --first-request-timeout-ms 1000.
    import socket
    import ssl
    import time
    host, port = urllib.parse.urlsplit(endpoint).hostname, urllib.parse.urlsplit(endpoint).port
    context = ssl.create_default_context(cafile=CA)
    started = time.monotonic()
    with socket.create_connection((host, port)) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.settimeout(20)
            try:
                closed = tls.recv(1) == b""
            except (ConnectionResetError, ssl.SSLError):
                closed = True
    assert closed, "the server sent data to a client that asked for nothing"
    assert time.monotonic() - started < 15, "closed by the client's timeout, not by the server"


def test_untrusted_clients_fail_the_handshake(endpoint):
    done = subprocess.run(["curl", "-sS", "-o", "/dev/null", endpoint + "/health"], capture_output=True, text=True)
    assert done.returncode != 0 and "certificate" in done.stderr.lower(), done.stderr


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
