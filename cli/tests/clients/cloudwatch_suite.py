"""CloudWatch through `sluice serve`, as boto3 and the AWS CLI speak it: custom metrics put
and read back in each of CloudWatch's three wire forms (Smithy RPC v2 CBOR, what boto3 uses
today; AWS JSON 1.0; the query protocol of older SDKs), and the Kinesis metrics equal to
the records actually put in each minute. The server verifies signatures (scoped to
`monitoring`). Usage: python3 cloudwatch_suite.py http://127.0.0.1:PORT"""

import atexit
import datetime
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import boto3
import botocore
import botocore.loaders
import botocore.session
from botocore.config import Config

import harness
from harness import expect_error, unique

ENDPOINT = sys.argv[1] if __name__ == "__main__" else None
CREDENTIALS = dict(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1")
UTC = datetime.timezone.utc


def model_speaking(protocol):
    """A data directory whose CloudWatch model names only `protocol`, so botocore speaks it."""
    root = tempfile.mkdtemp(prefix=f"cw-{protocol}-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    builtin = os.path.join(os.path.dirname(botocore.__file__), "data", "cloudwatch", "2010-08-01", "service-2.json.gz")
    with gzip.open(builtin) as f:
        model = json.load(f)
    model["metadata"]["protocol"] = protocol
    model["metadata"]["protocols"] = [protocol]
    target = os.path.join(root, "cloudwatch", "2010-08-01")
    os.makedirs(target)
    with open(os.path.join(target, "service-2.json"), "w") as f:
        json.dump(model, f)
    return root


def cloudwatch(endpoint, protocol="smithy-rpc-v2-cbor"):
    session = botocore.session.get_session()
    if protocol != "smithy-rpc-v2-cbor":
        # A loader of its own: the session's default one is shared with other sessions.
        loader = botocore.loaders.Loader(extra_search_paths=[model_speaking(protocol)])
        session.register_component("data_loader", loader)
    client = boto3.Session(botocore_session=session, **CREDENTIALS).client(
        "cloudwatch", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}))
    assert client.meta.service_model.protocol == protocol, client.meta.service_model.protocol
    return client


def minute(t):
    return t.replace(second=0, microsecond=0)


def custom_metrics_round_trip(endpoint, protocol):
    cw = cloudwatch(endpoint, protocol)
    namespace = unique("Shop")
    now = minute(datetime.datetime.now(UTC))
    earlier = now - datetime.timedelta(minutes=3)
    dims = [{"Name": "Site", "Value": "eu & <1>"}, {"Name": "Page", "Value": "/cart"}]
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": earlier + datetime.timedelta(seconds=5), "Value": 10.0, "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": earlier + datetime.timedelta(seconds=40), "Values": [20.0, 40.0], "Counts": [1.0, 3.0], "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": now + datetime.timedelta(seconds=1), "StatisticValues": {"SampleCount": 4, "Sum": 8, "Minimum": 1, "Maximum": 3}, "Unit": "Milliseconds"},
        {"MetricName": "Orders", "Dimensions": dims[:1], "Timestamp": now, "Value": 7},
    ])
    got = cw.get_metric_statistics(Namespace=namespace, MetricName="Latency", Dimensions=dims,
                                   StartTime=earlier - datetime.timedelta(minutes=1), EndTime=now + datetime.timedelta(minutes=1),
                                   Period=60, Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"])
    points = sorted(got["Datapoints"], key=lambda p: p["Timestamp"])
    assert got["Label"] == "Latency"
    assert [p["Timestamp"] for p in points] == [earlier, now], points
    first, last = points
    assert (first["SampleCount"], first["Sum"], first["Minimum"], first["Maximum"]) == (5.0, 150.0, 10.0, 40.0), first
    assert first["Average"] == 30.0 and first["Unit"] == "Milliseconds"
    assert (last["SampleCount"], last["Sum"], last["Average"]) == (4.0, 8.0, 2.0), last
    # One five-minute period holds both minutes.
    wide = cw.get_metric_statistics(Namespace=namespace, MetricName="Latency", Dimensions=dims,
                                    StartTime=earlier, EndTime=earlier + datetime.timedelta(minutes=5), Period=300, Statistics=["Sum"])
    assert [p["Sum"] for p in wide["Datapoints"]] == [158.0], wide
    # A dimension set that is not the series' own matches nothing, as in CloudWatch.
    none = cw.get_metric_statistics(Namespace=namespace, MetricName="Latency", Dimensions=dims[:1],
                                    StartTime=earlier, EndTime=now + datetime.timedelta(minutes=1), Period=60, Statistics=["Sum"])
    assert none["Datapoints"] == []
    data = cw.get_metric_data(StartTime=earlier, EndTime=now + datetime.timedelta(minutes=1), ScanBy="TimestampAscending", MetricDataQueries=[
        {"Id": "lat", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Latency", "Dimensions": dims}, "Period": 60, "Stat": "Maximum"}},
        {"Id": "orders", "Label": "orders placed", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Orders", "Dimensions": dims[:1]}, "Period": 60, "Stat": "Sum"}},
    ])
    results = {r["Id"]: r for r in data["MetricDataResults"]}
    assert results["lat"]["Values"] == [40.0, 3.0] and results["lat"]["Timestamps"] == [earlier, now], results["lat"]
    assert results["orders"]["Label"] == "orders placed" and results["orders"]["Values"] == [7.0]
    assert all(r["StatusCode"] == "Complete" for r in data["MetricDataResults"])
    listed = cw.list_metrics(Namespace=namespace)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["Latency", "Orders"], listed
    only = cw.list_metrics(Namespace=namespace, Dimensions=[{"Name": "Page"}])["Metrics"]
    assert [m["MetricName"] for m in only] == ["Latency"]
    assert {d["Value"] for d in only[0]["Dimensions"]} == {"eu & <1>", "/cart"}
    return cw


def test_custom_metrics_in_rpc_v2_cbor(endpoint):
    custom_metrics_round_trip(endpoint, "smithy-rpc-v2-cbor")


def test_custom_metrics_in_json_1_0(endpoint):
    custom_metrics_round_trip(endpoint, "json")


def test_custom_metrics_in_the_query_protocol(endpoint):
    custom_metrics_round_trip(endpoint, "query")


def test_bad_requests_get_cloudwatch_errors_in_every_form(endpoint):
    for protocol in ["smithy-rpc-v2-cbor", "json", "query"]:
        cw = cloudwatch(endpoint, protocol)
        now = datetime.datetime.now(UTC)
        error = expect_error("InvalidParameterValue", cw.put_metric_data, Namespace="AWS/Kinesis", MetricData=[{"MetricName": "x", "Value": 1}])
        assert "reserved" in error.response["Error"]["Message"]
        with_both = [{"MetricName": "x", "Value": 1, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}]
        expect_error("InvalidParameterCombination", cw.put_metric_data, Namespace="N", MetricData=with_both)
        expect_error("InvalidParameterValue", cw.put_metric_data, Namespace="N", MetricData=[{"MetricName": "x", "Value": 1, "Timestamp": now - datetime.timedelta(days=3)}])
        window = dict(Namespace="N", MetricName="x", StartTime=now - datetime.timedelta(hours=1), EndTime=now)
        error = expect_error("InvalidParameterValue", cw.get_metric_statistics, Period=60, ExtendedStatistics=["p99"], **window)
        assert "percentiles" in error.response["Error"]["Message"]
        expect_error("InvalidParameterValue", cw.get_metric_statistics, Period=30, Statistics=["Sum"], **window)
        expect_error("MissingParameter", cw.get_metric_statistics, Period=60, **window)
        too_many = dict(window, StartTime=now - datetime.timedelta(days=2))
        expect_error("InvalidParameterCombination", cw.get_metric_statistics, Period=60, Statistics=["Sum"], **too_many)
        backwards = dict(window, StartTime=now, EndTime=now - datetime.timedelta(hours=1))
        expect_error("InvalidParameterValue", cw.get_metric_statistics, Period=60, Statistics=["Sum"], **backwards)
        # Modelled errors raise the SDK's own exception class.
        try:
            cw.put_metric_data(Namespace="AWS/X", MetricData=[{"MetricName": "x", "Value": 1}])
            raise AssertionError("accepted a reserved namespace")
        except cw.exceptions.InvalidParameterValueException:
            pass


def test_a_wrong_secret_or_another_service_scope_is_refused(endpoint):
    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wrong", region_name="us-east-1")
    cw = session.client("cloudwatch", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}))
    # The query-compatible code, as CloudWatch answers.
    expect_error("SignatureDoesNotMatch", cw.list_metrics)
    assert cw.meta.service_model.protocol == "smithy-rpc-v2-cbor"
    # A signature scoped to kinesis is not CloudWatch's.
    kinesis_scoped = boto3.client("cloudwatch", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}, signature_version="v4"), **CREDENTIALS)
    kinesis_scoped.meta.events.register("before-sign.cloudwatch.*", lambda request, **_: request.context.__setitem__("signing", {"signing_name": "kinesis"}))
    error = expect_error("SignatureDoesNotMatch", kinesis_scoped.list_metrics)
    assert "'monitoring'" in error.response["Error"]["Message"], error.response["Error"]


def wait_for_calm_second():
    """Returns once at least 3 s remain in the current minute, so a call lands in it."""
    while datetime.datetime.now(UTC).second > 56:
        time.sleep(0.5)


def test_incoming_records_equal_the_records_put_each_minute(endpoint):
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}), **CREDENTIALS)
    cw = cloudwatch(endpoint)
    name = unique("cw")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingRecords"])
    put_per_minute = {}
    began = minute(datetime.datetime.now(UTC))

    def put_calls(calls, batch):
        for i in range(calls):
            wait_for_calm_second()
            at = minute(datetime.datetime.now(UTC))
            if batch == 1:
                kinesis.put_record(StreamName=name, Data=b"x" * 100, PartitionKey=f"k{i}")
            else:
                out = kinesis.put_records(StreamName=name, Records=[{"Data": b"y" * 10, "PartitionKey": f"k{i}-{j}"} for j in range(batch)])
                assert out["FailedRecordCount"] == 0
            assert minute(datetime.datetime.now(UTC)) == at, "a call straddled a minute"
            put_per_minute[at] = put_per_minute.get(at, 0) + batch

    put_calls(5, 1)
    put_calls(4, 25)
    # The next minute gets its own records.
    while minute(datetime.datetime.now(UTC)) == max(put_per_minute):
        time.sleep(0.5)
    put_calls(3, 7)
    put_calls(2, 1)
    ended = minute(datetime.datetime.now(UTC)) + datetime.timedelta(minutes=1)
    dims = [{"Name": "StreamName", "Value": name}]
    got = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName="IncomingRecords", Dimensions=dims,
                                   StartTime=began, EndTime=ended, Period=60, Statistics=["Sum", "SampleCount"])
    sums = {p["Timestamp"]: p["Sum"] for p in got["Datapoints"]}
    assert sums == {k: float(v) for k, v in put_per_minute.items()}, (sums, put_per_minute)
    assert sum(p["SampleCount"] for p in got["Datapoints"]) == 14.0, "one sample per put call"
    # GetMetricData gives the same, newest first.
    data = cw.get_metric_data(StartTime=began, EndTime=ended, MetricDataQueries=[
        {"Id": "incoming", "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords", "Dimensions": dims}, "Period": 60, "Stat": "Sum"}}])
    result = data["MetricDataResults"][0]
    expected = sorted(put_per_minute.items(), reverse=True)
    assert list(zip(result["Timestamps"], result["Values"])) == [(k, float(v)) for k, v in expected], result
    # Shard level: the two shards' records add up to the stream's.
    shard_sums = 0.0
    for shard in ["shardId-000000000000", "shardId-000000000001"]:
        per_shard = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName="IncomingRecords",
                                             Dimensions=dims + [{"Name": "ShardId", "Value": shard}],
                                             StartTime=began, EndTime=ended, Period=3600, Statistics=["Sum"])
        shard_sums += sum(p["Sum"] for p in per_shard["Datapoints"])
    assert shard_sums == sum(put_per_minute.values())
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/Kinesis", Dimensions=[{"Name": "StreamName", "Value": name}])["Metrics"]}
    for metric in ["IncomingBytes", "PutRecord.Latency", "PutRecords.SuccessfulRecords", "PutRecords.Success", "WriteProvisionedThroughputExceeded"]:
        assert metric in names, (metric, names)
    # The AWS CLI reads the same numbers.
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
    cli = subprocess.run(["aws", "cloudwatch", "get-metric-statistics", "--endpoint-url", endpoint, "--output", "json",
                          "--namespace", "AWS/Kinesis", "--metric-name", "IncomingRecords", "--dimensions", f"Name=StreamName,Value={name}",
                          "--start-time", began.isoformat(), "--end-time", ended.isoformat(), "--period", "60", "--statistics", "Sum"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert cli.returncode == 0, cli.stderr
    # AWS CLI v1 prints timestamps as they came on the wire (epoch seconds in CBOR).
    def when(value):
        if isinstance(value, (int, float)):
            return datetime.datetime.fromtimestamp(value, UTC)
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    by_cli = {when(p["Timestamp"]): p["Sum"] for p in json.loads(cli.stdout)["Datapoints"]}
    assert by_cli == sums, (by_cli, sums)
    queries = json.dumps([{"Id": "incoming", "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords", "Dimensions": dims}, "Period": 60, "Stat": "Sum"}}])
    cli = subprocess.run(["aws", "cloudwatch", "get-metric-data", "--endpoint-url", endpoint, "--output", "json",
                          "--start-time", began.isoformat(), "--end-time", ended.isoformat(), "--metric-data-queries", queries],
                         capture_output=True, text=True, env=env, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["MetricDataResults"][0]["Values"] == result["Values"]
    kinesis.delete_stream(StreamName=name)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps the JSON bodies POSTed to it."""

    def __init__(self):
        import http.server
        import threading
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alarms"

    def wait_for(self, state, timeout=25):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [m for m in self.received if m["NewStateValue"] == state]
            if found:
                return found[-1]
            time.sleep(0.25)
        raise AssertionError(f"no {state} message in {timeout} s: {self.received}")


def wait_for_state(cw, name, state, timeout=25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        if alarm["StateValue"] == state:
            return alarm
        time.sleep(0.5)
    raise AssertionError(f"{name} did not go to {state} in {timeout} s: {alarm}")


def test_an_alarm_goes_to_alarm_on_a_burst_and_back_to_ok_delivering_each_change(endpoint):
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}), **CREDENTIALS)
    cw = cloudwatch(endpoint)
    receiver = Receiver()
    changes = unique("alarm-changes")
    kinesis.create_stream(StreamName=changes, ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=changes)["StreamDescriptionSummary"]["StreamARN"]
    namespace, name = unique("Web"), unique("errors-high")
    dims = [{"Name": "Site", "Value": "shop"}]
    alarm = dict(AlarmName=name, Namespace=namespace, MetricName="Errors", Dimensions=dims, Statistic="Average", Period=60,
                 EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
                 AlarmActions=[stream_arn, receiver.url], OKActions=[receiver.url], AlarmDescription="5xx burst")
    cw.put_metric_alarm(**alarm)
    described = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert described["StateValue"] == "INSUFFICIENT_DATA" and described["StateReason"] == "Unchecked: Initial alarm creation"
    assert described["AlarmArn"].endswith(f":alarm:{name}") and described["Threshold"] == 5.0 and described["Period"] == 60
    # Actions the endpoint cannot run, and metric math, are refused at once.
    expect_error("InvalidParameterValue", cw.put_metric_alarm, **dict(alarm, AlarmActions=["arn:aws:sns:us-east-1:000000000000:ops"]))
    expect_error("InvalidParameterValue", cw.put_metric_alarm, **dict(alarm, Period=30))
    # Only URLs the operator allows (here http://127.0.0.1:...): no alarm makes the server
    # call an address of someone else's choosing.
    error = expect_error("InvalidParameterValue", cw.put_metric_alarm, **dict(alarm, OKActions=["http://169.254.169.254/latest"]))
    assert "--alarm-action-url" in error.response["Error"]["Message"]
    expect_error("InvalidParameterValue", cw.put_metric_alarm, **dict(alarm, Threshold=float("nan")))
    math = {"Id": "m", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Errors"}, "Period": 60, "Stat": "Sum"}}
    error = expect_error("InvalidParameterValue", cw.put_metric_alarm, AlarmName=name, Metrics=[math], EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    assert "metric math" in error.response["Error"]["Message"]
    expect_error("ResourceNotFound", cw.delete_alarms, AlarmNames=[name, "no-such-alarm"])
    # A burst of errors in the last whole minute: the next evaluation (every 10 s) alarms.
    # (Both changes below happen within this minute: at least 30 s of it are left.)
    while datetime.datetime.now(UTC).second > 30:
        time.sleep(0.5)
    last_minute = minute(datetime.datetime.now(UTC)) - datetime.timedelta(seconds=30)
    cw.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "Errors", "Dimensions": dims, "Timestamp": last_minute, "Value": 9, "Unit": "Count"}])
    alarmed = wait_for_state(cw, name, "ALARM")
    assert alarmed["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [9.0"), alarmed["StateReason"]
    assert json.loads(alarmed["StateReasonData"])["recentDatapoints"] == [9.0]
    message = receiver.wait_for("ALARM")
    assert message["AlarmName"] == name and message["OldStateValue"] == "INSUFFICIENT_DATA", message
    assert message["Trigger"]["MetricName"] == "Errors" and message["Trigger"]["Dimensions"] == [{"value": "shop", "name": "Site"}]
    shard = kinesis.list_shards(StreamName=changes)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=changes, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [json.loads(r["Data"])["NewStateValue"] for r in records] == ["ALARM"] and records[0]["PartitionKey"] == name
    # Quiet datapoints into the same minute bring its average under the threshold: OK again
    # at the next evaluation. (A minute with no data at all, treated as not breaching, is the
    # log pipeline example's and the unit tests'.)
    quiet = [{"MetricName": "Errors", "Dimensions": dims, "Timestamp": last_minute, "Value": 0, "Unit": "Count"}] * 20
    cw.put_metric_data(Namespace=namespace, MetricData=quiet)
    ok = wait_for_state(cw, name, "OK")
    assert ok["StateReason"].startswith("Threshold Crossed: 0 out of the last 1 datapoints"), ok["StateReason"]
    assert receiver.wait_for("OK")["OldStateValue"] == "ALARM"
    assert ok["StateTransitionedTimestamp"] > alarmed["StateTransitionedTimestamp"]
    # SetAlarmState holds until the next evaluation, and its change is delivered too.
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing the pager")
    assert cw.describe_alarms(AlarmNames=[name], StateValue="ALARM")["MetricAlarms"][0]["StateReason"] == "testing the pager"
    assert len([m for m in receiver.received if m["NewStateValue"] == "ALARM"]) >= 1
    wait_for_state(cw, name, "OK")
    expect_error("InvalidFormat", cw.set_alarm_state, AlarmName=name, StateValue="OK", StateReason="x", StateReasonData="{not json")
    cw.delete_alarms(AlarmNames=[name])
    assert cw.describe_alarms(AlarmNamePrefix=name)["MetricAlarms"] == []
    kinesis.delete_stream(StreamName=changes)


def test_subscribe_to_shard_events_are_counted_per_consumer(endpoint):
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}), **CREDENTIALS)
    cw = cloudwatch(endpoint)
    name = unique("fanout")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="app")["Consumer"]
    kinesis.put_records(StreamName=name, Records=[{"Data": b"z" * 100, "PartitionKey": str(i)} for i in range(7)])
    out = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId="shardId-000000000000",
                                     StartingPosition={"Type": "TRIM_HORIZON"})
    got = 0
    for event in out["EventStream"]:
        got += len(event["SubscribeToShardEvent"]["Records"])
        if got >= 7:
            break
    out["EventStream"].close()
    dims = [{"Name": "StreamName", "Value": name}, {"Name": "ConsumerName", "Value": "app"}]
    now = datetime.datetime.now(UTC)
    window = dict(Namespace="AWS/Kinesis", Dimensions=dims, StartTime=now - datetime.timedelta(minutes=5),
                  EndTime=now + datetime.timedelta(minutes=1), Period=3600, Statistics=["Sum"])
    records = cw.get_metric_statistics(MetricName="SubscribeToShardEvent.Records", **window)["Datapoints"]
    assert sum(p["Sum"] for p in records) == 7.0, records
    sent = cw.get_metric_statistics(MetricName="SubscribeToShardEvent.Bytes", **window)["Datapoints"]
    assert sum(p["Sum"] for p in sent) == 700.0, sent
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_an_alarm_may_put_only_to_streams_its_author_may_put_to(endpoint):
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}), **CREDENTIALS)
    name = unique("guarded")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    watcher = boto3.client("cloudwatch", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}),
                           aws_access_key_id="AKIDWATCH", aws_secret_access_key="secret4", region_name="us-east-1")
    alarm = dict(AlarmName=unique("watched"), Namespace="N", MetricName="M", Statistic="Sum", Period=60,
                 EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    watcher.put_metric_alarm(**alarm)
    error = expect_error("AccessDenied", watcher.put_metric_alarm, **dict(alarm, AlarmActions=[arn]))
    assert "kinesis:PutRecord" in error.response["Error"]["Message"], error.response["Error"]
    assert watcher.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["AlarmActions"] == []
    watcher.delete_alarms(AlarmNames=[alarm["AlarmName"]])
    kinesis.delete_stream(StreamName=name)


if __name__ == "__main__":
    harness.run(sys.modules[__name__], ENDPOINT)
