"""The wire itself, below any SDK: every operation in CBOR 1.1 (as the Java SDK v2 sends it,
timestamps as tag 1 + epoch milliseconds (replies: untagged milliseconds), blobs as byte strings), the event stream of
SubscribeToShard, HTTP/2 (h2c) through curl, and malformed requests, which must get the
exact Kinesis error and never a 500. Usage: python3 wire_suite.py http://127.0.0.1:PORT"""

import http.client
import json
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib

import cbor2

import harness
from harness import unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
JSON = "application/x-amz-json-1.1"
CBOR = "application/x-amz-cbor-1.1"


def post(endpoint, target, body, content_type=JSON, method="POST", headers=None):
    """Sends raw bytes; returns (status, headers, body bytes)."""
    url = urllib.parse.urlparse(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    all_headers = {"Content-Type": content_type}
    if target is not None:
        all_headers["X-Amz-Target"] = f"Kinesis_20131202.{target}"
    all_headers.update(headers or {})
    conn.request(method, "/", body=body, headers=all_headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def cbor_call(endpoint, target, request, expect_status=200):
    status, headers, body = post(endpoint, target, cbor2.dumps(request), CBOR)
    assert headers["content-type"] == CBOR, headers
    assert headers.get("x-amzn-requestid"), "every reply has a request id"
    decoded = cbor2.loads(body) if body else {}
    assert status == expect_status, (target, status, decoded)
    return decoded


def json_call(endpoint, target, request, expect_status=200):
    status, headers, body = post(endpoint, target, json.dumps(request).encode(), JSON)
    decoded = json.loads(body) if body else {}
    assert status == expect_status, (target, status, decoded)
    return decoded


def ms_tag(ms):
    """A timestamp the way the Java SDK writes it."""
    return cbor2.CBORTag(1, ms)


def read_event_stream(data):
    """Parses event-stream frames, checking both CRCs; yields (headers, payload)."""
    offset = 0
    while offset < len(data):
        total, headers_len, prelude_crc = struct.unpack_from(">III", data, offset)
        assert zlib.crc32(data[offset : offset + 8]) == prelude_crc, "prelude CRC"
        message = data[offset : offset + total]
        (message_crc,) = struct.unpack_from(">I", message, total - 4)
        assert zlib.crc32(message[:-4]) == message_crc, "message CRC"
        headers, pos = {}, 12
        while pos < 12 + headers_len:
            name_len = message[pos]
            name = message[pos + 1 : pos + 1 + name_len].decode()
            pos += 1 + name_len
            kind = message[pos]
            assert kind == 7, f"string headers only, got type {kind}"
            (value_len,) = struct.unpack_from(">H", message, pos + 1)
            headers[name] = message[pos + 3 : pos + 3 + value_len].decode()
            pos += 3 + value_len
        yield headers, message[12 + headers_len : total - 4]
        offset += total


def test_every_operation_round_trips_in_cbor(endpoint):
    e = endpoint
    name = unique("cbor")
    cbor_call(e, "CreateStream", {"StreamName": name, "ShardCount": 2, "Tags": {"t": "1"}})
    desc = cbor_call(e, "DescribeStream", {"StreamName": name})["StreamDescription"]
    arn = desc["StreamARN"]
    created = desc["StreamCreationTimestamp"]
    assert isinstance(created, int) and abs(created - time.time() * 1000) < 600_000, "epoch milliseconds"
    summary = cbor_call(e, "DescribeStreamSummary", {"StreamARN": arn})["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    assert name in cbor_call(e, "ListStreams", {})["StreamNames"]
    big = bytes(range(256)) * 256  # 64 KiB: past ciborium's 4 KiB scratch buffer
    assert cbor_call(e, "PutRecord", {"StreamName": name, "PartitionKey": "big", "Data": big, "ExplicitHashKey": "1"})["ShardId"] == "shardId-000000000000"
    # An indefinite-length byte string (chunks), as streaming CBOR encoders write them.
    chunked = b"\xa4" + cbor2.dumps("StreamName")[0:] + cbor2.dumps(name) + cbor2.dumps("PartitionKey") + cbor2.dumps("chunked") \
        + cbor2.dumps("ExplicitHashKey") + cbor2.dumps("1") + cbor2.dumps("Data") + b"\x5f" + cbor2.dumps(b"ab") + cbor2.dumps(b"cd") + b"\xff"
    status, _, body = post(e, "PutRecord", chunked, CBOR)
    assert status == 200, cbor2.loads(body)
    put = cbor_call(e, "PutRecord", {"StreamName": name, "PartitionKey": "k", "Data": b"\x00\xffbinary", "ExplicitHashKey": "0"})
    assert put["ShardId"] == "shardId-000000000000"
    puts = cbor_call(e, "PutRecords", {"StreamARN": arn, "Records": [{"PartitionKey": "k", "Data": b"two", "ExplicitHashKey": "1"}]})
    assert puts["FailedRecordCount"] == 0
    before_ms = int(time.time() * 1000) - 60_000
    it = cbor_call(e, "GetShardIterator", {"StreamName": name, "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ms_tag(before_ms)})["ShardIterator"]
    got = cbor_call(e, "GetRecords", {"ShardIterator": it})
    assert [r["Data"] for r in got["Records"]] == [big, b"abcd", b"\x00\xffbinary", b"two"], "blobs are byte strings"
    assert got["Records"][0]["ApproximateArrivalTimestamp"] >= before_ms
    untagged = cbor_call(e, "GetShardIterator", {"StreamName": name, "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": before_ms})
    assert [r["Data"] for r in cbor_call(e, "GetRecords", {"ShardIterator": untagged["ShardIterator"]})["Records"]][0] == big, "untagged epoch ms works too"
    shards = cbor_call(e, "ListShards", {"StreamName": name, "ShardFilter": {"Type": "FROM_TIMESTAMP", "Timestamp": ms_tag(before_ms)}})["Shards"]
    assert len(shards) == 2
    cbor_call(e, "SplitShard", {"StreamName": name, "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": str(2**125)})
    cbor_call(e, "MergeShards", {"StreamName": name, "ShardToMerge": "shardId-000000000002", "AdjacentShardToMerge": "shardId-000000000003"})
    count = cbor_call(e, "UpdateShardCount", {"StreamName": name, "TargetShardCount": 4, "ScalingType": "UNIFORM_SCALING"})
    assert count["TargetShardCount"] == 4
    cbor_call(e, "IncreaseStreamRetentionPeriod", {"StreamName": name, "RetentionPeriodHours": 72})
    cbor_call(e, "DecreaseStreamRetentionPeriod", {"StreamName": name, "RetentionPeriodHours": 48})
    cbor_call(e, "UpdateMaxRecordSize", {"StreamARN": arn, "MaxRecordSizeInKiB": 2048})
    cbor_call(e, "AddTagsToStream", {"StreamName": name, "Tags": {"u": "2"}})
    cbor_call(e, "RemoveTagsFromStream", {"StreamName": name, "TagKeys": ["t"]})
    assert cbor_call(e, "ListTagsForStream", {"StreamName": name})["Tags"] == [{"Key": "u", "Value": "2"}]
    cbor_call(e, "TagResource", {"ResourceARN": arn, "Tags": {"v": "3"}})
    cbor_call(e, "UntagResource", {"ResourceARN": arn, "TagKeys": ["u"]})
    assert cbor_call(e, "ListTagsForResource", {"ResourceARN": arn})["Tags"] == [{"Key": "v", "Value": "3"}]
    consumer = cbor_call(e, "RegisterStreamConsumer", {"StreamARN": arn, "ConsumerName": "c1"})["Consumer"]
    assert consumer["ConsumerCreationTimestamp"] >= before_ms
    assert cbor_call(e, "DescribeStreamConsumer", {"ConsumerARN": consumer["ConsumerARN"]})["ConsumerDescription"]["ConsumerName"] == "c1"
    assert len(cbor_call(e, "ListStreamConsumers", {"StreamARN": arn})["Consumers"]) == 1
    cbor_call(e, "DeregisterStreamConsumer", {"StreamARN": arn, "ConsumerName": "c1"})
    cbor_call(e, "StartStreamEncryption", {"StreamName": name, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"})
    cbor_call(e, "StopStreamEncryption", {"StreamName": name, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"})
    assert cbor_call(e, "EnableEnhancedMonitoring", {"StreamName": name, "ShardLevelMetrics": ["ALL"]})["DesiredShardLevelMetrics"]
    cbor_call(e, "DisableEnhancedMonitoring", {"StreamName": name, "ShardLevelMetrics": ["ALL"]})
    cbor_call(e, "PutResourcePolicy", {"ResourceARN": arn, "Policy": '{"Statement": []}'})
    assert cbor_call(e, "GetResourcePolicy", {"ResourceARN": arn})["Policy"] == '{"Statement": []}'
    cbor_call(e, "DeleteResourcePolicy", {"ResourceARN": arn})
    cbor_call(e, "UpdateAccountSettings", {"MinimumThroughputBillingCommitment": {"Status": "DISABLED"}})
    assert cbor_call(e, "DescribeAccountSettings", {})["MinimumThroughputBillingCommitment"]["Status"] == "DISABLED"
    assert cbor_call(e, "DescribeLimits", {})["ShardLimit"] >= 1
    cbor_call(e, "UpdateStreamMode", {"StreamARN": arn, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}})
    assert cbor_call(e, "UpdateStreamWarmThroughput", {"StreamARN": arn, "WarmThroughputMiBps": 10})["WarmThroughput"]["TargetMiBps"] == 10
    cbor_call(e, "DeleteStream", {"StreamName": name})
    error = cbor_call(e, "DescribeStream", {"StreamName": name}, expect_status=400)
    assert error == {"__type": "ResourceNotFoundException", "message": f"Stream {name} under account 000000000000 not found."}


def subscribe_raw(endpoint, protocol, consumer_arn, shard, want_records):
    """SubscribeToShard over HTTP/1.1; returns the frames read until `want_records` arrived."""
    encode = cbor2.dumps if protocol == CBOR else (lambda v: json.dumps(v).encode())
    url = urllib.parse.urlparse(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", "/", body=encode({"ConsumerARN": consumer_arn, "ShardId": shard, "StartingPosition": {"Type": "TRIM_HORIZON"}}), headers={"Content-Type": protocol, "X-Amz-Target": "Kinesis_20131202.SubscribeToShard"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type") == "application/vnd.amazon.eventstream"
    data, frames, records = b"", [], 0
    while records < want_records:
        chunk = response.read1(65536)
        assert chunk, "the stream ended early"
        data += chunk
        frames = list(read_event_stream_complete(data))
        records = sum(len(decode(protocol, p).get("Records", [])) for h, p in frames if h[":event-type"] == "SubscribeToShardEvent")
    conn.close()
    return frames


def read_event_stream_complete(data):
    """The complete frames at the start of `data`."""
    offset = 0
    while offset + 4 <= len(data):
        (total,) = struct.unpack_from(">I", data, offset)
        if offset + total > len(data):
            break
        offset += total
    return read_event_stream(data[:offset])


def decode(protocol, payload):
    return cbor2.loads(payload) if protocol == CBOR else json.loads(payload)


def test_subscribe_to_shard_event_stream_in_both_protocols(endpoint):
    e = endpoint
    name = unique("sub")
    json_call(e, "CreateStream", {"StreamName": name, "ShardCount": 1})
    arn = json_call(e, "DescribeStreamSummary", {"StreamName": name})["StreamDescriptionSummary"]["StreamARN"]
    for i in range(3):
        json_call(e, "PutRecord", {"StreamName": name, "PartitionKey": "k", "Data": "AAE="})
    for protocol, consumer in ((JSON, "json-consumer"), (CBOR, "cbor-consumer")):
        consumer_arn = json_call(e, "RegisterStreamConsumer", {"StreamARN": arn, "ConsumerName": consumer})["Consumer"]["ConsumerARN"]
        frames = subscribe_raw(e, protocol, consumer_arn, "shardId-000000000000", 3)
        first_headers, first_payload = frames[0]
        assert first_headers[":message-type"] == "event" and first_headers[":event-type"] == "initial-response"
        assert decode(protocol, first_payload) == {}
        events = [decode(protocol, p) for h, p in frames[1:]]
        assert all(h[":content-type"] == protocol for h, _ in frames)
        records = [r for ev in events for r in ev["Records"]]
        assert [r["Data"] for r in records] == ([b"\x00\x01"] * 3 if protocol == CBOR else ["AAE="] * 3)
        assert events[-1]["MillisBehindLatest"] == 0 and events[-1]["ContinuationSequenceNumber"]


def test_http2_cleartext_serves_requests_and_subscriptions(endpoint):
    name = unique("h2")
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\\n%{http_version} %{http_code}", "-H", f"Content-Type: {JSON}", "-H", "X-Amz-Target: Kinesis_20131202.CreateStream", "--data-binary", json.dumps({"StreamName": name, "ShardCount": 1}), endpoint + "/"],
        capture_output=True, check=True, text=True,
    ).stdout
    assert out.strip().endswith("2 200"), out
    json_call(endpoint, "PutRecord", {"StreamName": name, "PartitionKey": "k", "Data": "aGk="})
    arn = json_call(endpoint, "DescribeStreamSummary", {"StreamName": name})["StreamDescriptionSummary"]["StreamARN"]
    consumer = json_call(endpoint, "RegisterStreamConsumer", {"StreamARN": arn, "ConsumerName": "h2"})["Consumer"]["ConsumerARN"]
    body = json.dumps({"ConsumerARN": consumer, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "TRIM_HORIZON"}})
    raw = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "2", "-H", f"Content-Type: {JSON}", "-H", "X-Amz-Target: Kinesis_20131202.SubscribeToShard", "--data-binary", body, endpoint + "/"],
        capture_output=True,
    ).stdout  # curl stops after 2 s (exit 28); what arrived by then is checked
    frames = list(read_event_stream_complete(raw))
    assert frames[0][0][":event-type"] == "initial-response"
    assert [r["Data"] for r in json.loads(frames[1][1])["Records"]] == ["aGk="]


def expect(endpoint, target, body, status, error, content_type=JSON, method="POST"):
    got_status, headers, data = post(endpoint, target, body, content_type, method)
    assert got_status == status, (target, body[:80], got_status, data[:200])
    decoded = cbor2.loads(data) if content_type == CBOR else json.loads(data)
    assert decoded["__type"] == error, decoded
    assert headers["x-amzn-errortype"] == error
    return decoded["message"]


def test_malformed_requests_get_kinesis_errors_never_500(endpoint):
    e = endpoint
    name = unique("bad")
    json_call(e, "CreateStream", {"StreamName": name, "ShardCount": 1})
    expect(e, "CreateStream", b"{not json", 400, "SerializationException")
    expect(e, "CreateStream", b"\xff\xff\xff", 400, "SerializationException", CBOR)
    expect(e, "CreateStream", json.dumps({"StreamName": name, "ShardCount": "two"}).encode(), 400, "SerializationException")
    expect(e, "CreateStream", json.dumps({"StreamName": 7}).encode(), 400, "SerializationException")
    expect(e, "CreateStream", b"[]", 400, "SerializationException")
    # The members as a list, in order: serde would take it, no AWS protocol does.
    listed = unique("listed")
    expect(e, "CreateStream", json.dumps([listed, 1]).encode(), 400, "SerializationException")
    expect(e, "CreateStream", cbor2.dumps([listed, 1]), 400, "SerializationException", CBOR)
    expect(e, "CreateStream", cbor2.dumps({"StreamName": listed, "ShardCount": 1}) + b"\x01", 400, "SerializationException", CBOR)
    assert listed not in json_call(e, "ListStreams", {"Limit": 10000})["StreamNames"], "nothing was created"
    expect(e, "ListStreams", json.dumps({"NextToken": "garbage"}).encode(), 400, "InvalidArgumentException")
    message = expect(e, "CreateStream", json.dumps({"StreamName": listed, "ShardCount": 2**32 + 1}).encode(), 400, "ValidationException")
    assert "less than or equal to 100000" in message, message
    message = expect(e, "CreateStream", json.dumps({"StreamName": listed, "ShardCount": 20000}).encode(), 400, "LimitExceededException")
    assert "shard limit" in message, message
    expect(e, "PutRecord", json.dumps({"StreamName": name, "PartitionKey": "k", "Data": "not base64!"}).encode(), 400, "SerializationException")
    expect(e, "PutRecord", cbor2.dumps({"StreamName": name, "PartitionKey": "k", "Data": "text, not bytes"}), 400, "SerializationException", CBOR)
    message = expect(e, "PutRecord", json.dumps({"StreamName": name}).encode(), 400, "ValidationException")
    assert message == ("2 validation errors detected: Value null at 'data' failed to satisfy constraint: Member must not be null; "
                       "Value null at 'partitionKey' failed to satisfy constraint: Member must not be null"), message
    message = expect(e, "PutRecords", json.dumps({"StreamName": name, "Records": [{"PartitionKey": "k", "Data": "", "ExplicitHashKey": "01"}]}).encode(), 400, "ValidationException")
    assert "at 'records.1.member.explicitHashKey'" in message, message
    expect(e, "GetRecords", json.dumps({"ShardIterator": "x", "Limit": 0}).encode(), 400, "ValidationException")
    expect(e, "GetRecords", json.dumps({"ShardIterator": "x" * 20}).encode(), 400, "InvalidArgumentException")
    expect(e, "NoSuchOperation", b"{}", 400, "UnknownOperationException")
    expect(e, None, b"{}", 400, "UnknownOperationException")
    expect(e, "DescribeStream", b"{}", 403, "AccessDeniedException", method="GET")
    huge = b'{"StreamName":"' + b"a" * (17 << 20) + b'"}'
    status, headers, _ = post(e, "CreateStream", huge)
    assert status == 413, status
    status, _, body = post(e, "DescribeLimits", b"")
    assert status == 200 and "ShardLimit" in json.loads(body), "an empty body is an empty input"
    status, _, body = post(e, "ListStreams", b"{}", "application/json")
    assert status == 200, "plain application/json is JSON 1.1"
    records = json_call(e, "GetRecords", {"ShardIterator": json_call(e, "GetShardIterator", {"StreamName": name, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]})["Records"]
    assert records == [], "no malformed put wrote anything"


def test_every_operation_in_the_model_is_answered(endpoint):
    import botocore.session

    model = botocore.session.get_session().get_service_model("kinesis")
    assert len(model.operation_names) == 39
    for operation in model.operation_names:
        status, headers, body = post(endpoint, operation, b"{}")
        reply = json.loads(body) if body else {}
        assert reply.get("__type") != "UnknownOperationException", operation
        assert status < 500, (operation, status, reply)


def test_health_and_metrics_endpoints(endpoint):
    url = urllib.parse.urlparse(endpoint)
    for path, needle in (("/health", "ok"), ("/metrics", "sluice_request_seconds")):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200 and needle in text, (path, text[:300])


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
